// ln_mix — LayerNorm fused with token shift (spec §3: ln1/ln2; §3.3 steps 1–2; §3.4), and optionally with RWKV-6's
// time_maa LoRA down-projection (§3.3 step 2).
//
//   a_t = LN(x[t]; weight, bias)           biased variance, eps; the shifted two-pass of layer_norm.wgsl
//   p_0 = prev, p_t = a_{t−1} (LN of row t − 1, recomputed by this workgroup), d_t = p_t − a_t
//   ln_mix       out[m][t] = a_t + d_t ⊙ μ[m]                             m < M
//   ln_mix_lora  z_t = a_t + d_t ⊙ μ[0];  h[t, n] = tanh(Σ_c z_t[c] · W1[n, c])   n < NL (W1 in the Linear layout)
// Both entries also write a_t (the layer's next token-shift state, and ddlerp's input).
//
// Entries:
//   ln_mix       one workgroup per row t; dispatch grid (x, y) folded as t = wid.x + wid.y · num_workgroups.x.
//   ln_mix_lora  workgroup (g, t) computes the LN + mix of row t (every workgroup of the row redoes it: a row is C
//                floats, far less than the ROWS·C weights it then reads) and h[t, gROWS … gROWS + ROWS − 1].
//                · SUBGROUP: z goes to workgroup memory; each subgroup owns whole output rows (ids from a workgroup
//                  atomic, as matmul.wgsl), its lanes stride over C and subgroupAdd reduces.
//                · otherwise: per-thread partial dots over its own channels, then a two-stage fixed-order sum of
//                  the ROWS × WG partials in workgroup memory (two barriers).
//                Either way each output is summed in an order fixed by the device and the shapes (no atomics in the
//                arithmetic). Dispatch (ceil(NL / ROWS), T); workgroup g = 0 writes a_t. The host picks ROWS so
//                that a workgroup reads ~8K (workgroup path) or ~32K (subgroup path) weights: fewer, larger
//                workgroups for small C, since each one pays the LN's barriers.
// Each thread keeps its channels (pairs c = lid + i·WG, i < PAIRS) in registers, so x is read once per LN.
// Overrides: WG threads per workgroup, a power of two ≤ 256; requires C ≤ 2 · PAIRS · WG (≤ 4096).
//            ROWS LoRA outputs per workgroup (ln_mix_lora; default 4; workgroup path: WG · ROWS ≤ 2048).
// Defines: LORA (the ln_mix_lora entry and its bindings) · W_F16 (W1 holds IEEE halfs, else bf16) · PAIRS_N (the
//          register pairs per thread, '1u' … '8u', default 8u: exact-size loops for small C) · SUBGROUP (LORA's
//          subgroup path) · ZS_N (SUBGROUP: pairs of z held in workgroup memory, ≥ C / 2, e.g. '64u').
// Bindings (group 0): 0 params, 1 x, 2 prev, 3 weight, 4 bias, 5 mu, 6 a, then 7 out (ln_mix) or 7 w1, 8 h (LORA).

#ifdef SUBGROUP
enable subgroups;
// The row loop is subgroup-uniform (each subgroup owns whole rows), which the analysis cannot prove.
diagnostic(off, subgroup_uniformity);
#endif

#include "common"

struct Params {
  T: u32,   // rows
  C: u32,   // channels (even)
  M: u32,   // mixes (ln_mix)
  NL: u32,  // LoRA outputs (ln_mix_lora)
  eps: f32, // LayerNorm eps
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;                          // dims
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;          // (T, C) LN input rows
@group(0) @binding(2) var<storage, read> prev: array<vec2<f32>>;       // (C) LN output of the row before x[0]
@group(0) @binding(3) var<storage, read> weight: array<vec2<f32>>;     // (C)
@group(0) @binding(4) var<storage, read> bias: array<vec2<f32>>;       // (C)
@group(0) @binding(5) var<storage, read> mu: array<vec2<f32>>;         // (M, C) mix vectors (LORA: (1, C))
@group(0) @binding(6) var<storage, read_write> a: array<vec2<f32>>;    // (T, C) LN output rows
#ifdef LORA
@group(0) @binding(7) var<storage, read> w1: array<u32>;               // (NL, C / 2) packed 16-bit
@group(0) @binding(8) var<storage, read_write> h: array<f32>;          // (T, NL)
#else
@group(0) @binding(7) var<storage, read_write> out: array<vec2<f32>>;  // (M, T, C)
#endif

override WG: u32 = 256u;
#ifdef PAIRS_N
const PAIRS: u32 = PAIRS_N; // vec2 per thread kept in registers: ceil(C / 2 / WG) rounded up to 1, 2, 4 or 8
#else
const PAIRS: u32 = 8u;
#endif
override ROWS: u32 = 4u;

// Fixed size (8 KB with LORA): the host keeps WG · ROWS ≤ RED_N. (An override-sized array of the same size, or a larger one,
// is markedly slower on SwiftShader: workgroup memory is zero-initialised per workgroup.)
#ifdef LORA
#ifdef SUBGROUP
const RED_N: u32 = 256u; // ≥ WG
const ZS: u32 = ZS_N;    // define-sized (not override-sized) for the same reason
var<workgroup> zs: array<vec2<f32>, ZS>; // (C / 2) z pairs
var<workgroup> subgroup_count: atomic<u32>;
#else
const RED_N: u32 = 2048u;
#endif
#else
const RED_N: u32 = 256u; // ≥ WG
#endif
var<workgroup> red: array<f32, RED_N>; // LN sums: (WG); LoRA partials (workgroup path): (ROWS, WG)

#include "ln_row"

// p_t for this thread's pairs: prev for t = 0, else the LN of row t − 1.
fn shifted_row(t: u32, lid: u32) -> array<vec2<f32>, PAIRS> {
  if (t > 0u) {
    return ln_row(t - 1u, lid);
  }
  let half = p.C / 2u;
  var y: array<vec2<f32>, PAIRS>;
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      y[i] = prev[c];
    }
  }
  return y;
}

