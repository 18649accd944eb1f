// Continues a prompt with a model through ember's library API, picking the likeliest
// token each step (greedy decoding), as run-model --temp 0 does.
#include <cstdio>
#include <string>
#include <vector>

#include <ember/ember.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
    return 2;
  }
  auto session = ember::Session::load(argv[1]);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().message().c_str());
    return 1;
  }
  auto prompt = session->tokenize(argv[2]);
  if (!prompt.ok()) {
    std::fprintf(stderr, "%s\n", prompt.status().message().c_str());
    return 1;
  }
  auto sampler = ember::Sampler::create({.temperature = 0.0f});
  if (!sampler.ok()) {
    std::fprintf(stderr, "%s\n", sampler.status().message().c_str());
    return 1;
  }
  std::vector<int32_t> next_tokens = prompt.value();
  std::vector<int32_t> generated;
  for (int step = 0; step < 16; ++step) {
    if (auto status = session->eval(next_tokens); !status.ok()) {
      std::fprintf(stderr, "%s\n", status.message().c_str());
      return 1;
    }
    auto next = session->sample(*sampler);
    if (!next.ok()) {
      std::fprintf(stderr, "%s\n", next.status().message().c_str());
      return 1;
    }
    if (next.value() == session->tokenizer().eos_id()) break;
    generated.push_back(next.value());
    next_tokens = {next.value()};
  }
  auto text = session->detokenize(generated);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().message().c_str());
    return 1;
  }
  std::printf("%s%s\n", argv[2], text->c_str());
  return 0;
}
