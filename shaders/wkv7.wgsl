// wkv7 — the RWKV-7 recurrence (spec §4.3 step 9), sequential over T, state S[h][value i][key j] in f32.
//
// For each head h and token t (channels c = h·N + j), with w_j = exp(−e^{−1/2} · σ(z[t,c])):
//   s_i      = Σ_j S[i][j] · (−κ̂_j)                               (old state)
//   S[i][j] ← S[i][j] · w_j + s_i · (κ̂_j · α_j) + v_i · k'_j
//   y_i      = Σ_j S[i][j] · r_j                                   (new state; no bonus here — see rwkv7_out)
// Value rows are independent given the token's shared vectors, so each invocation owns one row of S in registers
// (the v7.00 CUDA kernel's layout). The shared vectors of CH tokens are staged in workgroup memory per barrier pair;
// the decay exp(−e^{−1/2}σ(z)) and κ̂⊙α are computed once there, not once per row.
//
// Entry:     wkv7
// Dispatch:  (N / ROWS, H) workgroups of ROWS threads; thread lid of workgroup (x, h) owns row i = x·ROWS + lid.
// Overrides: N     head size, ≤ MAX_N = 64 (default 64);
//            ROWS  value rows (threads) per workgroup, divides N (default 64).
// Defines:   none.

#include "common"

struct Params {
  T: u32,   // tokens
  H: u32,   // heads; C = H·N
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> r: array<f32>;             // (T, C)
@group(0) @binding(1) var<storage, read> w: array<f32>;             // (T, C) decay logit z
@group(0) @binding(2) var<storage, read> k: array<f32>;             // (T, C) k' (α-modulated key)
@group(0) @binding(3) var<storage, read> v: array<f32>;             // (T, C)
@group(0) @binding(4) var<storage, read> kk: array<f32>;            // (T, C) κ̂ (per-head unit vectors)
@group(0) @binding(5) var<storage, read> alpha: array<f32>;         // (T, C) α ∈ (0, 1)
@group(0) @binding(6) var<storage, read_write> state: array<f32>;   // (H, N, N) S[h][i][j], in and out
@group(0) @binding(7) var<storage, read_write> y: array<f32>;       // (T, C)
@group(0) @binding(8) var<uniform> p: Params;                       // dims

override N: u32 = 64u;
override ROWS: u32 = 64u;
const MAX_N: u32 = 64u;
const CH: u32 = 8u; // tokens staged per barrier pair
const DECAY_SCALE: f32 = 0.6065306597126334; // e^{−1/2}, the decay exponent's scale

var<workgroup> s_r: array<f32, CH * MAX_N>;   // r_j
var<workgroup> s_w: array<f32, CH * MAX_N>;   // decay w_j
var<workgroup> s_k: array<f32, CH * MAX_N>;   // k'_j
var<workgroup> s_a: array<f32, CH * MAX_N>;   // −κ̂_j
var<workgroup> s_b: array<f32, CH * MAX_N>;   // κ̂_j · α_j

@compute @workgroup_size(ROWS)
fn wkv7(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
) {
  let h = wid.y;
  let i = wid.x * ROWS + lid;
  let C = p.H * N;
  let head = h * N;
  let srow = (head + i) * N;

  var s: array<f32, MAX_N>;
  for (var j = 0u; j < N; j++) { s[j] = state[srow + j]; }

  for (var t0 = 0u; t0 < p.T; t0 += CH) {
    let nt = min(CH, p.T - t0);
    for (var e = lid; e < nt * N; e += ROWS) {
      let c = (t0 + e / N) * C + head + e % N;
      let q = kk[c];
      s_r[e] = r[c];
      s_w[e] = exp(-DECAY_SCALE * sigmoid(w[c]));
      s_k[e] = k[c];
      s_a[e] = -q;
      s_b[e] = q * alpha[c];
    }
    workgroupBarrier();
    for (var u = 0u; u < nt; u++) {
      let o = u * N;
      let c = (t0 + u) * C + head + i;
      var sa = 0.0;
      for (var j = 0u; j < N; j++) { sa += s[j] * s_a[o + j]; }
      let vi = v[c];
      var yi = 0.0;
      for (var j = 0u; j < N; j++) {
        let x = s[j] * s_w[o + j] + sa * s_b[o + j] + vi * s_k[o + j];
        s[j] = x;
        yi += x * s_r[o + j];
      }
      y[c] = yi;
    }
    workgroupBarrier(); // the next chunk overwrites the staged vectors
  }

  for (var j = 0u; j < N; j++) { state[srow + j] = s[j]; }
}