#ifdef LORA
// z_t for this thread's pairs; workgroup g = 0 also writes a_t. Workgroup-uniform control flow.
fn mixed_row(t: u32, lid: u32, g: u32) -> array<vec2<f32>, PAIRS> {
  let half = p.C / 2u;
  let at = ln_row(t, lid);
  let pt = shifted_row(t, lid);
  var z: array<vec2<f32>, PAIRS>;
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      z[i] = at[i] + (pt[i] - at[i]) * mu[c];
      if (g == 0u) { a[t * half + c] = at[i]; }
    }
  }
  return z;
}

#ifdef SUBGROUP
@compute @workgroup_size(WG)
fn ln_mix_lora(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sg_size: u32,
) {
  let t = wid.y;
  let half = p.C / 2u;
  let z = mixed_row(t, lid, wid.x);
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) { zs[c] = z[i]; }
  }
  var sg = 0u;
  if (subgroupElect()) { sg = atomicAdd(&subgroup_count, 1u); }
  sg = subgroupBroadcastFirst(sg);
  workgroupBarrier(); // zs and the subgroup count are complete
  let n_sg = atomicLoad(&subgroup_count);
  let n0 = wid.x * ROWS;
  let end = min(n0 + ROWS, p.NL);
  for (var n = n0 + sg; n < end; n += n_sg) {
    let wrow = n * half;
    var acc = 0.0;
    for (var c = lane; c < half; c += sg_size) { acc += dot(zs[c], unpack_w(w1[wrow + c])); }
    let s = subgroupAdd(acc);
    if (lane == 0u) { h[t * p.NL + n] = tanh_acc(s); }
  }
}

#else
@compute @workgroup_size(WG)
fn ln_mix_lora(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = wid.y;
  let half = p.C / 2u;
  let z = mixed_row(t, lid, wid.x);
  let n0 = wid.x * ROWS;
  let nr = min(ROWS, p.NL - n0); // rows of this workgroup that exist
  for (var r = 0u; r < nr; r++) {
    let wrow = (n0 + r) * half;
    var s = 0.0;
    for (var i = 0u; i < PAIRS; i++) {
      let c = lid + i * WG;
      if (c < half) { s += dot(z[i], unpack_w(w1[wrow + c])); }
    }
    red[r * WG + lid] = s;
  }
  workgroupBarrier();
  // Sum each row's WG partials in two fixed-order stages (2 barriers for any ROWS): segments of L partials
  // (L = min(WG, max(ROWS, 16)): ≤ WG segments in all, and short sequential sums in both stages), S = WG / L per
  // row, each summed by one thread into its first slot; then the S segment sums of each row.
  let L = min(WG, max(ROWS, 16u));
  let S = WG / L;
  for (var q = lid; q < nr * S; q += WG) {
    let base = (q / S) * WG + (q % S) * L;
    var acc = 0.0;
    for (var e = 0u; e < L; e++) { acc += red[base + e]; }
    red[base] = acc;
  }
  workgroupBarrier();
  for (var r = lid; r < nr; r += WG) {
    var acc = 0.0;
    for (var q = 0u; q < S; q++) { acc += red[r * WG + q * L]; }
    h[t * p.NL + n0 + r] = tanh_acc(acc);
  }
}
#endif

#else
@compute @workgroup_size(WG)
fn ln_mix(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= p.T) { return; } // uniform per workgroup
  let half = p.C / 2u;
  let at = ln_row(t, lid);
  let pt = shifted_row(t, lid);
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      a[t * half + c] = at[i];
      let d = pt[i] - at[i];
      for (var m = 0u; m < p.M; m++) {
        out[(m * p.T + t) * half + c] = at[i] + d * mu[m * half + c];
      }
    }
  }
}
#endif
