// rwkv7_out — RWKV-7 time-mix output before W_o (spec §4.3 steps 10–11 and the ⊙g of step 12), in place on y.
//
// Per token t and head h (channels c = h·N + j, biased variance over the head's N channels):
//   μ = mean_j y[t,c],  σ² = mean_j (y[t,c] − μ)²  (biased)
//   β = Σ_j r[t,c] · k'[t,c] · r_k[h][j]                                 (bonus scalar of the head)
//   y[t,c] ← ((y[t,c] − μ) / sqrt(σ² + eps) · weight[c] + bias[c] + β · v[t,c]) · g[t,c]
// Statistics by a shifted two-pass over registers, as in layer_norm: d = y − y[t, h·N] first, so a head whose values
// cluster around a large mean (variance ≪ eps, amplified by 1/sqrt(eps) ≈ 40) keeps its relative precision.
// In place because y, r, k', v, r_k, g, weight, bias already fill the 8 storage bindings; the TS constructor copies y
// to a distinct `out` first when asked for one.
//
// Entry:     rwkv7_out
// Dispatch:  T·H workgroups of WG threads, folded as row = wid.x + wid.y·num_workgroups.x = t·H + h.
// Overrides: N  head size (default 64);  WG  threads, a power of two with N ≤ PER·WG (default 64).
// Defines:   none.

struct Params {
  T: u32,    // tokens
  H: u32,    // heads; C = H·N
  eps: f32,  // GroupNorm epsilon (64e-5)
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;  // (T, C) in: wkv output, out: result
@group(0) @binding(1) var<storage, read> r: array<f32>;        // (T, C)
@group(0) @binding(2) var<storage, read> k: array<f32>;        // (T, C) k'
@group(0) @binding(3) var<storage, read> v: array<f32>;        // (T, C)
@group(0) @binding(4) var<storage, read> r_k: array<f32>;      // (H, N)
@group(0) @binding(5) var<storage, read> g: array<f32>;        // (T, C) gate
@group(0) @binding(6) var<storage, read> weight: array<f32>;   // (C) ln_x.weight
@group(0) @binding(7) var<storage, read> bias: array<f32>;     // (C) ln_x.bias
@group(0) @binding(8) var<uniform> p: Params;                  // dims

override N: u32 = 64u;
override WG: u32 = 64u;
const PER: u32 = 4u; // head channels per thread kept in registers (N ≤ PER·WG)

var<workgroup> red: array<vec2<f32>, WG>;

// Sum of v over the workgroup (tree reduction; every thread gets the total).
fn wg_sum(v: vec2<f32>, lid: u32) -> vec2<f32> {
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
fn rwkv7_out(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let row = wid.x + wid.y * nwg.x; // t·H + h
  if (row >= p.T * p.H) { return; } // uniform per workgroup
  let head = (row % p.H) * N;
  let base = row * N;

  let pivot = y[base];
  var yv: array<f32, PER>; // y − pivot
  var part = vec2<f32>(0.0);
  for (var i = 0u; i < PER; i++) {
    let j = lid + i * WG;
    if (j < N) {
      yv[i] = y[base + j] - pivot;
      part += vec2<f32>(yv[i], r[base + j] * k[base + j] * r_k[head + j]);
    }
  }
  let sums = wg_sum(part, lid);
  let mean = sums.x / f32(N);
  let bonus = sums.y;

  var q = 0.0;
  for (var i = 0u; i < PER; i++) {
    if (lid + i * WG < N) {
      let d = yv[i] - mean;
      q += d * d;
    }
  }
  let inv = 1.0 / sqrt(wg_sum(vec2<f32>(q, 0.0), lid).x / f32(N) + p.eps);

  for (var i = 0u; i < PER; i++) {
    let j = lid + i * WG;
    if (j < N) {
      let c = base + j;
      y[c] = ((yv[i] - mean) * inv * weight[head + j] + bias[head + j] + bonus * v[c]) * g[c];
    }
  }
}
