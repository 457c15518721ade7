// wg_sum — the workgroup sum of one f32 per thread (`#include "wg_sum"`: ln_row.wgsl, rwkv7_prep.wgsl).
// The includer provides `override WG` (a power of two) and `var<workgroup> red: array<f32, ≥ WG>`.
// Call it in workgroup-uniform control flow.

// Sum of v over the workgroup (tree reduction; every thread gets the total).
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // red is reused by the next call
  return total;
}
