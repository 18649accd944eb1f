// run-model: text from a model, like llama.cpp's llama-cli. A thin program over
// ember::Session: load, tokenize, evaluate the prompt in one pass, sample and stream
// tokens; or chat (-i), perplexity, N parallel continuations, logits and token dumps.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ember/atomic_file.h"
#include "ember/chat_template.h"
#include "ember/gpu_calibration.h"
#include "ember/gpu_devices.h"
#include "ember/perplexity.h"
#include "ember/session.h"
#include "ember/threads.h"
#include "tools/device_flags.h"

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
// The signal that stopped generation: the exit status is 128 + its number, as a shell
// reports a process the signal killed (130 for Ctrl-C, 143 for SIGTERM).
std::atomic<int> g_signal{0};
extern "C" void on_signal(int signal) {
  g_signal.store(signal);
  g_interrupted.store(true);
}

struct Options {
  std::string model;
  std::optional<std::string> prompt;
  std::string prompt_file;
  int64_t max_tokens = -1;
  ember::SamplingParams sampling;
  std::optional<uint64_t> seed;
  int threads = 0;
  int64_t context = 0;
  ember::tools::DeviceFlags device;
  std::string kv_type = "f16";
  bool interactive = false;
  std::string chat_template;
  std::string perplexity_file;
  std::string logits_out;
  std::string tokens_out;
  std::vector<std::string> stop;
  int parallel = 1;
  bool profile = false;
  bool lock_weights = false;
  bool list_devices = false;
  bool calibrate = false;
};

// What the timing line and --profile report, gathered while the run goes.
struct Report {
  double load_ms = 0.0;
  int64_t prompt_tokens = 0;
  double prompt_ms = 0.0;
  int64_t generated_tokens = 0;
  double generate_ms = 0.0;
  struct OpTotals {
    double seconds = 0.0, device_seconds = 0.0, flops = 0.0, bytes = 0.0;
    int64_t calls = 0;
  };
  std::map<std::pair<std::string, std::string>, OpTotals> ops;  // by op and the backend that ran it
  std::map<std::string, OpTotals> backends;
};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The error every failure path prints: one line naming the cause.
int fail(const std::string& message, int code = 1) {
  fmt::print(stderr, "run-model: {}\n", message);
  return code;
}

void print_timings(const Report& report) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto rate = [](int64_t tokens, double ms) { return ms > 0 ? tokens * 1000.0 / ms : 0.0; };
  fmt::print(stderr,
             "\nrun-model: load {:.1f} ms | prompt {} tokens, {:.2f} ms, {:.1f} tok/s | generated {} tokens, {:.2f} ms, "
             "{:.1f} tok/s | peak RSS {:.1f} MiB\n",
             report.load_ms, report.prompt_tokens, report.prompt_ms, rate(report.prompt_tokens, report.prompt_ms),
             report.generated_tokens, report.generate_ms, rate(report.generated_tokens, report.generate_ms),
             static_cast<double>(usage.ru_maxrss) / 1024.0);
}

// FLOPs and bytes moved by one node, for the profile's GFLOP/s and GB/s.
std::pair<double, double> node_work(const ember::Graph& graph, const ember::Node& node) {
  double bytes = static_cast<double>(ember::row_bytes(node.dtype, node.shape.elements()));
  for (ember::NodeId input : node.inputs)
    if (input != ember::kInvalidNode) {
      const ember::Node& in = graph.node(input);
      bytes += static_cast<double>(ember::row_bytes(in.dtype, in.shape.elements()));
    }
  double flops = static_cast<double>(node.shape.elements());
  if (node.op == ember::Op::linear || node.op == ember::Op::matmul) {
    const ember::Shape& x = graph.node(node.inputs[0]).shape;
    flops = 2.0 * static_cast<double>(node.shape.elements()) * static_cast<double>(x[x.rank() - 1]);
  } else if (node.op == ember::Op::cached_attention) {
    // Query row t of a segment scores and weights position + t + 1 keys: 4 FLOPs per
    // key and head dimension (q·k and p·v multiply-adds).
    flops = 0.0;
    const double head_elements = static_cast<double>(node.shape[1] * node.shape[2]);
    for (const ember::AttentionSegment& segment : node.params.segments) {
      const double keys = static_cast<double>(segment.tokens) * static_cast<double>(segment.position) +
                          static_cast<double>(segment.tokens * (segment.tokens + 1)) / 2.0;
      flops += 4.0 * head_elements * keys;
    }
  }
  return {flops, bytes};
}

