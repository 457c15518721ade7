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

@compute @workgroup_size(WG)
fn layer_norm(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= p.T) { return; } // uniform per workgroup
  let half = p.C / 2u;
  let src = (p.row_offset + t) * half;
  let pivot = x[src].x;

  var d: array<vec2<f32>, PAIRS>;
  var s = 0.0;
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      d[i] = x[src + c] - pivot;
      s += d[i].x + d[i].y;
    }
  }
  let mean_d = wg_sum(s, lid) / f32(p.C);

  var q = 0.0;
  for (var i = 0u; i < PAIRS; i++) {
    if (lid + i * WG < half) {
      let e = d[i] - mean_d;
      q += dot(e, e);
    }
  }
  let inv = 1.0 / sqrt(wg_sum(q, lid) / f32(p.C) + p.eps);

  let dst = t * half;
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      y[dst + c] = (d[i] - mean_d) * inv * weight[c] + bias[c];
    }
  }
}
