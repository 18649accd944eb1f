// Builds y = relu(x·Wᵀ + b) through the installed public API and checks one value.
#include <cstdio>
#include <vector>

#include <ember/ember.h>

int main() {
  using namespace ember;
  Graph graph;
  NodeId x = graph.input("x", {1, 2});
  Tensor weight = Tensor::empty({1, 2}, DType::f32).value();
  weight.set({0, 0}, 3.0f);
  weight.set({0, 1}, -1.0f);
  Tensor bias = Tensor::empty({1}, DType::f32).value();
  bias.set({0}, 0.5f);
  graph.mark_output(graph.linear(x, graph.constant("w", weight), graph.constant("b", bias), Activation::relu));
  if (!graph.ok()) {
    std::fprintf(stderr, "consumer: %s\n", graph.status().message().c_str());
    return 1;
  }
  Tensor input = Tensor::empty({1, 2}, DType::f32).value();
  input.set({0, 0}, 2.0f);
  input.set({0, 1}, 1.0f);
  Executor executor;
  std::vector<Tensor> inputs = {input};
  auto outputs = executor.run(graph, inputs);
  if (!outputs.ok()) {
    std::fprintf(stderr, "consumer: %s\n", outputs.status().message().c_str());
    return 1;
  }
  // The tokenizer pulls in PCRE2: a missing file must come back as an error, not a link failure.
  if (Tokenizer::from_json_file("no-such-tokenizer.json").ok()) return 1;
  const float y = (*outputs)[0].get({0, 0});  // relu(2*3 - 1 + 0.5) = 5.5
  std::printf("consumer: y = %g\n", y);
  return y == 5.5f ? 0 : 1;
}