class Runner {
 public:
  Runner(ember::Session& session, const Options& options, Report& report)
      : session_(session), options_(options), report_(report) {}

  // Evaluates with the clock on `ms`, and, with --profile, the per-op account.
  ember::Status eval(std::span<const ember::Session::SequenceInput> inputs, double& ms) {
    const auto start = Clock::now();
    auto status = session_.eval(inputs);
    ms += ms_since(start);
    record();
    return status;
  }
  ember::Status eval(std::span<const int32_t> tokens, double& ms, int sequence = 0) {
    const ember::Session::SequenceInput input{sequence, tokens};
    return eval(std::span(&input, 1), ms);
  }
  ember::Result<ember::Tensor> eval_all_logits(std::span<const int32_t> tokens, double& ms) {
    const auto start = Clock::now();
    auto logits = session_.eval_all_logits(tokens);
    ms += ms_since(start);
    record();
    return logits;
  }

  // The ids that end a turn: EOS, and the chat template's end-of-turn token if it is one.
  bool ends_text(int32_t id) const {
    return id == session_.tokenizer().eos_id() || (end_of_turn_ && id == *end_of_turn_);
  }
  void set_end_of_turn(std::optional<int32_t> id) { end_of_turn_ = id; }

  // Samples and streams tokens after the prompt until EOS, a stop string, max_tokens, the
  // full context or Ctrl-C. Returns the generated ids.
  ember::Result<std::vector<int32_t>> generate(ember::Sampler& sampler, int64_t max_tokens,
                                               const std::vector<std::string>& stop, std::string* text_out) {
    std::vector<int32_t> generated;
    ember::TokenDecoder decoder(session_.tokenizer());
    std::string text;
    while (max_tokens < 0 || static_cast<int64_t>(generated.size()) < max_tokens) {
      if (g_interrupted.load()) break;
      auto next = session_.sample(sampler);
      if (!next) return next.status();
      if (ends_text(next.value())) break;
      generated.push_back(next.value());
      ++report_.generated_tokens;
      auto piece = decoder.next(next.value());
      if (!piece) return piece.status();
      std::fwrite(piece->data(), 1, piece->size(), stdout);
      std::fflush(stdout);
      text += piece.value();
      bool stopped = false;
      for (const std::string& marker : stop) stopped = stopped || (!marker.empty() && text.find(marker) != std::string::npos);
      if (stopped || session_.position() >= session_.model().context_length()) break;
      EMBER_RETURN_IF_ERROR(eval(std::span(&generated.back(), 1), report_.generate_ms));
    }
    const std::string rest = decoder.finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    if (text_out) *text_out = text + rest;
    return generated;
  }

 private:
  void record() {
    if (!options_.profile || session_.model().last_graph() == nullptr) return;
    const ember::Graph& graph = *session_.model().last_graph();
    for (const ember::NodeTiming& timing : session_.model().last_timings()) {
      const ember::Node& node = graph.node(timing.node);
      const auto [flops, bytes] = node_work(graph, node);
      const std::string backend(timing.backend);
      for (Report::OpTotals* totals : {&report_.ops[{std::string(ember::op_name(timing.op)), backend}],
                                       &report_.backends[backend]}) {
        totals->seconds += std::chrono::duration<double>(timing.elapsed).count();
        totals->device_seconds += std::chrono::duration<double>(timing.device).count();
        totals->flops += flops;
        totals->bytes += bytes;
        ++totals->calls;
      }
    }
  }

  ember::Session& session_;
  const Options& options_;
  Report& report_;
  std::optional<int32_t> end_of_turn_;
};

