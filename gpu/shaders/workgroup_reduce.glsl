// A workgroup's sum or maximum of one value per invocation: the subgroups reduce their own
// values first, then every invocation combines one value per subgroup from shared memory,
// in subgroup order. That is two barriers, where halving through shared memory took one
// per halving (8 for 256 invocations), each a wait on the slowest thread. A device without
// subgroup arithmetic in compute shaders is refused (gpu/device_capabilities.cpp). The
// including shader enables GL_KHR_shader_subgroup_arithmetic, defines kReduceThreads, its
// workgroup size, and calls these from uniform control flow.

// One value per subgroup; a subgroup may be as narrow as one invocation.
shared float subgroup_values[kReduceThreads];

float workgroup_reduce(float value, bool take_max) {
  const float own = take_max ? subgroupMax(value) : subgroupAdd(value);
  if (subgroupElect()) subgroup_values[gl_SubgroupID] = own;
  barrier();
  float total = subgroup_values[0];
  for (uint s = 1u; s < gl_NumSubgroups; ++s) total = take_max ? max(total, subgroup_values[s]) : total + subgroup_values[s];
  // Before the next call writes the values again.
  barrier();
  return total;
}

float workgroup_sum(float value) { return workgroup_reduce(value, false); }
float workgroup_max(float value) { return workgroup_reduce(value, true); }
