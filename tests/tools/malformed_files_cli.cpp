// Broken model files through the command-line tools: from a valid GGUF file and a valid
// safetensors folder, derive one broken copy per defect and check that run-model and
// quantize-model each exit non-zero with one stderr line naming the file and the
// problem, write nothing, and leave the input as it was.
// Usage: malformed_files_cli RUN_MODEL QUANTIZE_MODEL SCRATCH_DIR
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

struct Tools {
  fs::path run_model, quantize_model, scratch;
};
Tools g_tools;

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put32(Bytes& bytes, uint64_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes.at(at + i) = static_cast<uint8_t>(value >> (8 * i));
}
void put64(Bytes& bytes, uint64_t at, uint64_t value) {
  for (int i = 0; i < 8; ++i) bytes.at(at + i) = static_cast<uint8_t>(value >> (8 * i));
}
uint32_t get32(const Bytes& bytes, uint64_t at) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | bytes.at(at + i);
  return value;
}
uint64_t get64(const Bytes& bytes, uint64_t at) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes.at(at + i);
  return value;
}
void append32(Bytes& bytes, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
void append64(Bytes& bytes, uint64_t value) {
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// Where each section of a GGUF file starts and ends, found by walking it independently
// of the reader under test.
struct GgufLayout {
  struct Key {
    std::string name;
    uint64_t start = 0, value_at = 0, end = 0;  // value_at: the value, past its type
    uint32_t type = 0;
  };
  struct TensorEntry {
    std::string name;
    uint64_t name_at = 0, dims_at = 0, type_at = 0, offset_at = 0, end = 0;
    uint32_t n_dims = 0;
  };
  static constexpr uint64_t kHeaderBytes = 24;
  std::vector<Key> keys;
  std::vector<TensorEntry> tensors;
  uint64_t table_end = 0, data_start = 0;

  const Key& key(const std::string& name) const {
    for (const Key& entry : keys)
      if (entry.name == name) return entry;
    throw std::runtime_error("no key " + name);
  }
};

GgufLayout walk_gguf(const Bytes& bytes) {
  GgufLayout layout;
  uint64_t at = GgufLayout::kHeaderBytes;
  const auto read_string = [&] {
    const uint64_t length = get64(bytes, at);
    std::string text(reinterpret_cast<const char*>(&bytes.at(at + 8)), length);
    at += 8 + length;
    return text;
  };
  const std::function<void(uint32_t)> skip_value = [&](uint32_t type) {
    static constexpr uint64_t kFixed[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      read_string();
    } else if (type == 9) {
      const uint32_t element = get32(bytes, at);
      const uint64_t count = get64(bytes, at + 4);
      at += 12;
      for (uint64_t i = 0; i < count; ++i) skip_value(element);
    } else {
      at += kFixed[type];
    }
  };
  const uint64_t tensor_count = get64(bytes, 8), key_count = get64(bytes, 16);
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < key_count; ++i) {
    GgufLayout::Key key;
    key.start = at;
    key.name = read_string();
    key.type = get32(bytes, at);
    key.value_at = at += 4;
    if (key.name == "general.alignment") alignment = get32(bytes, at);
    skip_value(key.type);
    key.end = at;
    layout.keys.push_back(key);
  }
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufLayout::TensorEntry tensor;
    tensor.name_at = at + 8;
    tensor.name = read_string();
    tensor.n_dims = get32(bytes, at);
    tensor.dims_at = at + 4;
    tensor.type_at = tensor.dims_at + 8 * tensor.n_dims;
    tensor.offset_at = tensor.type_at + 4;
    at = tensor.end = tensor.offset_at + 8;
    layout.tensors.push_back(tensor);
  }
  layout.table_end = at;
  layout.data_start = (at + alignment - 1) / alignment * alignment;
  return layout;
}

// Every file under `path` (or `path` itself) with its bytes, to prove nothing changed.
std::vector<std::pair<fs::path, Bytes>> snapshot(const fs::path& path) {
  std::vector<std::pair<fs::path, Bytes>> files;
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::directory_iterator(path)) files.emplace_back(entry.path(), read_bytes(entry.path()));
    std::sort(files.begin(), files.end());
  } else {
    files.emplace_back(path, read_bytes(path));
  }
  return files;
}

struct Outcome {
  bool exited = false;  // false: killed by a signal
  int code = -1;
  std::string err;
};

