// rwkv7_prep — RWKV-7 per-token preparation between the projections and the WKV recurrence (spec §4.3 steps 4, 6–8).
//
// Two variants of this file (the nine buffers do not fit one kernel's 8 storage bindings):
//
//   prep_k (default), one workgroup per (t, h), head channels c = h·N + j:
//     α[t,c]  = σ(a_logit[t,c])                                           (step 4, a_logit = a0 + (x_a·a1)·a2)
//     κ[t,c]  = k[t,c] · k_k[c];   κ̂[t,h·N..] = κ_h / max(‖κ_h‖₂, 1e-12)  (step 6, from the UNMODIFIED k)
//     k[t,c] ← k[t,c] · (1 + (α[t,c] − 1) · k_a[c])                       (step 7, k overwritten by k')
//   prep_v (define PREP_V), one invocation per element (t, c):
//     LAYER0:  v_first[t,c] ← v[t,c]                                       (step 8, layer 0)
//     else:    v[t,c] ← v[t,c] + (v_first[t,c] − v[t,c]) · σ(v_gate[t,c])  (step 8, layers ≥ 1)
//
// Entries:   prep_k | prep_v (PREP_V).
// Dispatch:  prep_k: T·H workgroups of WG threads, folded as row = wid.x + wid.y·num_workgroups.x = t·H + h.
//            prep_v: ceil(T·C / 256) workgroups of 256, folded the same way; element e = row·256 + lid.
// Overrides: N  head size (default 64);  WG  threads of prep_k, a power of two with N ≤ PER·WG (default 64).
// Defines:   PREP_V (the v variant), LAYER0 (with PREP_V: copy v to v_first instead of mixing).

#include "common"

struct Params {
  T: u32,   // tokens
  H: u32,   // heads; C = H·N
  n: u32,   // prep_v: element count T·C
  _pad: u32,
}

#ifdef PREP_V

#ifdef LAYER0
@group(0) @binding(0) var<storage, read> v: array<f32>;              // (T, C)
@group(0) @binding(1) var<storage, read_write> v_first: array<f32>;  // (T, C) out: v
@group(0) @binding(2) var<uniform> p: Params;                        // dims
#else
@group(0) @binding(0) var<storage, read_write> v: array<f32>;        // (T, C) in v, out mixed v
@group(0) @binding(1) var<storage, read> v_first: array<f32>;        // (T, C) layer 0's v of the same rows
@group(0) @binding(2) var<storage, read> v_gate: array<f32>;         // (T, C) logit v0 + (x_v·v1)·v2
@group(0) @binding(3) var<uniform> p: Params;                        // dims
#endif

@compute @workgroup_size(256)
fn prep_v(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let e = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (e >= p.n) { return; }
#ifdef LAYER0
  v_first[e] = v[e];
#else
  let x = v[e];
  v[e] = x + (v_first[e] - x) * sigmoid(v_gate[e]);
#endif
}

#else

@group(0) @binding(0) var<storage, read_write> k: array<f32>;      // (T, C) in k, out k'
@group(0) @binding(1) var<storage, read> a_logit: array<f32>;      // (T, C) a0 + (x_a·a1)·a2 (not sigmoided)
@group(0) @binding(2) var<storage, read> k_k: array<f32>;          // (C)
@group(0) @binding(3) var<storage, read> k_a: array<f32>;          // (C)
@group(0) @binding(4) var<storage, read_write> kk: array<f32>;     // (T, C) out κ̂
@group(0) @binding(5) var<storage, read_write> alpha: array<f32>;  // (T, C) out α
@group(0) @binding(6) var<uniform> p: Params;                      // dims

override N: u32 = 64u;
override WG: u32 = 64u;
const PER: u32 = 4u; // head channels per thread kept in registers (N ≤ PER·WG)
const KK_EPS: f32 = 1e-12;

var<workgroup> red: array<f32, WG>;

#include "wg_sum"

@compute @workgroup_size(WG)
fn prep_k(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let row = wid.x + wid.y * nwg.x; // t·H + h
  if (row >= p.T * p.H) { return; } // uniform per workgroup
  let h = row % p.H;
  let base = row * N; // (t, h·N) in a (T, C) buffer

  var kv: array<f32, PER>;
  var kap: array<f32, PER>;
  var ss = 0.0;
  for (var i = 0u; i < PER; i++) {
    let j = lid + i * WG;
    if (j < N) {
      kv[i] = k[base + j];
      kap[i] = kv[i] * k_k[h * N + j];
      ss += kap[i] * kap[i];
    }
  }
  let inv = 1.0 / max(sqrt(wg_sum(ss, lid)), KK_EPS);

  for (var i = 0u; i < PER; i++) {
    let j = lid + i * WG;
    if (j < N) {
      let a = sigmoid(a_logit[base + j]);
      alpha[base + j] = a;
      kk[base + j] = kap[i] * inv;
      k[base + j] = kv[i] * (1.0 + (a - 1.0) * k_a[h * N + j]);
    }
  }
}

#endif
