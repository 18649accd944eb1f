// bench-model -m MODEL [-m MODEL ...] [-p 512] [-n 128] [-t 1,2] [-r 5] [-o md|json] [--kv-type f16] [--mlock]:
// llama-bench's prompt-processing (ppN) and generation (tgN) speeds of whole models, with its table columns and
// JSON field names, so ember's numbers and llama.cpp's can be read side by side.
//
// ppN: N seeded random tokens in one forward from position 0 (only the last row's logits, as a prompt needs).
// tgN: N tokens one forward each from position 0. Each test runs once untimed first (tg: one token, as
// llama-bench), then -r timed repetitions; t/s is the mean ± sample standard deviation over them.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ember/cpu_isa.h"
#include "ember/gguf.h"
#include "ember/model.h"
#include "ember/model_config.h"
#include "ember/safetensors.h"
#include "ember/threads.h"
#include "tools/device_flags.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// What the table says about a model file, read before anything is loaded so that a bad model or a context too
// short for the tests is reported before any time is spent benchmarking.
struct ModelInfo {
  fs::path path;
  std::string name;  // file stem or folder name
  std::string type;  // "Q8_0", "Q4_K - Medium", ...
  ember::ModelConfig config;
  uint64_t file_bytes = 0;
};

struct Test {
  int threads = 1;
  int64_t prompt = 0;  // ppN when > 0
  int64_t gen = 0;     // tgN when > 0
  int64_t tokens() const { return prompt + gen; }
  std::string name() const { return prompt > 0 ? fmt::format("pp{}", prompt) : fmt::format("tg{}", gen); }
};

struct Stats {
  double mean = 0, stddev = 0, median = 0;
};

