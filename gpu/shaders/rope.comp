#version 450
// Rotary position embedding of x [tokens, heads, head_dim], one invocation per element.
// The angles come from the host as (cos, sin) per token and pair, computed in double
// there exactly as the CPU kernel computes them (cpu/rope.h, rope_angles), since at long
// positions an f32 angle is already off by ~4e-3. STYLE 0 turns adjacent pairs
// (x[2i], x[2i+1]); STYLE 1 (neox) turns (x[i], x[i + pairs]). Dims past 2 * pairs are copied.
// With second_heads > 0 the invocations past the first tensor's elements turn a second
// tensor by the same angles (a layer's k after its q): one dispatch for both.
layout(constant_id = 0) const uint STYLE = 0;

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float first_x[]; };
layout(std430, binding = 1) readonly buffer Angles { vec2 cos_sin[]; };  // [tokens][pairs]
layout(std430, binding = 2) writeonly buffer Y { float first_y[]; };
// The second tensor (unused when second_heads is 0).
layout(std430, binding = 3) readonly buffer SecondX { float second_x[]; };
layout(std430, binding = 4) writeonly buffer SecondY { float second_y[]; };

layout(push_constant) uniform Shape {
  uint tokens;
  uint heads;
  uint head_dim;
  uint pairs;
  uint second_heads;
} shape;

uint first_elements() { return shape.tokens * shape.heads * shape.head_dim; }

// Invocation `index` works on the second tensor when past the first's elements.
bool on_second = false;
float x(uint i) { return on_second ? second_x[i] : first_x[i]; }
void store(uint i, float value) {
  if (on_second)
    second_y[i] = value;
  else
    first_y[i] = value;
}

void main() {
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  on_second = index >= first_elements();
  const uint heads = on_second ? shape.second_heads : shape.heads;
  const uint i = on_second ? index - first_elements() : index;
  if (i >= shape.tokens * heads * shape.head_dim) return;
  const uint d = i % shape.head_dim;
  const uint head_start = i - d;
  const uint token = i / (heads * shape.head_dim);
  if (d >= 2u * shape.pairs) {
    store(i, x(i));
    return;
  }
  // This element's pair, its place in it, and the other member.
  const uint pair = STYLE == 0u ? d >> 1 : d % shape.pairs;
  const bool second = STYLE == 0u ? (d & 1u) == 1u : d >= shape.pairs;
  const uint first_at = STYLE == 0u ? head_start + 2u * pair : head_start + pair;
  const uint second_at = STYLE == 0u ? first_at + 1u : first_at + shape.pairs;
  const vec2 turn = cos_sin[token * shape.pairs + pair];
  const float first_value = x(first_at);
  const float second_value = x(second_at);
  store(i, second ? first_value * turn.y + second_value * turn.x : first_value * turn.x - second_value * turn.y);
}