// Runs a tool with `work` as its working folder, stdout discarded and stderr kept.
Outcome run_tool(const std::vector<std::string>& args, const fs::path& work) {
  const fs::path err_path = work.parent_path() / "stderr.txt";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_WRONLY);
    const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (null_fd < 0 || err_fd < 0 || ::dup2(null_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0 ||
        ::chdir(work.c_str()) != 0)
      ::_exit(126);
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  Outcome outcome;
  outcome.exited = WIFEXITED(status);
  outcome.code = outcome.exited ? WEXITSTATUS(status) : WTERMSIG(status);
  outcome.err = read_text(err_path);
  return outcome;
}

std::vector<std::string> non_empty_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// The demo model's tensor table happens to end on the 32-byte alignment, so it has no
// padding before the data to cut into: one more metadata entry (21 bytes) and 11 zero
// bytes after the table keep every tensor offset valid and put 11 bytes of padding there.
Bytes with_alignment_padding(Bytes bytes) {
  const GgufLayout layout = walk_gguf(bytes);
  if (layout.data_start != layout.table_end) throw std::runtime_error("the demo model already has padding");
  Bytes entry;
  const std::string key = "test.padding";
  append64(entry, key.size());
  entry.insert(entry.end(), key.begin(), key.end());
  append32(entry, 0);  // uint8
  entry.push_back(1);
  const uint64_t padding = 32 - entry.size() % 32;
  bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(layout.data_start), padding, uint8_t{0});
  bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(layout.keys.back().end), entry.begin(), entry.end());
  put64(bytes, 16, get64(bytes, 16) + 1);
  return bytes;
}

class MalformedFilesCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(g_tools.scratch);
    fs::create_directories(g_tools.scratch);
    valid_gguf_ = new Bytes(with_alignment_padding(read_bytes(fs::path(EMBER_DEMO_MODEL))));
    valid_safetensors_ = new Bytes(read_bytes(fs::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m" / "model.safetensors"));
  }
  static void TearDownTestSuite() {
    delete valid_gguf_;
    delete valid_safetensors_;
  }

  // The case's own folder: `input` for the model, `work` as the tools' working folder and
  // `out` for quantize-model's output; `work` and `out` must stay empty.
  fs::path case_folder(const std::string& name) {
    const fs::path folder = g_tools.scratch / name;
    fs::remove_all(folder);
    fs::create_directories(folder / "work");
    fs::create_directories(folder / "out");
    return folder;
  }

  fs::path save_gguf(const std::string& name, const Bytes& bytes) {
    const fs::path path = case_folder(name) / "model.gguf";
    write_bytes(path, bytes);
    return path;
  }

  // A copy of the demo folder (config, tokenizer) with `bytes` as its model.safetensors.
  fs::path save_safetensors(const std::string& name, const Bytes& bytes) {
    const fs::path model = case_folder(name) / "model";
    fs::create_directories(model);
    const fs::path demo = fs::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m";
    for (const char* file : {"config.json", "generation_config.json", "tokenizer.json"})
      fs::copy_file(demo / file, model / file);
    write_bytes(model / "model.safetensors", bytes);
    return model;
  }

  // Both tools refuse `input`: a non-zero exit of their own (no signal), one stderr line
  // that names `named_file` and holds `keyword`, nothing written, the input unchanged.
  void expect_refused(const fs::path& input, const fs::path& named_file, const std::string& keyword) {
    const fs::path folder = input.parent_path();
    const fs::path work = folder / "work", out = folder / "out";
    const auto before = snapshot(input);
    const std::vector<std::vector<std::string>> commands = {
        {g_tools.run_model.string(), "-m", input.string(), "-p", "hi", "-n", "1"},
        {g_tools.quantize_model.string(), input.string(), (out / "out.gguf").string(), "--type", "q8_0"},
    };
    for (const auto& command : commands) {
      SCOPED_TRACE(command[0]);
      const Outcome outcome = run_tool(command, work);
      EXPECT_TRUE(outcome.exited) << "killed by signal " << outcome.code << ":\n" << outcome.err;
      EXPECT_NE(outcome.code, 0) << "accepted the file";
      EXPECT_LT(outcome.code, 128) << outcome.err;
      const auto lines = non_empty_lines(outcome.err);
      ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << outcome.err;
      EXPECT_NE(lines[0].find(named_file.string()), std::string::npos) << "does not name the file: " << lines[0];
      EXPECT_NE(lines[0].find(keyword), std::string::npos) << "lacks '" << keyword << "': " << lines[0];
      EXPECT_TRUE(fs::is_empty(out)) << "quantize-model left output behind";
      EXPECT_TRUE(fs::is_empty(work)) << "a file appeared in the working folder";
      EXPECT_TRUE(snapshot(input) == before) << "the input changed";
    }
    // Kept for a look when something failed; the demo-sized copies add up otherwise.
    if (!HasFailure()) fs::remove_all(folder);
  }

  static Bytes* valid_gguf_;
  static Bytes* valid_safetensors_;
};
Bytes* MalformedFilesCli::valid_gguf_ = nullptr;
Bytes* MalformedFilesCli::valid_safetensors_ = nullptr;