void print_profile(const Report& report, ember::Session& session) {
  const auto print_row = [](const std::string& op, const std::string& backend, const Report::OpTotals& totals) {
    const double seconds = totals.device_seconds > 0 ? totals.device_seconds : totals.seconds;
    fmt::print(stderr, "{:<18} {:<8} {:>8} {:>11.2f} {:>11.2f} {:>9.2f} {:>9.2f}\n", op, backend, totals.calls,
               totals.seconds * 1e3, totals.device_seconds * 1e3, seconds > 0 ? totals.flops / seconds / 1e9 : 0.0,
               seconds > 0 ? totals.bytes / seconds / 1e9 : 0.0);
  };
  // A GPU batch's wall time counts on its first node; each node's device time is its own,
  // and the rates of a device's rows come from it.
  fmt::print(stderr, "\n{:<18} {:<8} {:>8} {:>11} {:>11} {:>9} {:>9}\n", "op", "backend", "calls", "time ms",
             "device ms", "GFLOP/s", "GB/s");
  for (const auto& [key, totals] : report.ops) print_row(key.first, key.second, totals);
  // A node's time on a device includes moving its inputs there and waiting for the result.
  for (const auto& [backend, totals] : report.backends) print_row("all ops", backend, totals);
  const ember::PoolStats pool = session.model().pool().stats();
  fmt::print(stderr, "pool: {} allocations, {} reuses, {} bytes live, peak {} bytes\n", pool.allocations, pool.reuses,
             pool.bytes_live, pool.bytes_peak);
}

// --calibrate: the measured cases as a table, then the crossover, kept where
// open_offload_backend looks for it.
int calibrate(std::optional<uint32_t> device_index) {
  fmt::print("timing a q4_0 linear node on the CPU ({} threads) and on the Vulkan device, x uploaded and y "
             "downloaded around each device run; medians of 3\n",
             ember::num_threads());
  auto calibration = ember::calibrate_gpu({.device_index = device_index});
  if (!calibration) return fail(calibration.status().message());
  fmt::print("device: {}\n{:>6} {:>6} {:>6} {:>12} {:>10} {:>10}  faster\n", calibration->device, "rows", "k", "n",
             "GFLOP", "cpu ms", "gpu ms");
  for (const ember::CalibrationCase& c : calibration->cases)
    fmt::print("{:>6} {:>6} {:>6} {:>12.3f} {:>10.3f} {:>10.3f}  {}\n", c.rows, c.k, c.n, static_cast<double>(c.flops()) / 1e9,
               c.cpu_seconds * 1e3, c.gpu_seconds * 1e3, c.gpu_seconds < c.cpu_seconds ? "gpu" : "cpu");
  const auto path = ember::calibration_path();
  if (auto status = ember::save_calibration(calibration.value(), path); !status.ok()) return fail(status.message());
  if (calibration->min_flops == ember::kNeverOffload)
    fmt::print("the device lost even the largest case: linear nodes stay on the CPU (written to {})\n", path.string());
  else
    fmt::print("linear nodes of at least {} FLOPs go to the device (written to {})\n", calibration->min_flops, path.string());
  return 0;
}

// NumPy's .npy version 1.0: magic, a header dict padded to 64 bytes, little-endian f32 data.
ember::Status write_npy(const std::string& path, const ember::Tensor& logits) {
  auto data = logits.read<float>();
  if (!data) return data.status();
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", logits.dim(0),
                                   logits.dim(1));
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes = "\x93NUMPY";
  bytes.push_back('\x01');
  bytes.push_back('\x00');
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data.value()), logits.payload_bytes());
  return ember::write_file_atomically(path, bytes);
}

ember::Status write_tokens_json(const std::string& path, const std::vector<int32_t>& prompt,
                                const std::vector<int32_t>& generated) {
  const nlohmann::json json = {{"prompt_ids", prompt}, {"generated_ids", generated}};
  return ember::write_file_atomically(path, json.dump() + "\n");
}

// An installed run-model uses the model installed beside it, <prefix>/share/ember/models;
// a run-model in its build tree, the one in the source tree.
std::string default_model_path(const char* argv0) {
  std::error_code error;
  // /proc/self/exe names the binary even when it was found through PATH.
  std::filesystem::path executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) executable = std::filesystem::absolute(argv0, error);
  const auto installed = executable.parent_path().parent_path() / "share" / "ember" / "models" /
                         std::filesystem::path(EMBER_DEFAULT_MODEL).filename();
  if (std::filesystem::exists(installed, error)) return installed.string();
  return EMBER_DEFAULT_MODEL;
}

