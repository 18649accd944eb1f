// The Llama forward pass against reference logits of the demo model (computed by
// Hugging Face transformers in f32), its KV cache, the GGUF path and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ember/executor.h"
#include "ember/graph.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "core/logit_compare.h"
#include "model_builder.h"
#include "npy.h"

namespace ember {
namespace {

using testing::relative_error;
using testing::scientific;
using testing::ScratchDir;

const std::filesystem::path kDemo = std::filesystem::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m";
constexpr int32_t kDemoEos = 1;
// An f32 KV cache: comparisons with the reference need no rounding of keys and values.
const ModelOptions kExact{.kv_cache_type = DType::f32};

const std::vector<std::vector<int32_t>> kPrompts = {
    {318, 3131, 291, 687, 301}, {34, 989}, {50, 27, 2905, 779, 265, 483, 3632}};

const std::vector<std::vector<int32_t>> kGreedy = {
    {260, 200, 77, 553, 304, 260, 277, 1076, 291, 260, 277, 1076, 291, 260, 277, 1076,
     291, 260, 277, 1076, 291, 260, 200, 81, 360, 321, 15, 222, 439, 573, 572, 301},
    {301, 260, 200, 77, 553, 291, 260, 989, 15, 222, 689, 301, 260, 812, 609, 3611,
     13, 304, 260, 277, 1076, 291, 265, 200, 642, 86, 3232, 373, 384, 13, 265, 782},
    {526, 34, 27, 222, 1335, 13, 265, 782, 301, 260, 636, 1856, 13, 304, 265, 703,
     301, 260, 636, 1856, 290, 199, 199, 292, 1532, 702, 373, 523, 1}};

int32_t argmax_of_last_row(const Tensor& logits) {
  auto data = logits.read<float>();
  EXPECT_TRUE(data.ok());
  const float* row = data.value() + (logits.dim(0) - 1) * logits.dim(1);
  return static_cast<int32_t>(std::max_element(row, row + logits.dim(1)) - row);
}

Tensor stack_rows(const std::vector<Tensor>& rows) {
  auto stacked = Tensor::empty(Shape{static_cast<int64_t>(rows.size()), rows.front().dim(1)}, DType::f32);
  EXPECT_TRUE(stacked.ok());
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t c = 0; c < rows[r].dim(1); ++c) stacked->set({static_cast<int64_t>(r), c}, rows[r].get({0, c}));
  return stacked.value();
}

Tensor reference_logits(size_t prompt) {
  auto logits = testing::read_npy(kDemo / ("logits_" + std::to_string(prompt) + ".npy"));
  EXPECT_TRUE(logits.ok()) << logits.status().message();
  return logits.ok() ? logits.value() : Tensor();
}

// Logits of `tokens` fed one at a time through the cache, as [T, vocab].
Tensor token_by_token(Model& model, const std::vector<int32_t>& tokens) {
  std::vector<Tensor> rows;
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto logits = model.forward({&tokens[i], 1}, static_cast<int64_t>(i));
    EXPECT_TRUE(logits.ok()) << logits.status().message();
    rows.push_back(logits.value());
  }
  return stack_rows(rows);
}

Tensor filled(const Shape& shape, DType dtype, float start) {
  auto tensor = Tensor::empty(shape, dtype);
  EXPECT_TRUE(tensor.ok());
  for (int64_t i = 0; i < tensor->elements(); ++i) tensor->set_flat(i, start + 0.01f * static_cast<float>(i % 37));
  return tensor.value();
}

TEST(CachedAttentionNode, BuilderChecksShapesAndTypes) {
  const auto build = [](const Shape& k_cache, DType k_type, DType v_type, int64_t position) {
    Graph graph;
    const NodeId q = graph.input("q", Shape{2, 4, 8});
    const NodeId k = graph.input("k", Shape{2, 2, 8});
    const NodeId v = graph.input("v", Shape{2, 2, 8});
    const Graph::CacheSegment segment{graph.constant("k_cache", filled(k_cache, k_type, 0.0f)),
                                      graph.constant("v_cache", filled(Shape{6, 2, 8}, v_type, 0.0f)),
                                      {2, position}};
    graph.cached_attention(q, k, v, std::span(&segment, 1), 0.5f);
    return graph.status();
  };
  EXPECT_TRUE(build(Shape{6, 2, 8}, DType::f16, DType::f16, 4).ok());
  EXPECT_FALSE(build(Shape{6, 2, 8}, DType::f16, DType::f16, 5).ok());  // rows 5..6 past the cache
  EXPECT_FALSE(build(Shape{6, 1, 8}, DType::f32, DType::f32, 0).ok());  // cache of other kv heads
  EXPECT_FALSE(build(Shape{6, 2, 8}, DType::f16, DType::f32, 0).ok());  // k and v caches of two types
  EXPECT_FALSE(build(Shape{6, 2, 8}, DType::bf16, DType::bf16, 0).ok());

  Graph graph;
  graph.reshape(graph.input("x", Shape{2, 6}), Shape{3, 3});
  EXPECT_FALSE(graph.ok());
}