// The control: the files the cases derive from are accepted, so a refusal below is
// caused by the defect, not by the setup.
TEST_F(MalformedFilesCli, ValidFilesAreAccepted) {
  const fs::path gguf = save_gguf("valid_gguf", *valid_gguf_);
  const fs::path folder = save_safetensors("valid_safetensors", *valid_safetensors_);
  for (const fs::path& input : {gguf, folder}) {
    SCOPED_TRACE(input.string());
    const fs::path out = input.parent_path() / "out" / "out.gguf";
    Outcome outcome = run_tool({g_tools.run_model.string(), "-m", input.string(), "-p", "hi", "-n", "1"}, out.parent_path());
    EXPECT_EQ(outcome.code, 0) << outcome.err;
    outcome = run_tool({g_tools.quantize_model.string(), input.string(), out.string(), "--type", "q8_0"}, out.parent_path());
    EXPECT_EQ(outcome.code, 0) << outcome.err;
    EXPECT_TRUE(fs::exists(out));
  }
}

TEST_F(MalformedFilesCli, GgufTruncatedAtEverySectionBoundary) {
  const Bytes& valid = *valid_gguf_;
  const GgufLayout layout = walk_gguf(valid);
  ASSERT_GT(layout.data_start, layout.table_end) << "no alignment padding to cut into";
  std::vector<std::pair<std::string, uint64_t>> cuts = {
      {"empty", 0}, {"inside the magic", 2}, {"inside the header", 12}, {"after the header", GgufLayout::kHeaderBytes}};
  for (const auto& key : layout.keys) {
    cuts.emplace_back("inside key " + key.name, key.value_at - 2);
    cuts.emplace_back("after key " + key.name, key.end);
  }
  // After every tensor entry; inside only the first and the last, which are enough to reach
  // each field's read.
  for (const auto& tensor : {layout.tensors.front(), layout.tensors.back()}) {
    cuts.emplace_back("inside the name of " + tensor.name, tensor.name_at + 2);
    cuts.emplace_back("inside the dimensions of " + tensor.name, tensor.dims_at + 3);
    cuts.emplace_back("inside the type of " + tensor.name, tensor.type_at + 1);
    cuts.emplace_back("inside the offset of " + tensor.name, tensor.offset_at + 5);
  }
  for (const auto& tensor : layout.tensors) cuts.emplace_back("after the entry of " + tensor.name, tensor.end);
  cuts.emplace_back("inside the alignment padding", (layout.table_end + layout.data_start) / 2);
  cuts.emplace_back("at the data section", layout.data_start);
  cuts.emplace_back("inside the tensor data", (layout.data_start + valid.size()) / 2);
  cuts.emplace_back("one byte short", valid.size() - 1);
  int index = 0;
  for (const auto& [where, length] : cuts) {
    SCOPED_TRACE("truncated " + where + " (" + std::to_string(length) + " bytes)");
    const fs::path path = save_gguf("gguf_truncated_" + std::to_string(index++), Bytes(valid.begin(), valid.begin() + length));
    expect_refused(path, path, "end of the file");
  }
}

struct GgufCase {
  std::string name;
  std::function<void(Bytes&, const GgufLayout&)> corrupt;
  std::string keyword;
};

// A metadata entry `deep` holding arrays nested `depth` levels, put first in the metadata.
void insert_nested_arrays(Bytes& bytes, int depth) {
  Bytes entry;
  const std::string key = "deep";
  append64(entry, key.size());
  entry.insert(entry.end(), key.begin(), key.end());
  append32(entry, 9);
  for (int level = 1; level < depth; ++level) {
    append32(entry, 9);
    append64(entry, 1);
  }
  append32(entry, 0);
  append64(entry, 1);
  entry.push_back(1);
  bytes.insert(bytes.begin() + GgufLayout::kHeaderBytes, entry.begin(), entry.end());
  put64(bytes, 16, get64(bytes, 16) + 1);
}