int run_chat(ember::Session& session, Runner& runner, const Options& options, ember::Sampler& sampler,
             Report& report) {
  ember::Result<ember::ChatTemplate> chat_template = ember::invalid_argument("no chat template");
  if (!options.chat_template.empty()) {
    chat_template = ember::ChatTemplate::named(options.chat_template);
  } else if (session.chat_template_source()) {
    chat_template = ember::ChatTemplate::detect(*session.chat_template_source());
  } else {
    fmt::print(stderr, "run-model: the model has no chat template; using chatml (--chat-template to choose)\n");
    chat_template = ember::ChatTemplate::named("chatml");
  }
  if (!chat_template) return fail(chat_template.status().message());
  auto end_ids = session.tokenize(std::string(chat_template->end_of_turn()), false);
  if (end_ids && end_ids->size() == 1) runner.set_end_of_turn(end_ids->front());
  std::vector<std::string> stop = options.stop;
  stop.emplace_back(chat_template->end_of_turn());

  std::vector<ember::ChatMessage> messages;
  if (options.prompt && !options.prompt->empty()) messages.push_back({"system", *options.prompt});
  std::string line;
  while (!g_interrupted.load()) {
    fmt::print(stderr, "\n> ");
    if (!std::getline(std::cin, line)) break;
    messages.push_back({"user", line});
    auto ids = session.tokenize(chat_template->apply(messages, true), true);
    if (!ids) return fail(ids.status().message());
    if (static_cast<int64_t>(ids->size()) >= session.model().context_length())
      return fail(fmt::format("the conversation ({} tokens) has filled the context of {} (-c)", ids->size(),
                              session.model().context_length()));
    // Only the part after what the cache already holds is evaluated.
    const auto history = session.history();
    size_t shared = 0;
    while (shared < history.size() && shared + 1 < ids->size() && history[shared] == (*ids)[shared]) ++shared;
    if (auto status = session.rewind(static_cast<int64_t>(shared)); !status.ok()) return fail(status.message());
    const std::span<const int32_t> fresh(ids->data() + shared, ids->size() - shared);
    report.prompt_tokens += static_cast<int64_t>(fresh.size());
    if (auto status = runner.eval(fresh, report.prompt_ms); !status.ok()) return fail(status.message());
    std::string reply;
    auto generated = runner.generate(sampler, options.max_tokens, stop, &reply);
    if (!generated) return fail(generated.status().message());
    const auto end = reply.find(chat_template->end_of_turn());
    if (end != std::string::npos) reply.resize(end);
    messages.push_back({"assistant", reply});
    std::fputc('\n', stdout);
  }
  return 0;
}

int run_parallel(ember::Session& session, Runner& runner, const Options& options, const std::vector<int32_t>& prompt,
                 Report& report) {
  const int count = options.parallel;
  if (auto status = runner.eval(prompt, report.prompt_ms); !status.ok()) return fail(status.message());
  std::vector<ember::Sampler> samplers;
  for (int s = 0; s < count; ++s) {
    if (s > 0)
      if (auto status = session.fork(0, s); !status.ok()) return fail(status.message());
    ember::SamplingParams params = options.sampling;
    params.seed += static_cast<uint64_t>(s);
    samplers.push_back(std::move(ember::Sampler::create(params).value()));
  }
  std::vector<std::vector<int32_t>> generated(static_cast<size_t>(count));
  std::vector<bool> active(static_cast<size_t>(count), true);
  const int64_t context = session.model().context_length();
  for (int64_t step = 0; options.max_tokens < 0 || step < options.max_tokens; ++step) {
    if (g_interrupted.load()) break;
    std::vector<ember::Session::SequenceInput> inputs;
    for (int s = 0; s < count; ++s) {
      if (!active[static_cast<size_t>(s)]) continue;
      auto next = session.sample(samplers[static_cast<size_t>(s)], s);
      if (!next) return fail(next.status().message());
      if (runner.ends_text(next.value()) || session.position(s) >= context) {
        active[static_cast<size_t>(s)] = false;
        continue;
      }
      generated[static_cast<size_t>(s)].push_back(next.value());
      ++report.generated_tokens;
      inputs.push_back({s, std::span(&generated[static_cast<size_t>(s)].back(), 1)});
    }
    if (inputs.empty()) break;
    if (auto status = runner.eval(inputs, report.generate_ms); !status.ok()) return fail(status.message());
  }
  for (int s = 0; s < count; ++s) {
    auto text = session.detokenize(generated[static_cast<size_t>(s)]);
    if (!text) return fail(text.status().message());
    fmt::print("[{}] {}{}\n", s, options.prompt.value_or(""), text.value());
  }
  return 0;
}

