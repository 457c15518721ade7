// layer_norm — LayerNorm over the rows of a (rows, C) f32 matrix (spec §3: biased variance, eps 1e-5).
//
//   y[t, c] = (x[r, c] − μ_r) / sqrt(σ²_r + eps) · weight[c] + bias[c],   r = row_offset + t,  t < T
//
// Statistics in f32 by a shifted two-pass: d = x[r, c] − x[r, 0] is exact for rows whose values cluster (Sterbenz),
// μ_d = mean(d), σ² = mean((d − μ_d)²). Rows of magnitude 10–100 with a tiny spread keep full relative precision
// (a plain E[x²] − μ² or even a plain two-pass would lose ~|μ|/σ ulps). Each thread keeps its part of the row in
// registers (PAIRS vec2 per thread), so x is read once.
//
// Entry:    layer_norm
// Dispatch: one workgroup per row t; workgroups (x, y) folded as t = wid.x + wid.y · num_workgroups.x (t ≥ T exits).
// Override: WG  threads per workgroup, a power of two ≤ 256 (default 256). Requires C ≤ 2 · PAIRS · WG (= 4096).
// Defines:  none.

struct Params {
  T: u32,           // rows to normalise
  C: u32,           // channels (even)
  row_offset: u32,  // first row of x to read
  eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<vec2<f32>>;        // (row_offset + T, C)
@group(0) @binding(1) var<storage, read_write> y: array<vec2<f32>>;  // (T, C)
@group(0) @binding(2) var<storage, read> weight: array<vec2<f32>>;   // (C)
@group(0) @binding(3) var<storage, read> bias: array<vec2<f32>>;     // (C)
@group(0) @binding(4) var<uniform> p: Params;                        // dims

override WG: u32 = 256u;
const PAIRS: u32 = 8u; // vec2 per thread kept in registers

var<workgroup> red: array<f32, WG>;

#include "ln_row"

@compute @workgroup_size(WG)
fn layer_norm(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= p.T) { return; } // uniform per workgroup
  let yv = ln_row(p.row_offset + t, lid);
  let half = p.C / 2u;
  let dst = t * half;
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      y[dst + c] = yv[i];
    }
  }
}