// A segment moves within its cache with its token count; anything else is refused and
// leaves the node as it was.
TEST(CachedAttentionNode, SegmentsMoveWithinTheirCache) {
  Graph graph;
  const NodeId q = graph.input("q", Shape{2, 4, 8});
  const NodeId k = graph.input("k", Shape{2, 2, 8});
  const NodeId v = graph.input("v", Shape{2, 2, 8});
  const Graph::CacheSegment segment{graph.constant("k_cache", filled(Shape{6, 2, 8}, DType::f16, 0.0f)),
                                    graph.constant("v_cache", filled(Shape{6, 2, 8}, DType::f16, 0.0f)), {2, 1}};
  const NodeId attention = graph.cached_attention(q, k, v, std::span(&segment, 1), 0.5f);
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  const auto segments_after = [&](std::vector<AttentionSegment> rows, bool moves) {
    EXPECT_EQ(graph.move_segments(attention, rows).ok(), moves);
    return graph.node(attention).params.segments;
  };
  using Rows = std::vector<AttentionSegment>;
  EXPECT_EQ(segments_after({{2, 4}}, true), (Rows{{2, 4}}));   // rows 4..5, the cache's last
  EXPECT_EQ(segments_after({{2, 0}}, true), (Rows{{2, 0}}));   // back to the start
  EXPECT_EQ(segments_after({{2, 5}}, false), (Rows{{2, 0}}));  // past the cache
  EXPECT_EQ(segments_after({{2, -1}}, false), (Rows{{2, 0}}));
  EXPECT_EQ(segments_after({{1, 3}}, false), (Rows{{2, 0}}));  // another token count
  EXPECT_EQ(segments_after({{2, 1}, {2, 3}}, false), (Rows{{2, 0}}));
  EXPECT_FALSE(graph.move_segments(q, Rows{{2, 1}}).ok());  // not an attention node
  EXPECT_FALSE(graph.move_segments(static_cast<NodeId>(graph.size()), Rows{{2, 1}}).ok());
}

// The node stores the new rows in the cache and then attends exactly as the plain
// attention node does over that cache.
TEST(CachedAttentionNode, WritesTheCacheThenAttendsOverIt) {
  for (DType cache_type : {DType::f32, DType::f16}) {
    const Tensor k_cache = filled(Shape{5, 1, 4}, cache_type, 0.3f);
    const Tensor v_cache = filled(Shape{5, 1, 4}, cache_type, -0.2f);
    const Tensor q = filled(Shape{2, 2, 4}, DType::f32, 0.1f);
    const Tensor k_new = filled(Shape{2, 1, 4}, DType::f32, 0.7f);
    const Tensor v_new = filled(Shape{2, 1, 4}, DType::f32, 0.9f);
    Graph cached;
    // Declared one by one: the executor binds inputs in declaration order.
    const NodeId q_node = cached.input("q", q.shape());
    const NodeId k_node = cached.input("k", k_new.shape());
    const NodeId v_node = cached.input("v", v_new.shape());
    const Graph::CacheSegment segment{cached.constant("k_cache", k_cache), cached.constant("v_cache", v_cache), {2, 1}};
    cached.mark_output(cached.cached_attention(q_node, k_node, v_node, std::span(&segment, 1), 0.5f));
    ASSERT_TRUE(cached.ok()) << cached.status().message();
    Executor executor;
    const std::vector<Tensor> inputs = {q, k_new, v_new};
    auto got = executor.run(cached, inputs);
    ASSERT_TRUE(got.ok()) << got.status().message();
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t d = 0; d < 4; ++d) {
        EXPECT_NEAR(k_cache.get({1 + t, 0, d}), k_new.get({t, 0, d}), 1e-3);
        EXPECT_NEAR(v_cache.get({1 + t, 0, d}), v_new.get({t, 0, d}), 1e-3);
      }

    Graph plain;
    const NodeId query = plain.input("q", q.shape());
    plain.mark_output(plain.attention(query, plain.constant("k", k_cache), plain.constant("v", v_cache), 0.5f, 1));
    auto expected = executor.run(plain, std::vector<Tensor>{q});
    ASSERT_TRUE(expected.ok()) << expected.status().message();
    EXPECT_EQ(relative_error(got->front(), expected->front()), 0.0);
  }
}

