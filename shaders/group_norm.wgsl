// group_norm — GN_H of the WKV output with the ln_x affine, optionally times the gate (spec §3.3 step 8, §4.3 step 10).
//
// Math, per token t and head h over its N channels (biased variance, eps 64e-5 in both RWKV-6 and RWKV-7):
//   μ = mean(y_th), σ² = mean((y_th − μ)²),  out_th = ((y_th − μ) / sqrt(σ² + eps) ⊙ weight_h + bias_h) [⊙ g_th]
// Two passes over values held in registers (mean, then centred squares), so a head whose variance is far below
// its mean², or below eps, is still exact.
//
// Entry point: group_norm @workgroup_size(N), dispatch (H, T): one workgroup per (head, token), invocation i = channel.
// Overrides: N (head size, a power of two ≤ 64, default 64). Defines: GATE — multiply by g (RWKV-6); without it the
// g binding is absent (RWKV-7, which adds its bonus term afterwards).
// Bindings (group 0): 0 dims, 1 y, 2 weight, 3 bias, 4 out, 5 g (GATE only).

override N: u32 = 64u;

struct Dims {
  T: u32,
  H: u32,
  C: u32, // H·N
  eps: f32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> y: array<f32>;          // (T, C)
@group(0) @binding(2) var<storage, read> weight: array<f32>;     // (C) ln_x.weight
@group(0) @binding(3) var<storage, read> bias: array<f32>;       // (C) ln_x.bias
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // (T, C)
#ifdef GATE
@group(0) @binding(5) var<storage, read> g: array<f32>;          // (T, C) gate, SiLU already applied
#endif

var<workgroup> gn_red: array<f32, 64>; // (N) reduction scratch

/// Sum of x over the workgroup (tree in workgroup memory; every invocation gets the result).
fn workgroup_sum(x: f32, i: u32) -> f32 {
  workgroupBarrier(); // previous readers of gn_red[0] are done
  gn_red[i] = x;
  workgroupBarrier();
  for (var stride = N / 2u; stride > 0u; stride = stride / 2u) {
    if (i < stride) {
      gn_red[i] += gn_red[i + stride];
    }
    workgroupBarrier();
  }
  return gn_red[0];
}

@compute @workgroup_size(N)
fn group_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) i: u32) {
  let c = wg.x * N + i;
  let o = wg.y * dims.C + c;
  let x = y[o];
  let mean = workgroup_sum(x, i) / f32(N);
  let d = x - mean;
  let variance = workgroup_sum(d * d, i) / f32(N);
  var res = d * inverseSqrt(variance + dims.eps) * weight[c] + bias[c];
#ifdef GATE
  res *= g[o];
#endif
  out[o] = res;
}
