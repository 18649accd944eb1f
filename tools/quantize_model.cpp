// quantize-model INPUT OUTPUT.gguf --type TYPE: converts a Hugging Face folder or a GGUF
// file into one GGUF file of the chosen type. Thin CLI over ember::quantize_model.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>

#include <fmt/format.h>

#include "ember/quantize.h"

namespace {

std::atomic<bool> g_interrupted{false};
// The signal that stopped the conversion: the exit status is 128 + its number, as a
// shell reports a process the signal killed (130 for Ctrl-C, 143 for SIGTERM).
std::atomic<int> g_signal{0};

extern "C" void on_signal(int signal) {
  g_signal.store(signal);
  g_interrupted.store(true);
}

// One status line redrawn in place: tensor i/N, name, MB/s of input, ETA.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

  void update(size_t index, size_t total, const ember::TensorPlan* tensor, uint64_t bytes_done, uint64_t bytes_total) {
    if (!enabled_) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = seconds > 0 ? bytes_done / seconds : 0.0;
    const double eta = rate > 0 ? (bytes_total - bytes_done) / rate : 0.0;
    const std::string name = tensor ? tensor->name : "done";
    std::fprintf(stderr, "\r[%zu/%zu] %-40.40s %8.1f MB/s  ETA %5.1f s", std::min(index + 1, total), total, name.c_str(),
                 rate / 1e6, eta);
    if (index == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
};

void print_plan(const ember::QuantizeReport& report) {
  for (const auto& tensor : report.plan)
    fmt::print("{:<40} {:<20} {:>5} -> {:<5} {}\n", tensor.name, tensor.shape.str(), ember::dtype_name(tensor.from),
               ember::dtype_name(tensor.to), tensor.note);
}

void print_summary(const ember::QuantizeReport& report) {
  for (const auto& tensor : report.plan)
    if (!tensor.note.empty()) fmt::print(stderr, "quantize-model: {}: {}\n", tensor.name, tensor.note);
  fmt::print("{:<6} {:>8} {:>14} {:>14} {:>12}\n", "type", "tensors", "bytes in", "bytes out", "rms error");
  uint64_t in = 0, out = 0;
  for (const auto& [type, totals] : report.by_type) {
    fmt::print("{:<6} {:>8} {:>14} {:>14} {:>12.3e}\n", ember::dtype_name(type), totals.tensors, totals.bytes_in,
               totals.bytes_out, totals.rms_error());
    in += totals.bytes_in;
    out += totals.bytes_out;
  }
  fmt::print("total  {:>8} {:>14} {:>14}   in {:.2f} s\n", report.plan.size(), in, out, report.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Convert a Hugging Face model folder or a GGUF file into a GGUF file of one type."};
  ember::QuantizeOptions options;
  std::string input, output, type_name;
  app.add_option("input", input, "Hugging Face folder or GGUF file")->required();
  app.add_option("output", output, "output GGUF file")->required();
  app.add_option("--type", type_name, "f32, f16, bf16, q8_0, q4_0, q4_1, q4_k_m or q6_k")->required();
  app.add_flag("--keep-output", options.keep_output, "leave token_embd and output unquantized");
  app.add_option("--threads,-t", options.threads, "threads (default: one per core)")->check(CLI::NonNegativeNumber);
  app.add_flag("--dry-run", options.dry_run, "print the plan, write nothing");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  const auto target = ember::quantize_target_from_name(type_name);
  if (!target) {
    fmt::print(stderr, "quantize-model: unknown --type '{}' (f32, f16, bf16, q8_0, q4_0, q4_1, q4_k_m, q6_k)\n", type_name);
    return 2;
  }
  options.input = input;
  options.output = output;
  options.target = *target;

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Past a file-size limit the write must fail (EFBIG) so the temporary file is removed,
  // rather than the default SIGXFSZ killing the process and leaving it behind.
  std::signal(SIGXFSZ, SIG_IGN);
  ProgressBar bar(!options.dry_run && isatty(STDERR_FILENO));
  auto report = ember::quantize_model(
      options,
      [&](size_t index, size_t total, const ember::TensorPlan* tensor, uint64_t bytes_done, uint64_t bytes_total) {
        bar.update(index, total, tensor, bytes_done, bytes_total);
      },
      &g_interrupted);
  if (!report) {
    fmt::print(stderr, "\nquantize-model: {}\n", report.status().message());
    return g_interrupted.load() ? 128 + g_signal.load() : 1;
  }
  if (options.dry_run) {
    print_plan(report.value());
    return 0;
  }
  print_summary(report.value());
  return 0;
}