TEST(ModelTest, DemoModelMatchesReferenceLogits) {
  auto model = Model::load(kDemo, kExact);
  ASSERT_TRUE(model.ok()) << model.status().message();
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    auto logits = model->forward(kPrompts[p], 0);
    ASSERT_TRUE(logits.ok()) << logits.status().message();
    const double error = relative_error(logits.value(), reference_logits(p));
    EXPECT_LE(error, 1e-4) << "prompt " << p;
    RecordProperty("relative_error_prompt_" + std::to_string(p), scientific(error));
  }
}

TEST(ModelTest, GreedyContinuationWithTheCacheMatchesReference) {
  auto model = Model::load(kDemo, kExact);
  ASSERT_TRUE(model.ok()) << model.status().message();
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    auto logits = model->forward(kPrompts[p], 0);
    ASSERT_TRUE(logits.ok()) << logits.status().message();
    std::vector<int32_t> generated;
    auto position = static_cast<int64_t>(kPrompts[p].size());
    while (generated.size() < 32) {
      const int32_t next = argmax_of_last_row(logits.value());
      generated.push_back(next);
      if (next == kDemoEos) break;
      logits = model->forward({&next, 1}, position++);
      ASSERT_TRUE(logits.ok()) << logits.status().message();
    }
    EXPECT_EQ(generated, kGreedy[p]) << "prompt " << p;
  }
}

TEST(ModelTest, BatchedPromptEqualsTokenByTokenDecoding) {
  auto model = Model::load(kDemo, kExact);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const std::vector<int32_t>& prompt = kPrompts[2];
  auto batched = model->forward(prompt, 0);
  ASSERT_TRUE(batched.ok()) << batched.status().message();
  const double error = relative_error(token_by_token(model.value(), prompt), batched.value());
  EXPECT_LE(error, 1e-5);
  RecordProperty("relative_error", scientific(error));
}

// A pass of the same parts as the last one (one token of sequence 0) runs the last graph
// with its attention moved to the new position, rewinding included; other parts build
// anew. The logits are the bits of a model that builds every graph (a pass over its
// second sequence in between makes it).
TEST(ModelTest, DecodedTokensRunTheLastGraphAtTheirNewPositions) {
  auto reusing = Model::load(kDemo, kExact);
  ModelOptions two_sequences = kExact;
  two_sequences.sequences = 2;
  auto building = Model::load(kDemo, two_sequences);
  ASSERT_TRUE(reusing.ok() && building.ok());
  const std::vector<int32_t>& prompt = kPrompts[1];
  const auto length = static_cast<int64_t>(prompt.size());
  ASSERT_TRUE(reusing->forward(prompt, 0).ok());
  ASSERT_TRUE(building->forward(prompt, 0).ok());
  const Graph* prompt_graph = reusing->last_graph();
  // (token, position): onwards, then back over the last two, then onwards again.
  const std::vector<std::pair<int32_t, int64_t>> steps = {
      {11, length}, {230, length + 1}, {1207, length + 2}, {4000, length + 1}, {58, length + 2}};
  const Graph* decode_graph = nullptr;
  for (size_t i = 0; i < steps.size(); ++i) {
    const int32_t token = steps[i].first;
    const int64_t position = steps[i].second;
    SCOPED_TRACE("step " + std::to_string(i));
    auto reused = reusing->forward({&token, 1}, position);
    ASSERT_TRUE(reused.ok()) << reused.status().message();
    if (i == 0) {
      decode_graph = reusing->last_graph();
      EXPECT_NE(decode_graph, prompt_graph);
    }
    EXPECT_EQ(reusing->last_graph(), decode_graph);
    for (const Node& node : reusing->last_graph()->nodes()) {
      if (node.op == Op::cached_attention) {
        EXPECT_EQ(node.params.segments.at(0), (AttentionSegment{1, position}));
      }
    }

    const std::vector<int32_t> other = {99, 3001};
    const SequenceTokens elsewhere{1, 0, other, false};
    ASSERT_TRUE(building->forward(std::span(&elsewhere, 1)).ok());
    const Graph* other_graph = building->last_graph();
    auto built = building->forward({&token, 1}, position);
    ASSERT_TRUE(built.ok()) << built.status().message();
    EXPECT_NE(building->last_graph(), other_graph);
    EXPECT_EQ(relative_error(reused.value(), built.value()), 0.0);
  }
  const std::vector<int32_t> two = {99, 3001};
  ASSERT_TRUE(reusing->forward(two, length + 3).ok());
  EXPECT_NE(reusing->last_graph(), decode_graph);
}