int run_perplexity(ember::Session& session, const Options& options) {
  std::ifstream in(options.perplexity_file, std::ios::binary);
  if (!in) return fail(fmt::format("--perplexity {}: cannot read the file", options.perplexity_file));
  std::stringstream text;
  text << in.rdbuf();
  auto ids = session.tokenize(text.str(), false);
  if (!ids) return fail(fmt::format("--perplexity {}: {}", options.perplexity_file, ids.status().message()));
  auto result = ember::perplexity(session, ids.value(), session.model().context_length(),
                                  [](size_t window, double running) {
                                    fmt::print(stderr, "[{}]{:.4f} ", window + 1, running);
                                  });
  if (!result) return fail(fmt::format("--perplexity {}: {}", options.perplexity_file, result.status().message()));
  fmt::print("\nPPL = {:.4f} +/- {:.4f} over {} tokens\n", result->perplexity, result->standard_error,
             result->scored_tokens);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generate text with a GGUF model or a Hugging Face folder."};
  Options options;
  std::string prompt;
  app.add_option("-m,--model", options.model, "GGUF file or Hugging Face folder (default: the demo model)");
  auto* prompt_option = app.add_option("-p,--prompt", prompt, "prompt text (with -i: the system message)");
  app.add_option("-f,--file", options.prompt_file, "read the prompt from a file")->excludes(prompt_option);
  app.add_option("-n,--n-predict", options.max_tokens, "tokens to generate (-1: until end of text or full context)");
  app.add_option("--temp", options.sampling.temperature, "temperature (0: greedy)");
  app.add_option("--top-k", options.sampling.top_k, "top-k (0: off)");
  app.add_option("--top-p", options.sampling.top_p, "top-p (1: off)");
  app.add_option("--min-p", options.sampling.min_p, "min-p (0: off)");
  app.add_option("--repeat-penalty", options.sampling.repeat_penalty, "repetition penalty (1: off)");
  app.add_option("--repeat-last-n", options.sampling.repeat_last_n, "tokens the penalty looks back over");
  app.add_option("-s,--seed", options.seed, "random seed (default: a fresh one, printed)");
  app.add_option("-t,--threads", options.threads, "threads (default: one per core)")->check(CLI::NonNegativeNumber);
  app.add_option("-c,--ctx-size", options.context, "context length (0: the model's)")->check(CLI::NonNegativeNumber);
  ember::tools::add_device_flags(app, options.device);
  app.add_option("--kv-type", options.kv_type, "KV cache type: f16, f32 or q8_0");
  app.add_flag("--mlock", options.lock_weights, "keep the weights in RAM (mlock): never evicted and re-read");
  app.add_flag("-i,--interactive", options.interactive, "chat, one user message per line of stdin");
  app.add_option("--chat-template", options.chat_template, "chat template name (default: the model's own)");
  app.add_option("--perplexity", options.perplexity_file, "print the perplexity of a text file");
  app.add_option("--logits-out", options.logits_out, "write the prompt's logits as .npy [tokens, vocab]");
  app.add_option("--tokens-out", options.tokens_out, "write prompt and generated ids as JSON");
  app.add_option("--stop", options.stop, "stop when the text contains this (repeatable)");
  app.add_option("--parallel", options.parallel, "sampled continuations of the prompt, decoded as one batch")
      ->check(CLI::Range(1, 64));
  app.add_flag("--profile", options.profile, "print per-op time, GFLOP/s, GB/s and pool stats");
  app.add_flag("--list-devices", options.list_devices, "print the Vulkan devices and their capabilities, then exit");
  app.add_flag("--calibrate", options.calibrate,
               "time linear nodes on the CPU and the Vulkan device, keep the size from which the device is faster, "
               "then exit");
  ember::tools::spell_out_ngl(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  if (options.list_devices) {
    // No device is not an error: the CPU runs everything, so this still exits 0.
    const auto devices = ember::describe_gpu_devices();
    if (devices) fmt::print("{}", devices.value());
    else fmt::print("no Vulkan device: {}\n", devices.status().message());
    return 0;
  }
  if (*prompt_option) options.prompt = prompt;

  const auto offload = ember::tools::offload_options(options.device);
  if (!offload) return fail(offload.status().message(), 2);
  if (options.calibrate) {
    if (options.threads > 0) ember::set_num_threads(options.threads);
    return calibrate(offload->device_index);
  }
  const auto kv_type = ember::dtype_from_name(options.kv_type);
  if (!kv_type || (*kv_type != ember::DType::f16 && *kv_type != ember::DType::f32 && *kv_type != ember::DType::q8_0))
    return fail(fmt::format("--kv-type '{}': f16, f32 or q8_0", options.kv_type), 2);
  if (options.max_tokens < -1) return fail(fmt::format("-n {}: -1 or more", options.max_tokens), 2);
  options.sampling.seed = options.seed.value_or(std::random_device{}());
  if (auto status = ember::validate(options.sampling); !status.ok()) return fail(status.message(), 2);
  if (options.threads > 0) ember::set_num_threads(options.threads);

  if (!options.prompt_file.empty()) {
    std::ifstream in(options.prompt_file, std::ios::binary);
    if (!in) return fail(fmt::format("-f {}: cannot read the file", options.prompt_file));
    std::stringstream text;
    text << in.rdbuf();
    options.prompt = text.str();
  }
  if (options.model.empty()) options.model = default_model_path(argv[0]);
  std::error_code error;
  if (!std::filesystem::exists(options.model, error)) return fail(fmt::format("-m {}: no such file", options.model));

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  Report report;
  const auto load_start = Clock::now();
  auto loaded = ember::Session::load(
      options.model, {.kv_cache_type = *kv_type,
                      .context_length = options.context,
                      .sequences = options.parallel,
                      .lock_weights = options.lock_weights,
                      .offload = [&] {
                        ember::OffloadOptions chosen = offload.value();
                        chosen.time_each_node = options.profile;
                        return chosen;
                      }()});
  if (!loaded) return fail(loaded.status().message());
  report.load_ms = ms_since(load_start);
  ember::Session& session = loaded.value();
  const ember::ModelConfig& config = session.model().config();
  fmt::print(stderr, "run-model: {} ({}, {:.2f} M parameters, context {}), seed {}\n", options.model,
             ember::architecture_name(config.architecture),
             static_cast<double>(session.model().parameter_count()) / 1e6, session.model().context_length(),
             options.sampling.seed);
  auto sampler = ember::Sampler::create(options.sampling);
  if (!sampler) return fail(sampler.status().message(), 2);
  Runner runner(session, options, report);

  int code = 0;
  if (!options.perplexity_file.empty()) {
    code = run_perplexity(session, options);
  } else if (options.interactive) {
    code = run_chat(session, runner, options, sampler.value(), report);
  } else {
    const std::string text = options.prompt.value_or("");
    auto ids = session.tokenize(text, true);
    if (!ids) return fail(fmt::format("the prompt: {}", ids.status().message()));
    const auto prompt_tokens = static_cast<int64_t>(ids->size());
    const int64_t context = session.model().context_length();
    if (prompt_tokens == 0) return fail("the prompt is empty and the tokenizer adds no BOS token: nothing to continue");
    if (prompt_tokens > context)
      return fail(fmt::format("the prompt is {} tokens, longer than the context of {} (-c)", prompt_tokens, context));
    if (options.max_tokens > 0 && prompt_tokens + options.max_tokens > context)
      return fail(fmt::format("-n {} after a {}-token prompt needs {} positions; the context is {} (-c)",
                              options.max_tokens, prompt_tokens, prompt_tokens + options.max_tokens, context));
    report.prompt_tokens = prompt_tokens;
    if (options.parallel > 1) {
      code = run_parallel(session, runner, options, ids.value(), report);
    } else {
      ember::Tensor prompt_logits;
      if (!options.logits_out.empty()) {
        auto logits = runner.eval_all_logits(ids.value(), report.prompt_ms);
        if (!logits) return fail(logits.status().message());
        prompt_logits = std::move(logits.value());
      } else if (auto status = runner.eval(ids.value(), report.prompt_ms); !status.ok()) {
        return fail(status.message());
      }
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      auto generated = runner.generate(sampler.value(), options.max_tokens, options.stop, nullptr);
      if (!generated) return fail(generated.status().message());
      std::fputc('\n', stdout);
      if (!options.logits_out.empty())
        if (auto status = write_npy(options.logits_out, prompt_logits); !status.ok()) return fail(status.message());
      if (!options.tokens_out.empty())
        if (auto status = write_tokens_json(options.tokens_out, ids.value(), generated.value()); !status.ok())
          return fail(status.message());
    }
  }
  print_timings(report);
  if (options.profile) print_profile(report, session);
  if (g_interrupted.load()) return 128 + g_signal.load();
  return code;
}
