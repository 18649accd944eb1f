// From a Hugging Face model folder to GGUF's names, layouts and tokenizer keys, as
// llama.cpp's convert_hf_to_gguf.py lays them out, so ember's GGUF files and
// llama.cpp's agree.
//
// Tensor names (N is the layer):
//   llama / qwen2: model.embed_tokens → token_embd, model.layers.N.input_layernorm →
//     blk.N.attn_norm, self_attn.{q,k,v,o}_proj → blk.N.attn_{q,k,v,output} (+ .bias when
//     attention_bias), post_attention_layernorm → blk.N.ffn_norm, mlp.{gate,up,down}_proj
//     → blk.N.ffn_{gate,up,down}, model.norm → output_norm, lm_head → output.
//   gpt2 (with or without the "transformer." prefix): wte → token_embd, wpe →
//     position_embd, h.N.ln_1 → blk.N.attn_norm, attn.c_attn → blk.N.attn_qkv,
//     attn.c_proj → blk.N.attn_output, ln_2 → blk.N.ffn_norm, mlp.c_fc → blk.N.ffn_up,
//     mlp.c_proj → blk.N.ffn_down, ln_f → output_norm, lm_head → output; weights and
//     biases alike.
// With tie_word_embeddings there is no output.weight, and an lm_head.weight in the
// folder (a copy of the embedding) is skipped. Buffers that are not weights are
// skipped too: rotary_emb.inv_freq, GPT-2's attn.bias / attn.masked_bias masks.
//
// Layouts: llama's q and k rows are permuted so that each head's two rotary halves
// interleave (llama.cpp rotates adjacent pairs; Hugging Face rotates halves): per
// head, reshape (2, head_dim/2, cols), swap the first two axes. q uses head_count, k
// kv_head_count. qwen2 keeps Hugging Face's order (llama.cpp rotates its halves).
// GPT-2's Conv1D weights are stored [in, out] and are transposed to [out, in].
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/gguf.h"
#include "ember/model_config.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

enum class TensorTransform : uint8_t {
  none,       // the Hugging Face bytes as they are
  permute_q,  // rows permuted per head, head_count heads
  permute_k,  // rows permuted per head, kv_head_count heads
  transpose,  // [in, out] → [out, in]
};

struct TensorMapping {
  std::string hf_name;
  std::string gguf_name;
  TensorTransform transform = TensorTransform::none;
  int64_t heads = 0;  // for permute_q / permute_k: the head count the rows split into
};

// The mapping of one Hugging Face tensor: nullopt for a tensor to skip. Errors name
// the tensor: an unknown name, a layer index past layer_count, a bias the config does
// not have.
Result<std::optional<TensorMapping>> map_hf_tensor(const ModelConfig& config, std::string_view hf_name);

// The mappings of a whole model, in llama.cpp's order (token_embd, position_embd,
// blk.0 … blk.N-1, output_norm, output). Errors: any map_hf_tensor error, two tensors
// mapping to one GGUF name, a tensor the architecture needs that is missing.
Result<std::vector<TensorMapping>> map_hf_tensors(const ModelConfig& config, std::span<const std::string> hf_names);

// The tensor in GGUF layout, dtype kept (f32, f16 or bf16). A view of `hf_tensor` when
// the transform is none, otherwise a new contiguous tensor. Errors name the tensor: a
// rank or row count that the transform cannot split.
Result<Tensor> materialize(const Tensor& hf_tensor, const TensorMapping& mapping);

// GGUF tokenizer keys from a tokenizer.json, for the two kinds of BPE that llama.cpp
// reads:
//  byte-level BPE (model.type BPE, a ByteLevel pre-tokenizer): tokenizer.ggml.model
//   "gpt2", .pre from the split regex ("llama-bpe" for Llama 3's, "qwen2", "gpt-2" for
//   the ByteLevel pre-tokenizer's own), .tokens by id (added tokens included), .token_type
//   (1 normal, 3 control for special added tokens, 4 user-defined for other added ones,
//   5 for padding up to vocab_size), .merges as "a b" (either JSON form read);
//  SentencePiece-style BPE with byte_fallback: tokenizer.ggml.model "llama", .pre
//   "default", .scores (-(rank + 1) for a merge's result, 0 otherwise), token types with
//   2 for the unknown token and 6 for the byte tokens <0x00> … <0xFF>.
// Both add bos/eos/unknown/padding_token_id (config first, then the post-processor and
// well-known special token names) and add_bos_token / add_eos_token (true when a
// TemplateProcessing post-processor puts a special token before / after the text).
// Errors name the file: corrupt JSON, another model type, an unknown split regex, ids
// that repeat or reach past config.vocab_size.
Result<std::vector<std::pair<std::string, GgufValue>>> tokenizer_metadata_from_json(const std::filesystem::path& path,
                                                                                      const ModelConfig& config);

}  // namespace ember