TEST_F(MalformedFilesCli, GgufCorruptions) {
  const auto tensor = [](const GgufLayout& layout, size_t index) { return layout.tensors.at(index); };
  const std::vector<GgufCase> cases = {
      {"wrong magic", [](Bytes& b, const GgufLayout&) { b[0] = 'X'; }, "bad magic"},
      {"version 1", [](Bytes& b, const GgufLayout&) { put32(b, 4, 1); }, "unsupported GGUF version 1"},
      {"version 4", [](Bytes& b, const GgufLayout&) { put32(b, 4, 4); }, "unsupported GGUF version 4"},
      {"tensor count 2^63", [](Bytes& b, const GgufLayout&) { put64(b, 8, uint64_t{1} << 63); }, "tensor count"},
      {"metadata count 2^63", [](Bytes& b, const GgufLayout&) { put64(b, 16, uint64_t{1} << 63); }, "metadata key count"},
      {"key length past the end", [](Bytes& b, const GgufLayout& l) { put64(b, l.keys[0].start, b.size()); },
       "past the end of the file"},
      {"string value past the end",
       [](Bytes& b, const GgufLayout& l) { put64(b, l.key("general.architecture").value_at, b.size()); },
       "past the end of the file"},
      {"string in an array past the end",
       [](Bytes& b, const GgufLayout& l) { put64(b, l.key("tokenizer.ggml.tokens").value_at + 12, b.size()); },
       "past the end of the file"},
      {"string length 2^64-1",
       [](Bytes& b, const GgufLayout& l) { put64(b, l.key("general.architecture").value_at, ~uint64_t{0}); },
       "exceeds the limit"},
      {"array count 2^63",
       [](Bytes& b, const GgufLayout& l) { put64(b, l.key("tokenizer.ggml.tokens").value_at + 4, uint64_t{1} << 63); },
       "element count"},
      {"arrays nested 100000 deep", [](Bytes& b, const GgufLayout&) { insert_nested_arrays(b, 100000); },
       "'deep': arrays nested deeper than the limit of 4"},
      {"unknown value type", [](Bytes& b, const GgufLayout& l) { put32(b, l.keys[0].value_at - 4, 99); },
       "unknown value type 99"},
      {"invalid UTF-8 in a key", [](Bytes& b, const GgufLayout& l) { b[l.keys[0].start + 8] = 0xFF; }, "not valid UTF-8"},
      {"invalid UTF-8 in a tensor name", [&](Bytes& b, const GgufLayout& l) { b[tensor(l, 1).name_at] = 0xC0; },
       "tensor #1 name is not valid UTF-8"},
      {"duplicate tensor name",
       [&](Bytes& b, const GgufLayout& l) {
         // Two entries whose names have the same length, the second renamed to the first.
         for (size_t i = 0; i < l.tensors.size(); ++i)
           for (size_t j = i + 1; j < l.tensors.size(); ++j)
             if (l.tensors[i].name.size() == l.tensors[j].name.size()) {
               std::memcpy(&b[l.tensors[j].name_at], l.tensors[i].name.data(), l.tensors[i].name.size());
               return;
             }
         throw std::runtime_error("no two tensor names of one length");
       },
       "duplicate tensor name"},
      {"dimension product overflows 64 bits",
       [&](Bytes& b, const GgufLayout& l) {
         const auto entry = std::find_if(l.tensors.begin(), l.tensors.end(), [](const auto& t) { return t.n_dims == 2; });
         put64(b, entry->dims_at, uint64_t{1} << 32);
         put64(b, entry->dims_at + 8, uint64_t{1} << 32);
       },
       "overflows 64 bits"},
      {"unknown ggml type", [&](Bytes& b, const GgufLayout& l) { put32(b, tensor(l, 0).type_at, 99); },
       "unsupported ggml type 99"},
      {"offset past the end", [&](Bytes& b, const GgufLayout& l) { put64(b, tensor(l, 1).offset_at, uint64_t{1} << 40); },
       "past the end of the file"},
      {"offset plus size wraps around",
       [&](Bytes& b, const GgufLayout& l) { put64(b, tensor(l, 1).offset_at, ~uint64_t{63}); }, "past the end of the file"},
      {"misaligned offset",
       [&](Bytes& b, const GgufLayout& l) { put64(b, tensor(l, 1).offset_at, get64(b, tensor(l, 1).offset_at) + 16); },
       "is not aligned to"},
      {"overlapping tensors",
       [&](Bytes& b, const GgufLayout& l) { put64(b, tensor(l, 1).offset_at, get64(b, tensor(l, 0).offset_at)); },
       "overlap"},
      {"newline and escape in a tensor name",
       [&](Bytes& b, const GgufLayout& l) {
         b[tensor(l, 0).name_at + 1] = '\n';
         b[tensor(l, 0).name_at + 2] = '\x1b';
         put32(b, tensor(l, 0).type_at, 99);
       },
       "\\n\\x1b"},
  };
  int index = 0;
  for (const GgufCase& broken : cases) {
    SCOPED_TRACE(broken.name);
    Bytes bytes = *valid_gguf_;
    broken.corrupt(bytes, walk_gguf(bytes));
    ASSERT_NE(bytes, *valid_gguf_);
    const fs::path path = save_gguf("gguf_case_" + std::to_string(index++), bytes);
    expect_refused(path, path, broken.keyword);
  }
}