// llama.cpp's llama_ftype names (llama_model_ftype_name), as llama-bench prints general.file_type.
std::string file_type_name(uint64_t file_type) {
  static const std::map<uint64_t, std::string_view> names = {
      {0, "all F32"},       {1, "F16"},           {2, "Q4_0"},          {3, "Q4_1"},          {7, "Q8_0"},
      {8, "Q5_0"},          {9, "Q5_1"},          {10, "Q2_K - Medium"}, {11, "Q3_K - Small"}, {12, "Q3_K - Medium"},
      {13, "Q3_K - Large"}, {14, "Q4_K - Small"}, {15, "Q4_K - Medium"}, {16, "Q5_K - Small"}, {17, "Q5_K - Medium"},
      {18, "Q6_K"},         {32, "BF16"}};
  const auto it = names.find(file_type);
  return it == names.end() ? std::string() : std::string(it->second);
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The type holding the most bytes among the matrices (norms and biases are f32 whatever the file's type).
std::string dominant_type(const std::map<ember::DType, uint64_t>& matrix_bytes) {
  if (matrix_bytes.empty()) return "?";
  const auto it = std::max_element(matrix_bytes.begin(), matrix_bytes.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
  return upper(ember::dtype_name(it->first));
}

ember::Result<ModelInfo> inspect(const fs::path& path) {
  std::error_code error;
  if (!fs::exists(path, error))
    return ember::Status(ember::ErrorCode::io_error, fmt::format("-m {}: no such file or folder", path.string()));
  ModelInfo info;
  info.path = path;
  const bool folder = fs::is_directory(path, error);
  fs::path clean = path.lexically_normal();
  if (clean.filename().empty()) clean = clean.parent_path();  // "model/" names the folder "model"
  info.name = (folder ? clean.filename() : clean.stem()).string();
  std::map<ember::DType, uint64_t> matrix_bytes;
  if (folder) {
    auto config = ember::read_model_config(path / "config.json");
    if (!config) return config.status();
    info.config = config.value();
    auto weights = ember::SafetensorsModel::open(path);
    if (!weights) return weights.status();
    for (const auto& file : weights->files()) info.file_bytes += fs::file_size(file.path(), error);
    for (const auto& name : weights->tensor_names()) {
      const ember::SafetensorsTensorInfo* tensor = weights->find(name);
      if (tensor->shape.rank() == 2) matrix_bytes[tensor->dtype] += tensor->end - tensor->begin;
    }
    info.type = dominant_type(matrix_bytes);
    return info;
  }
  auto file = ember::GgufFile::open(path);
  if (!file) return file.status();
  auto config = ember::model_config_from_gguf(file.value());
  if (!config) return config.status();
  info.config = config.value();
  info.file_bytes = fs::file_size(path, error);
  for (const auto& tensor : file->tensors())
    if (tensor.shape.rank() == 2) matrix_bytes[tensor.dtype] += tensor.bytes;
  const ember::GgufValue* file_type = file->find("general.file_type");
  if (file_type && file_type->as_uint()) info.type = file_type_name(*file_type->as_uint());
  if (info.type.empty()) info.type = dominant_type(matrix_bytes);
  return info;
}

// "1,2,4" into numbers no smaller than `minimum`; the error names the option and the bad item.
ember::Result<std::vector<int64_t>> parse_list(std::string_view option, const std::string& text, int64_t minimum,
                                               int64_t maximum) {
  std::vector<int64_t> values;
  size_t start = 0;
  while (true) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string_view item(text.data() + start, end - start);
    int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (ec == std::errc::result_out_of_range)
      return ember::invalid_argument(fmt::format("{} '{}': {} is past {}", option, text, item, maximum));
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
      return ember::invalid_argument(fmt::format("{} '{}': '{}' is not a whole number", option, text, item));
    if (value < minimum || value > maximum)
      return ember::invalid_argument(
          fmt::format("{} '{}': {} is outside {}..{}", option, text, value, minimum, maximum));
    values.push_back(value);
    if (end == text.size()) return values;
    start = end + 1;
  }
}

Stats statistics(const std::vector<double>& values) {
  Stats stats;
  const auto count = static_cast<double>(values.size());
  stats.mean = std::accumulate(values.begin(), values.end(), 0.0) / count;
  if (values.size() > 1) {
    double squares = 0;
    for (double v : values) squares += (v - stats.mean) * (v - stats.mean);
    stats.stddev = std::sqrt(squares / (count - 1));
  }
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const size_t mid = sorted.size() / 2;
  stats.median = sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return stats;
}

// What a GPU did during the timed passes, from the executor's per-node timings: the time
// its timestamps say it was busy, and how many calls (batches the device ran, each with
// one wait) there were.
// With --device-profile, also each op's part of the busy time (the backend then times
// every node apart) and how many nodes of it the device ran.
struct DeviceShare {
  int64_t busy_ns = 0;
  int64_t device_calls = 0;
  int64_t in_calls_ns = 0;     // the wall time of the device backend's calls
  int64_t preparation_ns = 0;  // the host's part of them before the device could start
  struct OpShare {
    int64_t time_ns = 0;  // device time for the device's ops, wall time for the CPU's
    int64_t nodes = 0;
  };
  std::map<std::string, OpShare> by_op;
  // With --cpu-profile, the CPU's nodes: the wall time of each op's nodes (the executor
  // times every node). Gathered only then: add() runs inside the timed passes, and naming
  // every node of a decoded token costs microseconds.
  bool profile_cpu = false;
  int64_t cpu_ns = 0;
  std::map<std::string, OpShare> cpu_by_op;
  void add(const ember::Model& model) {
    for (const ember::NodeTiming& timing : model.last_timings()) {
      if (timing.backend == "cpu") {
        if (!profile_cpu) continue;
        cpu_ns += timing.elapsed.count();
        std::string key(ember::op_name(timing.op));
        if (timing.op == ember::Op::linear && model.last_graph() != nullptr)
          key += " " + model.last_graph()->node(timing.node).shape.str();
        OpShare& op = cpu_by_op[key];
        op.time_ns += timing.elapsed.count();
        ++op.nodes;
        continue;
      }
      // Later nodes of a batch have no wall time, and no device time unless timed apart.
      busy_ns += timing.device.count();
      in_calls_ns += timing.elapsed.count();
      preparation_ns += timing.preparation.count();
      if (timing.elapsed.count() > 0) ++device_calls;
      OpShare& op = by_op[std::string(ember::op_name(timing.op))];
      op.time_ns += timing.device.count();
      ++op.nodes;
    }
  }
};

// One pp pass, or `gen` tg steps, from position 0, which overwrites whatever the cache held, so every repetition
// starts from an empty context as llama-bench's do.
ember::Status run_once(ember::Model& model, const Test& test, const std::vector<int32_t>& tokens, int64_t gen,
                       DeviceShare* share = nullptr) {
  if (test.prompt > 0) {
    const ember::SequenceTokens part{0, 0, tokens, false};
    EMBER_RETURN_IF_ERROR(model.forward(std::span(&part, 1)).status());
    if (share != nullptr) share->add(model);
    return {};
  }
  for (int64_t i = 0; i < gen; ++i) {
    const ember::SequenceTokens part{0, i, std::span(tokens).subspan(static_cast<size_t>(i), 1), false};
    EMBER_RETURN_IF_ERROR(model.forward(std::span(&part, 1)).status());
    if (share != nullptr) share->add(model);
  }
  return {};
}

// Nanoseconds of each timed repetition; `share` sums the device's part of them.
ember::Result<std::vector<int64_t>> run_test(ember::Model& model, const Test& test, int64_t repetitions,
                                             DeviceShare& share) {
  ember::set_num_threads(test.threads);
  std::mt19937 random(1234);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(model.config().vocab_size - 1));
  std::vector<int32_t> tokens(static_cast<size_t>(test.tokens()));
  for (int32_t& t : tokens) t = token(random);

  EMBER_RETURN_IF_ERROR(run_once(model, test, tokens, 1));  // warm-up: the whole prompt, or one generated token
  std::vector<int64_t> samples;
  for (int64_t r = 0; r < repetitions; ++r) {
    const auto start = Clock::now();
    EMBER_RETURN_IF_ERROR(run_once(model, test, tokens, test.gen, &share));
    samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  }
  return samples;
}

std::string size_text(uint64_t bytes) {
  const double mib = static_cast<double>(bytes) / (1 << 20);
  return mib < 1024 ? fmt::format("{:.2f} MiB", mib) : fmt::format("{:.2f} GiB", mib / 1024);
}

std::string params_text(int64_t params) {
  const double p = static_cast<double>(params);
  return p < 1e9 ? fmt::format("{:.2f} M", p / 1e6) : fmt::format("{:.2f} B", p / 1e9);
}

// llama-bench's model_type: architecture, size class, type ("llama 7B Q4_0").
std::string model_type(const ModelInfo& info, int64_t params) {
  const double p = static_cast<double>(params);
  const std::string size = p < 1e6   ? fmt::format("{:.0f}K", p / 1e3)
                           : p < 1e9 ? fmt::format("{:.0f}M", p / 1e6)
                                     : fmt::format("{:.1f}B", p / 1e9);
  return fmt::format("{} {} {}", ember::architecture_name(info.config.architecture), size, info.type);
}

int fail(const std::string& message, int code) {
  fmt::print(stderr, "bench-model: {}\n", message);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prompt-processing and generation speed of models, as llama-bench measures them."};
  std::vector<std::string> model_paths;
  std::string prompts = "512", gens = "128", threads = std::to_string(ember::num_threads()), repetitions_text = "5";
  std::string output = "md", kv_type_name = "f16";
  app.add_option("-m,--model", model_paths, "GGUF file or Hugging Face folder (repeatable)")->required();
  app.add_option("-p,--n-prompt", prompts, "prompt lengths, comma-separated (0: no pp test)");
  app.add_option("-n,--n-gen", gens, "generation lengths, comma-separated (0: no tg test)");
  app.add_option("-t,--threads", threads, "thread counts, comma-separated");
  app.add_option("-r,--repetitions", repetitions_text, "timed runs per test");
  app.add_option("-o,--output", output, "md or json");
  app.add_option("--kv-type", kv_type_name, "KV cache type: f32, f16 or q8_0");
  bool lock_weights = false;
  app.add_flag("--mlock", lock_weights, "keep the weights in RAM (mlock), as llama-bench's --mlock");
  bool device_profile = false;
  app.add_flag("--device-profile", device_profile,
               "time each offloaded node apart and print the device's time per op (a timestamp after every dispatch "
               "may slow the device a little)");
  bool cpu_profile = false;
  app.add_flag("--cpu-profile", cpu_profile,
               "print the wall time per op of the nodes the CPU ran, and the time outside them (graph, routing)");
  ember::tools::DeviceFlags device;
  ember::tools::add_device_flags(app, device);
  ember::tools::spell_out_ngl(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  constexpr int64_t kMaxTokens = int64_t{1} << 24;
  const auto prompt_list = parse_list("-p", prompts, 0, kMaxTokens);
  const auto gen_list = parse_list("-n", gens, 0, kMaxTokens);
  const auto thread_list = parse_list("-t", threads, 1, 1024);
  const auto repetitions = parse_list("-r", repetitions_text, 1, 1000000);
  for (const auto* parsed : {&prompt_list, &gen_list, &thread_list, &repetitions})
    if (!parsed->ok()) return fail(parsed->status().message(), 2);
  if (repetitions->size() != 1) return fail(fmt::format("-r '{}': one number, not a list", repetitions_text), 2);
  if (output != "md" && output != "json") return fail(fmt::format("-o '{}': md or json", output), 2);
  const auto kv_type = ember::dtype_from_name(kv_type_name);
  if (!kv_type || (*kv_type != ember::DType::f32 && *kv_type != ember::DType::f16 && *kv_type != ember::DType::q8_0))
    return fail(fmt::format("--kv-type '{}': f32, f16 or q8_0", kv_type_name), 2);
  const auto offload = ember::tools::offload_options(device);
  if (!offload) return fail(offload.status().message(), 2);

  // llama-bench's order: every pp test at each thread count, then every tg test.
  std::vector<Test> tests;
  for (int64_t p : *prompt_list)
    if (p > 0)
      for (int64_t t : *thread_list) tests.push_back({static_cast<int>(t), p, 0});
  for (int64_t n : *gen_list)
    if (n > 0)
      for (int64_t t : *thread_list) tests.push_back({static_cast<int>(t), 0, n});
  if (tests.empty()) return fail("-p and -n are all 0: no test to run", 2);
  const int64_t max_prompt = *std::max_element(prompt_list->begin(), prompt_list->end());
  const int64_t max_gen = *std::max_element(gen_list->begin(), gen_list->end());

  std::vector<ModelInfo> models;
  for (const auto& path : model_paths) {
    auto info = inspect(path);
    if (!info) return fail(info.status().message(), 1);
    const int64_t context = info->config.context_length;
    // Rotary positions run past the trained context (llama-bench does the same, so pp512
    // on a 256-token model compares like for like); GPT-2's learned positions end there.
    if (max_prompt > context || max_gen > context) {
      const bool prompt_too_long = max_prompt > context;
      const std::string what = fmt::format("{} {} needs a context of {} tokens but {} has a context length of {}",
                                           prompt_too_long ? "-p" : "-n", prompt_too_long ? max_prompt : max_gen,
                                           prompt_too_long ? max_prompt : max_gen, path, context);
      if (info->config.architecture == ember::Architecture::gpt2) return fail(what, 1);
      fmt::print(stderr, "bench-model: note: {}; running past it\n", what);
    }
    models.push_back(std::move(info.value()));
  }

  size_t name_width = 5, type_width = 4;
  for (const auto& info : models) {
    name_width = std::max(name_width, info.name.size());
    type_width = std::max(type_width, info.type.size());
  }
  const bool markdown = output == "md";
  if (markdown) {
    fmt::print("| {:<{}} | {:>10} | {:>10} | {:<{}} | {:>7} | {:>7} | {:>20} |\n", "model", name_width, "size",
               "params", "type", type_width, "threads", "test", "t/s");
    fmt::print("| {:-<{}} | {:->9}: | {:->9}: | {:-<{}} | {:->6}: | {:->6}: | {:->19}: |\n", "", name_width, "", "",
               "", type_width, "", "", "");
    std::fflush(stdout);
  }

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& info : models) {
    ember::ModelOptions options;
    options.kv_cache_type = *kv_type;
    options.lock_weights = lock_weights;
    options.offload = offload.value();
    options.offload.time_each_node = device_profile;
    // pp and tg tests each start from position 0, so the longest one bounds the cache rows needed.
    options.context_length = std::max(max_prompt, max_gen);
    const auto load_start = Clock::now();
    auto model = ember::Model::load(info.path, options);
    if (!model) return fail(fmt::format("{} (--kv-type {})", model.status().message(), kv_type_name), 1);
    const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - load_start).count();
    const int64_t params = model->parameter_count();

    for (const Test& test : tests) {
      DeviceShare share;
      share.profile_cpu = cpu_profile;
      auto samples = run_test(model.value(), test, repetitions->front(), share);
      if (!samples)
        return fail(fmt::format("{}: {}: {}", info.path.string(), test.name(), samples.status().message()), 1);
      std::vector<double> ns(samples->begin(), samples->end()), ts;
      for (double sample : ns) ts.push_back(static_cast<double>(test.tokens()) * 1e9 / sample);
      const Stats time = statistics(ns), speed = statistics(ts);
      // Per pass (pp) or per token (tg): wall time against the device's busy time.
      const double passes = static_cast<double>(repetitions->front() * (test.prompt > 0 ? 1 : test.gen));
      if (markdown) {
        fmt::print("| {:<{}} | {:>10} | {:>10} | {:<{}} | {:>7} | {:>7} | {:>20} |\n", info.name, name_width,
                   size_text(info.file_bytes), params_text(params), info.type, type_width, test.threads, test.name(),
                   fmt::format("{:.2f} ± {:.2f}", speed.mean, speed.stddev));
        std::fflush(stdout);
      }
      rows.push_back({{"model_filename", info.path.string()},
                      {"model_type", model_type(info, params)},
                      {"model_size", info.file_bytes},
                      {"model_n_params", params},
                      {"n_threads", test.threads},
                      {"cpu_isa", ember::cpu_kernel_isa()},
                      {"type_k", ember::dtype_name(*kv_type)},
                      {"n_prompt", test.prompt},
                      {"n_gen", test.gen},
                      {"avg_ns", static_cast<int64_t>(std::llround(time.mean))},
                      {"stddev_ns", static_cast<int64_t>(std::llround(time.stddev))},
                      {"avg_ts", speed.mean},
                      {"stddev_ts", speed.stddev},
                      {"median_ts", speed.median},
                      {"samples_ns", samples.value()},
                      {"samples_ts", ts},
                      {"device_busy_ns", share.busy_ns},
                      {"device_calls", share.device_calls},
                      {"device_calls_ns", share.in_calls_ns},
                      {"device_preparation_ns", share.preparation_ns}});
      if (cpu_profile && share.cpu_ns > 0) {
        const double wall_ms = std::accumulate(ns.begin(), ns.end(), 0.0) / passes / 1e6;
        const double cpu_ms = static_cast<double>(share.cpu_ns) / passes / 1e6;
        const char* per = test.prompt > 0 ? "pass" : "token";
        fmt::print(stderr, "bench-model: {} {}: {:.3f} ms per {}, {:.3f} ms of it in the CPU's nodes\n", info.name,
                   test.name(), wall_ms, per, cpu_ms);
        for (const auto& [op, part] : share.cpu_by_op)
          fmt::print(stderr, "bench-model: {} {}:   {:<16} {:8.3f} ms per {} on the CPU, {:.1f} nodes\n", info.name,
                     test.name(), op, static_cast<double>(part.time_ns) / passes / 1e6, per,
                     static_cast<double>(part.nodes) / passes);
      }
      if (share.device_calls > 0) {
        const double wall_ms = std::accumulate(ns.begin(), ns.end(), 0.0) / passes / 1e6;
        const double busy_ms = static_cast<double>(share.busy_ns) / passes / 1e6;
        fmt::print(stderr,
                   "bench-model: {} {}: {:.3f} ms per {}, the device busy {:.3f} ms of it ({:.0f}%), {:.1f} "
                   "device calls each\n",
                   info.name, test.name(), wall_ms, test.prompt > 0 ? "pass" : "token", busy_ms,
                   100.0 * busy_ms / wall_ms, static_cast<double>(share.device_calls) / passes);
        // The host's rest of the time: in each device call before the device could start,
        // after that beyond the device's busy time (submitting, waking, reading results),
        // and outside the device's calls (the graph, routing, CPU nodes).
        const double calls_ms = static_cast<double>(share.in_calls_ns) / passes / 1e6;
        const double preparing_ms = static_cast<double>(share.preparation_ns) / passes / 1e6;
        fmt::print(stderr,
                   "bench-model: {} {}: the host's rest: {:.3f} ms preparing before the device starts, {:.3f} ms "
                   "submitting and waiting beyond the busy time, {:.3f} ms outside the device's calls\n",
                   info.name, test.name(), preparing_ms, calls_ms - preparing_ms - busy_ms, wall_ms - calls_ms);
        if (device_profile)
          for (const auto& [op, part] : share.by_op)
            fmt::print(stderr, "bench-model: {} {}:   {:<16} {:8.3f} ms per {} on the device, {:.1f} nodes\n", info.name,
                       test.name(), op, static_cast<double>(part.time_ns) / passes / 1e6,
                       test.prompt > 0 ? "pass" : "token", static_cast<double>(part.nodes) / passes);
      }
    }
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    // ru_maxrss is in KiB on Linux, and the process's peak so far: with several -m it covers the earlier models too.
    fmt::print(stderr, "bench-model: {}: loaded in {:.1f} ms, peak RSS {:.1f} MiB\n", info.path.string(), load_ms,
               static_cast<double>(usage.ru_maxrss) / 1024);
  }
  if (!markdown) fmt::print("{}\n", rows.dump(2));
  return 0;
}
