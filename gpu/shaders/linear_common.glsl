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
  float eps;          // X_BEFORE 1: the norm's epsilon
  uint store_x;       // X_BEFORE: this dispatch's first workgroup of each row stores the x it made
} shape;

#ifdef GEMV_FUSIONS
// What a decoded token's GEMVs take over from the dispatches around them, so that those
// need none of their own (gpu/linear.h, LinearArgs::norm_before and residual_after):
// X_BEFORE 1: x arrives before its RMS norm, whose weights are at binding 4; each
// workgroup normalises the whole row itself. X_BEFORE 2: x arrives as the gate of a
// swiglu, silu(gate) · up, with up's rows at binding 4. Either way with store_x the x it
// made goes to binding 5.
// ADD_RESIDUAL 1: y plus the residual at binding 6 goes to binding 7 as well.
layout(constant_id = 4) const uint X_BEFORE = 0;
layout(constant_id = 5) const uint ADD_RESIDUAL = 0;
const uint kNormBefore = 1u;
const uint kSwigluBefore = 2u;
// x's rows as they arrive, before the norm or the swiglu.
layout(std430, binding = 0) readonly buffer RawRows4 { vec4 x_raw4[]; };
layout(std430, binding = 4) readonly buffer XPartner { vec4 x_partner4[]; };
layout(std430, binding = 5) writeonly buffer MadeRows { float made_x[]; };
layout(std430, binding = 6) readonly buffer Residual { float residual[]; };
layout(std430, binding = 7) writeonly buffer ResidualSum { float residual_sum[]; };
#endif

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

#ifdef GEMV_FUSIONS
// The residual a GEMV invocation will add to output `column` of row r (ADD_RESIDUAL),
// loaded before the product so that its latency hides behind it.
float residual_for(uint r, uint column) {
  return ADD_RESIDUAL != 0u && column < shape.n ? residual[r * shape.n + column] : 0.0;
}

void store_fused_output(uint r, uint column, float sum, float held_residual) {
  if (shape.has_bias != 0u) sum += bias[column];
  const float value = activate(sum);
  y[r * shape.n + column] = value;
  if (ADD_RESIDUAL != 0u) residual_sum[r * shape.n + column] = held_residual + value;
}

// X_BEFORE 1: 1 / rms of x's row r, summed across the workgroup (every invocation calls it;
// the includer defines kReduceThreads, its workgroup size, and includes
// workgroup_reduce.glsl first).
float inverse_rms_of_row(uint r) {
  float squares = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < shape.k / 4u; i += kReduceThreads) {
    const vec4 v = x_raw4[r * (shape.k / 4u) + i];
    squares += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  return 1.0 / sqrt(workgroup_sum(squares) / float(shape.k) + shape.eps);
}

// x[r][i .. i+3] as X_BEFORE makes it: normalised as rms_norm.comp normalises it
// (x · 1/rms · weight), or silu(gate) · up as elementwise.comp's swiglu; stored at binding
// 5 too by the first workgroup of a store_x dispatch.
vec4 x_before4(uint r, uint i, float inverse_rms) {
  const uint at = (r * shape.k + i) / 4u;
  vec4 values;
  if (X_BEFORE == kNormBefore) {
    values = x_raw4[at] * inverse_rms * x_partner4[i / 4u];
  } else {
    const vec4 gate = x_raw4[at];
    values = gate / (1.0 + exp(clamp(-gate, -87.3, 88.3))) * x_partner4[at];
  }
  if (shape.store_x != 0u && gl_WorkGroupID.x == 0u)
    [[unroll]] for (uint e = 0u; e < 4u; ++e) made_x[r * shape.k + i + e] = values[e];
  return values;
}
#endif