// The safetensors file as its header (parsed, in file order) and the data after it.
struct Safetensors {
  nlohmann::ordered_json header;
  Bytes data;

  static Safetensors split(const Bytes& bytes) {
    const uint64_t length = get64(bytes, 0);
    Safetensors file;
    file.header = nlohmann::ordered_json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<ptrdiff_t>(length));
    file.data.assign(bytes.begin() + 8 + static_cast<ptrdiff_t>(length), bytes.end());
    return file;
  }
  Bytes join() const { return join_text(header.dump()); }
  Bytes join_text(const std::string& text) const {
    Bytes bytes;
    append64(bytes, text.size());
    bytes.insert(bytes.end(), text.begin(), text.end());
    bytes.insert(bytes.end(), data.begin(), data.end());
    return bytes;
  }
  // The first tensor entry (the header may start with __metadata__).
  nlohmann::ordered_json& first_tensor() {
    for (auto& [name, entry] : header.items())
      if (name != "__metadata__") return entry;
    throw std::runtime_error("no tensors");
  }
  std::string first_tensor_name() const {
    for (const auto& [name, entry] : header.items())
      if (name != "__metadata__") return name;
    throw std::runtime_error("no tensors");
  }
};

TEST_F(MalformedFilesCli, SafetensorsTruncatedAtEverySectionBoundary) {
  const Bytes& valid = *valid_safetensors_;
  const uint64_t header_end = 8 + get64(valid, 0);
  const std::vector<std::pair<std::string, uint64_t>> cuts = {
      {"empty", 0},
      {"inside the header length", 4},
      {"after the header length", 8},
      {"inside the header", 8 + (header_end - 8) / 2},
      {"after the header", header_end},
      {"inside the tensor data", (header_end + valid.size()) / 2},
      {"one byte short", valid.size() - 1},
  };
  const std::vector<std::string> keywords = {"shorter than the 8-byte header length", "shorter than the 8-byte header length",
                                             "header length", "header length", "past the data section",
                                             "past the data section", "past the data section"};
  for (size_t i = 0; i < cuts.size(); ++i) {
    SCOPED_TRACE("truncated " + cuts[i].first);
    const fs::path folder = save_safetensors("safetensors_truncated_" + std::to_string(i),
                                             Bytes(valid.begin(), valid.begin() + static_cast<ptrdiff_t>(cuts[i].second)));
    expect_refused(folder, folder / "model.safetensors", keywords[i]);
  }
}

struct SafetensorsCase {
  std::string name;
  std::function<Bytes(Safetensors&)> corrupt;
  std::string keyword;
};

