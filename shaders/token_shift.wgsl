// token_shift — token shift with static mixes, and RWKV-6's data-dependent lerp (spec §3.3 steps 1–4, §3.4, §4.3 step 1).
//
// Math (a = the LN output rows of this call, p_t = the row before a_t: p_0 = prev, p_t = a_{t−1}; d_t = p_t − a_t):
//   token_shift  out[m][t] = a_t + d_t ⊙ μ[m]                                  m < M (static mix vectors)
//   ddlerp       out[b][t] = a_t + d_t ⊙ (μ[b] + h[t, b·R:(b+1)·R] · W2[b])    b = w, k, v, r, g (checkpoint order)
//                with h = tanh(z·W1) computed beforehand and W2 = time_maa_w2 as stored: [b][r][c], c contiguous.
//
// Entry points:
//   token_shift  @workgroup_size(64), dispatch (ceil(C/64), T, M): one invocation per output element.
//   ddlerp       @workgroup_size(64), dispatch (ceil(C/128), ceil(T/DL_TT), 5): a workgroup computes a tile of DL_TT
//                rows × 128 columns of one branch; each invocation 2 adjacent columns (one packed W2 word) × DL_TT
//                rows, with h staged in workgroup memory DL_RC ranks at a time. W2 is read once per DL_TT rows.
// Defines: W_F16 — W2 holds IEEE halfs (default bf16), via unpack_w of common.wgsl.
//          DL_ONE — DL_TT = 1 (decode: T = 1 would otherwise compute 7 padding rows per invocation).
// Bindings (group 0): 0 dims, 1 a, 2 prev, 3 mu, 4 out; ddlerp also 5 h, 6 w2. token_shift binds only 0–4.

#include "common"

struct Dims {
  T: u32,
  C: u32,
  M: u32, // mix vectors (token_shift); 5 for ddlerp
  R: u32, // LoRA rank (ddlerp)
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;          // (T, C)
@group(0) @binding(2) var<storage, read> prev: array<f32>;       // (C) the row before a_0
@group(0) @binding(3) var<storage, read> mu: array<f32>;         // (M, C)
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // (M, T, C)
@group(0) @binding(5) var<storage, read> h: array<f32>;          // (T, 5·R) ddlerp only
@group(0) @binding(6) var<storage, read> w2: array<u32>;         // (5, R, C/2) ddlerp only: 16-bit pairs

/// p_t[c]: the previous row's value.
fn shifted(t: u32, c: u32) -> f32 {
  if (t == 0u) {
    return prev[c];
  }
  return a[(t - 1u) * dims.C + c];
}

@compute @workgroup_size(64)
fn token_shift(@builtin(global_invocation_id) gid: vec3<u32>) {
  let C = dims.C;
  let c = gid.x;
  let t = gid.y;
  let m = gid.z;
  if (c >= C) {
    return;
  }
  let at = a[t * C + c];
  out[(m * dims.T + t) * C + c] = at + (shifted(t, c) - at) * mu[m * C + c];
}

#ifdef DL_ONE
const DL_TT: u32 = 1u;  // rows per workgroup: decode (T = 1) computes no padding rows
#else
const DL_TT: u32 = 8u;  // rows per workgroup
#endif
const DL_RC: u32 = 64u; // ranks staged per pass
var<workgroup> dl_h: array<f32, 512>; // (DL_TT, DL_RC) slice of h for this branch

@compute @workgroup_size(64)
fn ddlerp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let C = dims.C;
  let T = dims.T;
  let R = dims.R;
  let b = wg.z;
  let W = C / 2u;           // packed words per W2 row
  let cw = wg.x * 64u + li; // this invocation's word: columns 2cw, 2cw + 1
  let t0 = wg.y * DL_TT;
  var acc: array<vec2<f32>, DL_TT>;
  for (var r0 = 0u; r0 < R; r0 += DL_RC) {
    workgroupBarrier(); // the previous pass is done reading dl_h
    for (var e = li; e < DL_TT * DL_RC; e += 64u) {
      let t = t0 + e / DL_RC;
      let r = r0 + e % DL_RC;
      var hv = 0.0;
      if (t < T && r < R) {
        hv = h[t * 5u * R + b * R + r];
      }
      dl_h[e] = hv;
    }
    workgroupBarrier();
    if (cw < W) {
      let nr = min(DL_RC, R - r0);
      for (var rr = 0u; rr < nr; rr++) {
        let w = unpack_w(w2[(b * R + r0 + rr) * W + cw]);
        for (var tt = 0u; tt < DL_TT; tt++) {
          acc[tt] += dl_h[tt * DL_RC + rr] * w;
        }
      }
    }
  }
  if (cw >= W) {
    return;
  }
  let c = 2u * cw;
  let mu0 = mu[b * C + c];
  let mu1 = mu[b * C + c + 1u];
  for (var tt = 0u; tt < DL_TT; tt++) {
    let t = t0 + tt;
    if (t >= T) {
      break;
    }
    let o = t * C + c;
    let a0 = a[o];
    let a1 = a[o + 1u];
    let ob = (b * T + t) * C + c;
    out[ob] = a0 + (shifted(t, c) - a0) * (mu0 + acc[tt].x);
    out[ob + 1u] = a1 + (shifted(t, c + 1u) - a1) * (mu1 + acc[tt].y);
  }
}