TEST(ModelTest, F16KvCacheStaysCloseToReference) {
  auto model = Model::load(kDemo, {.kv_cache_type = DType::f16});
  ASSERT_TRUE(model.ok()) << model.status().message();
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    auto logits = model->forward(kPrompts[p], 0);
    ASSERT_TRUE(logits.ok()) << logits.status().message();
    // Keys and values rounded to f16 (relative step 2^-11 ≈ 4.9e-4) move the logits by
    // less than one step; 1.2e-4 to 1.5e-4 measured.
    const double error = relative_error(logits.value(), reference_logits(p));
    EXPECT_LE(error, 5e-4) << "prompt " << p;
    RecordProperty("relative_error_prompt_" + std::to_string(p), scientific(error));
  }
}

TEST(ModelTest, GgufConversionGivesTheSameLogits) {
  ScratchDir scratch;
  QuantizeOptions options;
  options.input = kDemo;
  options.output = scratch / "demo.gguf";
  options.target = QuantizeTarget::f32;
  auto report = quantize_model(options);
  ASSERT_TRUE(report.ok()) << report.status().message();
  auto from_gguf = Model::load(options.output, kExact);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().message();
  auto from_folder = Model::load(kDemo, kExact);
  ASSERT_TRUE(from_folder.ok()) << from_folder.status().message();
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    auto expected = from_folder->forward(kPrompts[p], 0);
    auto got = from_gguf->forward(kPrompts[p], 0);
    ASSERT_TRUE(expected.ok() && got.ok());
    // The same numbers as f32 instead of f16 weights: only the matmul's widening path differs.
    const double error = relative_error(got.value(), expected.value());
    EXPECT_LE(error, 1e-5) << "prompt " << p;
    RecordProperty("relative_error_prompt_" + std::to_string(p), scientific(error));
  }
}

TEST(ModelTest, Qwen2WithBiasesRunsConsistently) {
  testing::SeededRng rng;
  ScratchDir scratch;
  testing::HfModelSpec spec;
  spec.architecture = Architecture::qwen2;
  const auto hf = testing::write_random_hf_model(scratch / "qwen2", spec, rng);
  auto model = Model::load(hf.folder, kExact);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const std::vector<int32_t> prompt = {3, 17, 42, 5};
  auto batched = model->forward(prompt, 0);
  ASSERT_TRUE(batched.ok()) << batched.status().message();
  for (int64_t i = 0; i < batched->elements(); ++i) ASSERT_TRUE(std::isfinite(batched->get_flat(i)));
  EXPECT_LE(relative_error(token_by_token(model.value(), prompt), batched.value()), 1e-5);
}

TEST(ModelTest, RejectsQ8KvCacheForHeadsNotAMultipleOfTheBlock) {
  testing::SeededRng rng;
  ScratchDir scratch;
  testing::HfModelSpec spec;  // head_dim 8
  const auto hf = testing::write_random_hf_model(scratch / "llama", spec, rng);
  auto model = Model::load(hf.folder, {.kv_cache_type = DType::q8_0});
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("q8_0"), std::string::npos) << model.status().message();
}

TEST(ModelTest, RejectsRunningPastTheContext) {
  auto model = Model::load(kDemo, {.kv_cache_type = DType::f32, .context_length = 8});
  ASSERT_TRUE(model.ok()) << model.status().message();
  ASSERT_TRUE(model->forward(kPrompts[0], 0).ok());
  auto overflow = model->forward(std::vector<int32_t>{1, 2, 3, 4}, 5);
  ASSERT_FALSE(overflow.ok());
  EXPECT_EQ(overflow.status().code(), ErrorCode::out_of_range);
  EXPECT_NE(overflow.status().message().find("context length 8"), std::string::npos) << overflow.status().message();
  // The failed call leaves the cache as it was: decoding continues at position 5.
  EXPECT_EQ(model->cached_tokens(), 5);
  EXPECT_TRUE(model->forward(kPrompts[1], 5).ok());
  auto gap = model->forward(std::vector<int32_t>{1}, 8);
  ASSERT_FALSE(gap.ok());
  EXPECT_EQ(gap.status().code(), ErrorCode::invalid_argument);
}

TEST(ModelTest, RejectsTokenOutsideTheVocabulary) {
  auto model = Model::load(kDemo, kExact);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const std::vector<int32_t> tokens = {5, 4096};
  auto logits = model->forward(tokens, 0);
  ASSERT_FALSE(logits.ok());
  EXPECT_EQ(logits.status().code(), ErrorCode::out_of_range);
  EXPECT_NE(logits.status().message().find("4096"), std::string::npos) << logits.status().message();
  EXPECT_FALSE(model->forward(std::vector<int32_t>{-1}, 0).ok());
}

}  // namespace
}  // namespace ember