TEST_F(MalformedFilesCli, SafetensorsCorruptions) {
  const std::vector<SafetensorsCase> cases = {
      {"header length past the file",
       [](Safetensors& f) {
         Bytes bytes = f.join();
         put64(bytes, 0, bytes.size());
         return bytes;
       },
       "is larger than the"},
      {"header length 2^63",
       [](Safetensors& f) {
         Bytes bytes = f.join();
         put64(bytes, 0, uint64_t{1} << 63);
         return bytes;
       },
       "is larger than the"},
      {"header not JSON", [](Safetensors& f) { return f.join_text("{\"a\": "); }, "not valid JSON"},
      {"header a JSON array", [](Safetensors& f) { return f.join_text("[1, 2, 3]"); }, "not an object"},
      {"header a JSON string", [](Safetensors& f) { return f.join_text("\"weights\""); }, "not an object"},
      {"invalid UTF-8 in a name",
       [](Safetensors& f) {
         std::string text = f.header.dump();
         text[text.find(f.first_tensor_name())] = '\xff';
         return f.join_text(text);
       },
       "UTF-8"},
      {"duplicate name",
       [](Safetensors& f) {
         std::string text = f.header.dump();
         text.insert(1, "\"" + f.first_tensor_name() + "\":{},");
         return f.join_text(text);
       },
       "twice"},
      {"unknown dtype",
       [](Safetensors& f) {
         f.first_tensor()["dtype"] = "Q99";
         return f.join();
       },
       "unsupported dtype Q99"},
      {"dimension product overflows 64 bits",
       [](Safetensors& f) {
         f.first_tensor()["shape"] = {uint64_t{1} << 32, uint64_t{1} << 32};
         return f.join();
       },
       "overflows 64 bits"},
      {"negative dimension",
       [](Safetensors& f) {
         f.first_tensor()["shape"] = {-1, 4};
         return f.join();
       },
       "not a non-negative integer"},
      {"offsets past the end",
       [](Safetensors& f) {
         f.first_tensor()["data_offsets"] = {f.data.size(), f.data.size() + 64};
         return f.join();
       },
       "past the data section"},
      {"offsets backwards",
       [](Safetensors& f) {
         f.first_tensor()["data_offsets"] = {64, 0};
         return f.join();
       },
       "run backwards"},
      {"offsets do not match the shape",
       [](Safetensors& f) {
         auto& offsets = f.first_tensor()["data_offsets"];
         offsets[1] = offsets[1].get<uint64_t>() - 2;
         return f.join();
       },
       "needs"},
      {"overlapping tensors",
       [](Safetensors& f) {
         // Two entries of one byte size, the second pointed at the first one's bytes.
         std::vector<nlohmann::ordered_json*> entries;
         for (auto& [name, entry] : f.header.items())
           if (name != "__metadata__") entries.push_back(&entry);
         const auto size = [](const nlohmann::ordered_json* e) {
           return (*e)["data_offsets"][1].get<uint64_t>() - (*e)["data_offsets"][0].get<uint64_t>();
         };
         for (size_t i = 0; i < entries.size(); ++i)
           for (size_t j = i + 1; j < entries.size(); ++j)
             if (size(entries[i]) == size(entries[j]) && (*entries[i])["dtype"] == (*entries[j])["dtype"]) {
               (*entries[j])["data_offsets"] = (*entries[i])["data_offsets"];
               return f.join();
             }
         throw std::runtime_error("no two tensors of one size");
       },
       "overlap"},
      {"arrays nested a million deep",
       [](Safetensors& f) {
         std::string text = f.header.dump();
         text.insert(1, "\"deep\":" + std::string(1000000, '[') + std::string(1000000, ']') + ",");
         return f.join_text(text);
       },
       "header nests JSON deeper than the limit of 8 levels"},
      {"__metadata__ not an object",
       [](Safetensors& f) {
         f.header["__metadata__"] = 5;
         return f.join();
       },
       "__metadata__ is not an object"},
      {"newline and escape in a name",
       [](Safetensors& f) {
         std::string text = f.header.dump();
         const std::string name = f.first_tensor_name();
         f.first_tensor()["dtype"] = "Q99";
         text = f.header.dump();
         text.replace(text.find(name), name.size(), "bad\\nname\\u001b");
         return f.join_text(text);
       },
       "bad\\nname\\x1b"},
  };
  int index = 0;
  for (const SafetensorsCase& broken : cases) {
    SCOPED_TRACE(broken.name);
    Safetensors file = Safetensors::split(*valid_safetensors_);
    const Bytes bytes = broken.corrupt(file);
    ASSERT_NE(bytes, *valid_safetensors_);
    const fs::path folder = save_safetensors("safetensors_case_" + std::to_string(index++), bytes);
    expect_refused(folder, folder / "model.safetensors", broken.keyword);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s RUN_MODEL QUANTIZE_MODEL SCRATCH_DIR\n", argv[0]);
    return 2;
  }
  g_tools = {fs::absolute(argv[1]), fs::absolute(argv[2]), fs::absolute(argv[3])};
  return RUN_ALL_TESTS();
}
