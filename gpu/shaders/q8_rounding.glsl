// Against block weights x is taken as the CPU takes it (quant/q8_0.cpp): each 32 values
// become codes round(x / d), d = amax / 127, and the f16 rounding of d; a block adds
// (Σ codes·codes) · d_w · d_x, the integer sum exact in f32 (|Σ| < 2^24). So the GPU
// gives the CPU's numbers, not just numbers as close to the exact product.
// v rounded to the nearest f16 value, ties to even, as the CPU's F16C conversion rounds.
// Not packHalf2x16: its rounding is the implementation's choice, and NVIDIA's is not
// to-nearest (the H200 gave scales one f16 step off, ~1e-3 of y).
float f16_round(float v) {
  const float magnitude = abs(v);
  if (magnitude >= 65520.0) return sign(v) * uintBitsToFloat(0x7f800000u);  // past f16's largest: infinity
  // Below f16's smallest normal the steps are 2^-24; scaling by powers of two is exact.
  if (magnitude < 6.103515625e-05) return roundEven(v * 16777216.0) / 16777216.0;
  // Otherwise keep 10 of f32's 23 fraction bits: add just under half of the dropped
  // part, plus one when the kept part is odd, and clear it (a carry bumps the exponent).
  const uint bits = floatBitsToUint(v);
  return uintBitsToFloat((bits + 0x0fffu + ((bits >> 13) & 1u)) & ~0x1fffu);
}
// Two values as an f16 KV cache holds them, one word: each rounded by f16_round, for
// which packHalf2x16 is exact. kv_store.comp stores these words and attention.comp reads
// a segment's own rows as them, so both give the cache the same bits.
uint f16_pair_word(vec2 values) { return packHalf2x16(vec2(f16_round(values.x), f16_round(values.y))); }
float round_half_away(float v) { return sign(v) * floor(abs(v) + 0.5); }

// |a - q·b|, exact up to one rounding: q·b as Dekker's unevaluated sum hi + lo (Vulkan
// rounds each multiply and add correctly; `precise` keeps them from being fused or
// reordered), and a - hi exact because q·b is within a factor 2 of a.
float division_residual(float a, float b, float q) {
  precise float q_split = 4097.0 * q;
  precise float q_hi = q_split - (q_split - q);
  precise float q_lo = q - q_hi;
  precise float b_split = 4097.0 * b;
  precise float b_hi = b_split - (b_split - b);
  precise float b_lo = b - b_hi;
  precise float hi = q * b;
  precise float lo = ((q_hi * b_hi - hi) + q_hi * b_lo + q_lo * b_hi) + q_lo * b_lo;
  precise float residual = (a - hi) - lo;
  return abs(residual);
}

// a / b correctly rounded, as the CPU divides (a >= 0, b > 0): GLSL may be 2.5 ulp off,
// which would now and then move an x code across its rounding boundary. Of the floats
// within 3 ulp of GLSL's quotient, the one leaving the least residual.
float exact_divide(float a, float b) {
  const float approximate = a / b;
  if (a == 0.0) return 0.0;
  float best = approximate;
  float best_residual = division_residual(a, b, approximate);
  for (int step = -3; step <= 3; ++step) {
    const float candidate = uintBitsToFloat(uint(int(floatBitsToUint(approximate)) + step));
    const float residual = division_residual(a, b, candidate);
    if (residual < best_residual) {
      best = candidate;
      best_residual = residual;
    }
  }
  return best;
}

float x_scale_of(float amax) { return exact_divide(amax, 127.0); }
// 1 / d for a scale d from x_scale_of.
float x_inverse_scale(float d) { return d != 0.0 ? exact_divide(1.0, d) : 0.0; }
