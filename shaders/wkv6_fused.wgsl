// wkv6_fused — the RWKV-6 time-mix core for decode in one dispatch: decay LoRA up-projection, WKV recurrence and
// gated GroupNorm (spec §3.3 steps 5, 7, 8). Same math as matmul 'bias' (time_decay_w2) → wkv6_seq → group_norm GATE.
//
// Input rkvgd is the packed output of matmul_group, block after block: r, k, v, g (T, C) each, then dh (T, Rd), with
// g = silu(x_g·W_gᵀ) and dh = tanh(x_w·D1) already applied. Per head (channels hN … hN + N − 1), token t:
//   δ_t[c] = time_decay[c] + Σ_q dh_t[q] · D2[c, q]        q < Rd   (D2 = time_decay_w2 in the Linear layout (C, Rd))
//   w_t[j] = exp(−exp(δ_t[j]))                             (δ clamped at 20, as wkv6.wgsl: no result changes)
//   y_t[i] = Σ_j r_t[j] · (u[j]·k_t[j]·v_t[i] + S[j][i]);   S[j][i] ← w_t[j]·S[j][i] + k_t[j]·v_t[i]
//   o_t[i] = ((y_t[i] − μ_t) / sqrt(σ²_t + eps) · ln_w[i] + ln_b[i]) · g_t[i]   (μ, σ² over the head's N channels)
// The state [head][key j][value i] is read at the start and written back at the end (in place), so calls chain.
//
// Entry wkv6_fused: one workgroup per head, one invocation per channel i: it computes the decay of key channel i
// (Rd MACs over row i of D2), owns value column S[·][i] in registers, and o_t[i]; r, k, w of token t and dh_t are
// shared through workgroup memory; the GroupNorm sums are workgroup tree reductions. Sequential over t.
// Dispatch (H), @workgroup_size(N).
// Overrides: N head size (a power of two ≤ 64, default 64).  Defines: W_F16 (D2 holds IEEE halfs, else bf16).
// Bindings (group 0): 0 dims, 1 rkvgd, 2 d2, 3 time_decay, 4 u, 5 ln_w, 6 ln_b, 7 state, 8 o.

#include "common"

override N: u32 = 64u;

const MAX_N: u32 = 64u;
const MAX_RD: u32 = 256u;
const DELTA_MAX: f32 = 20.0;

struct Dims {
  T: u32,
  H: u32,
  C: u32,   // H·N
  Rd: u32,  // decay LoRA rank (even, ≤ MAX_RD)
  eps: f32, // GroupNorm eps
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> rkvgd: array<f32>;       // (4·T·C + T·Rd): r, k, v, g (T, C), dh (T, Rd)
@group(0) @binding(2) var<storage, read> d2: array<u32>;          // (C, Rd / 2) packed 16-bit
@group(0) @binding(3) var<storage, read> time_decay: array<f32>;  // (C)
@group(0) @binding(4) var<storage, read> u: array<f32>;           // (H, N) time_faaaa
@group(0) @binding(5) var<storage, read> ln_w: array<f32>;        // (C) ln_x.weight
@group(0) @binding(6) var<storage, read> ln_b: array<f32>;        // (C) ln_x.bias
@group(0) @binding(7) var<storage, read_write> state: array<f32>; // (H, N, N) [head][key j][value i]
@group(0) @binding(8) var<storage, read_write> o: array<f32>;     // (T, C)

var<workgroup> sh_r: array<f32, MAX_N>;   // (N) r_t of this head
var<workgroup> sh_k: array<f32, MAX_N>;   // (N) k_t
var<workgroup> sh_w: array<f32, MAX_N>;   // (N) w_t
var<workgroup> sh_u: array<f32, MAX_N>;   // (N) u
var<workgroup> sh_dh: array<f32, MAX_RD>; // (Rd) dh_t
var<workgroup> sh_red: array<f32, MAX_N>; // (N) reduction scratch

// Sum of v over the workgroup (tree; every invocation gets the result).
fn head_sum(v: f32, i: u32) -> f32 {
  workgroupBarrier(); // earlier readers of sh_red[0] are done
  sh_red[i] = v;
  workgroupBarrier();
  for (var s = N / 2u; s > 0u; s = s / 2u) {
    if (i < s) { sh_red[i] += sh_red[i + s]; }
    workgroupBarrier();
  }
  return sh_red[0];
}

@compute @workgroup_size(N)
fn wkv6_fused(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) i: u32) {
  let T = dims.T;
  let C = dims.C;
  let Rd = dims.Rd;
  let c = wg.x * N + i;
  let sbase = wg.x * N * N + i;
  let d2row = c * (Rd / 2u);
  let td = time_decay[c];
  let lw = ln_w[c];
  let lb = ln_b[c];
  var s: array<f32, MAX_N>; // S[·][i]
  for (var j = 0u; j < N; j++) {
    s[j] = state[sbase + j * N];
  }
  sh_u[i] = u[c];
  for (var t = 0u; t < T; t++) {
    let o_r = t * C + c;
    workgroupBarrier(); // the previous token is done with sh_*
    for (var q = i; q < Rd; q += N) {
      sh_dh[q] = rkvgd[4u * T * C + t * Rd + q];
    }
    workgroupBarrier();
    var delta = td;
    for (var q = 0u; q < Rd / 2u; q++) {
      delta += dot(unpack_w(d2[d2row + q]), vec2<f32>(sh_dh[2u * q], sh_dh[2u * q + 1u]));
    }
    sh_r[i] = rkvgd[o_r];
    sh_k[i] = rkvgd[T * C + o_r];
    sh_w[i] = exp(-exp(min(delta, DELTA_MAX)));
    workgroupBarrier();
    let vi = rkvgd[2u * T * C + o_r];
    var y = 0.0;
    for (var j = 0u; j < N; j++) {
      let x = sh_k[j] * vi;
      let sj = s[j];
      y += sh_r[j] * (sh_u[j] * x + sj);
      s[j] = sj * sh_w[j] + x;
    }
    let mean = head_sum(y, i) / f32(N);
    let d = y - mean;
    let variance = head_sum(d * d, i) / f32(N);
    o[o_r] = (d * inverseSqrt(variance + dims.eps) * lw + lb) * rkvgd[3u * T * C + o_r];
  }
  for (var j = 0u; j < N; j++) {
    state[sbase + j * N] = s[j];
  }
}
