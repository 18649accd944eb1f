// What both fused-linear shaders share: the bindings, the push constants, reading the
// weight matrix from its stored bytes, and the activation.
//
// y[r][c] = act(sum_i x[r][i] * W[c][i] + bias[c]); x is rows x k f32, W is n rows of k
// weights in the GGUF layout of WEIGHT_TYPE, y is rows x n f32. The weights are bound as
// uint[] and decoded here, so no 8- or 16-bit storage feature is needed; every buffer is
// allocated in whole words (gpu/device_buffer.h), so a word read at the end stays inside.

layout(constant_id = 0) const uint WEIGHT_TYPE = 0;  // gpu::WeightType: f32, f16, q8_0, q4_0
layout(constant_id = 1) const uint ACTIVATION = 0;   // gpu::Activation: none, relu, gelu_tanh, silu
// gpu::BlockLayout of block weights: 0 as the file stores them, 1 split (gpu/block_layout.h):
// every block's codes in block order, 16 or 32 bytes each, then every block's f16 scale.
layout(constant_id = 3) const uint SPLIT_BLOCKS = 0;

const uint kF32 = 0;
const uint kF16 = 1;
const uint kQ8_0 = 2;
const uint kQ4_0 = 3;

#ifdef QUANTIZED_X
// x already rounded to q8_0 by quantize_rows_q8.comp, in the X_LAYOUT it wrote for this
// reader: int8 codes, the scale as a float, the sum of the codes per block of 32.
layout(std430, binding = 0) readonly buffer QuantizedRows { uint xq[]; };
#else
layout(std430, binding = 0) readonly buffer InputRows { float x[]; };
#endif
layout(std430, binding = 1) readonly buffer WeightBytes { uint w[]; };
layout(std430, binding = 1) readonly buffer WeightWords4 { uvec4 w4[]; };
#define STORED_WORDS w
#include "stored_bytes.glsl"
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer OutputRows { float y[]; };

layout(push_constant) uniform Shape {
  uint rows;
  uint k;
  uint n;
  uint has_bias;
  uint first_column;  // the GEMV covers n in dispatches of at most maxComputeWorkGroupCount columns
  uint row_bytes;     // bytes of one weight row
} shape;

// Float weights i .. i+3 of weight row `column` (i a multiple of 4); past k they read 0.
vec4 weights4(uint column, uint i) {
  const uint row = column * shape.row_bytes;
  vec4 v = vec4(0.0);
  for (uint e = 0u; e < 4u; ++e)
    if (i + e < shape.k) v[e] = WEIGHT_TYPE == kF32 ? uintBitsToFloat(w[(row >> 2) + i + e]) : half_at(row + 2u * (i + e));
  return v;
}

// Block weights as the CPU's int8 kernels take them (cpu/dot_blocks32.cpp): a block's f16
// scale and its integer codes, q for q8_0 and q - 8 for q4_0.

const uint kBlockCodeBytes = WEIGHT_TYPE == kQ8_0 ? 32u : 16u;
const uint kBlockBytes = kBlockCodeBytes + 2u;

// Block `block` of weight row `column`, counted over the whole matrix.
uint block_index(uint column, uint block) { return column * (shape.k / 32u) + block; }

// Where the scale of block `index` lies in a split layout: after every block's codes.
uint split_scale_offset(uint index) { return shape.n * (shape.k / 32u) * kBlockCodeBytes + 2u * index; }

// The 4 bytes starting 2 bytes into word i: blocks start at even bytes, so a block's codes
// start either on a word or 2 bytes into one.
uint shifted_word(uint words[9], uint i) { return (words[i] >> 16) | (words[i + 1u] << 16); }

// Block `block` of weight row `column`: its scale, and its codes as words, codes[j]
// holding code bytes 4j .. 4j+3.
struct WeightBlock {
  float scale;
  uint codes[8];
};

WeightBlock weight_block(uint column, uint block) {
  WeightBlock found;
  if (SPLIT_BLOCKS != 0u) {
    // The codes are one or two aligned 16-byte loads; the scale lies with the others,
    // after every block's codes.
    const uint index = block_index(column, block);
    const uint loads = kBlockCodeBytes / 16u;
    [[unroll]] for (uint p = 0u; p < 2u; ++p) {
      const uvec4 four = p < loads ? w4[loads * index + p] : uvec4(0u);
      [[unroll]] for (uint j = 0u; j < 4u; ++j) found.codes[4u * p + j] = four[j];
    }
    found.scale = half_at(split_scale_offset(index));
    return found;
  }
  // In the file's layout: the few words that cover the block's 34 or 18 bytes, realigned.
  const uint start = column * shape.row_bytes + block * kBlockBytes;
  const uint word_count = WEIGHT_TYPE == kQ8_0 ? 9u : 5u;
  uint words[9];
  [[unroll]] for (uint i = 0u; i < 9u; ++i)
    if (i < word_count) words[i] = w[(start >> 2) + i];
  // The words always cover the block's bytes; the last one may reach past the row but
  // never past the buffer, which ends on a whole word (gpu/device_buffer.h).
  const bool halfway = (start & 2u) != 0u;
  found.scale = unpackHalf2x16(halfway ? words[0] >> 16 : words[0]).x;
  [[unroll]] for (uint j = 0u; j < 8u; ++j)
    found.codes[j] = j + 1u >= word_count ? 0u : halfway ? words[j + 1u] : shifted_word(words, j);
  return found;
}

float weight_scale(uint column, uint block) {
  if (SPLIT_BLOCKS != 0u) return half_at(split_scale_offset(block_index(column, block)));
  return half_at(column * shape.row_bytes + block * kBlockBytes);
}

// Codes i .. i+3 of weight row `column` (i a multiple of 4, so all four lie in one block).
vec4 weight_codes4(uint column, uint i) {
  const uint block = i >> 5;
  const uint within = i & 31u;
  // Where the block's codes start: q8_0 has 32 int8 codes; q4_0 16 bytes, byte j holding
  // weight j in its low nibble and weight j + 16 in its high nibble. In the file's layout
  // 2 bytes of f16 scale come first.
  const uint codes = SPLIT_BLOCKS != 0u ? block_index(column, block) * kBlockCodeBytes
                                        : column * shape.row_bytes + block * kBlockBytes + 2u;
  if (WEIGHT_TYPE == kQ8_0) {
    const int four = int(word_at(codes + within));
    return vec4(bitfieldExtract(four, 0, 8), bitfieldExtract(four, 8, 8), bitfieldExtract(four, 16, 8),
                bitfieldExtract(four, 24, 8));
  }
  const uint bytes = word_at(codes + (within & 15u)) >> (within >= 16u ? 4u : 0u);
  return vec4(uvec4(bytes & 15u, (bytes >> 8) & 15u, (bytes >> 16) & 15u, (bytes >> 24) & 15u)) - 8.0;
}

// The same formulas as cpu/activation.h: gelu_tanh(v) = v * sigmoid(2u), u = sqrt(2/pi) *
// (v + 0.044715 v^3), with exp's argument clamped so it never overflows.
float activate(float v) {
  if (ACTIVATION == 1u) return v > 0.0 ? v : 0.0;
  if (ACTIVATION == 2u) return v / (1.0 + exp(clamp(-1.5957691216057308 * (v + 0.044715 * v * v * v), -87.3, 88.3)));
  if (ACTIVATION == 3u) return v / (1.0 + exp(clamp(-v, -87.3, 88.3)));
  return v;
}

void store_output(uint r, uint column, float sum) {
  if (shape.has_bias != 0u) sum += bias[column];
  y[r * shape.n + column] = activate(sum);
}
