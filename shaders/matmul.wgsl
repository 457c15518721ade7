// matmul — y = epi(x · Wᵀ) for a 16-bit weight matrix in the PyTorch Linear layout (spec §3/§4: "x·Wᵀ").
//
//   z[t, n] = Σ_k x[x_off + t, k] · W[n, k]          t < T, n < N, k < K  (f32 accumulation)
//   y[t, n] = EPI(z):  none z | tanh tanh(z) | relu2 max(z,0)² | sigmoid σ(z) | silu z·σ(z)
//                      add y + z | bias z + b[n] | mul_add y + m[t, n]·z
//
// Entries (one per module, chosen by the MAT define):
//   matmul_vec (decode, T small): W streamed once per tile of TT ∈ {1, 2, 4} token rows (accumulator f32 / vec2 /
//     vec4: one lane per token, no private arrays). Loads are 16 bytes (VEC8: vec4<u32> = 8 weights) or 4 bytes.
//     · SUBGROUP: each subgroup owns whole output rows (ids from a workgroup atomic, so no assumption on how
//       invocations map to subgroups); its lanes stride over K and subgroupAdd reduces — no shared memory and one
//       barrier per workgroup. ROWS output rows per workgroup.
//     · otherwise: TPR threads share a row (WG / TPR rows per workgroup) and a shared-memory tree reduces.
//     Dispatch (gx, gy, ceil(T / TT)): row block g = wid.x + wid.y · num_workgroups.x, token tile wid.z.
//   matmul_mat (prefill): 64×64 output tile per 256-thread workgroup, K in steps of 16 through shared memory,
//     a 4×4 register block per thread (4 vec4 accumulators). Dispatch (ceil(N / 64), ceil(T / 64)).
// Overrides (vec): WG threads per workgroup (256) · TPR threads per row, workgroup path (64) · ROWS rows per
//   workgroup, subgroup path (64).
// Defines: MAT · SUBGROUP · W_F16 (IEEE half weights, else bf16) · VEC8 (K % 8 == 0) · TT2 / TT4 (token tile 2 / 4,
//   else 1) · EPI (epilogue function, e.g. 'epi_silu') · HAS_AUX (binding 4: bias for epi_bias, m for epi_mul_add).

#ifdef SUBGROUP
enable subgroups;
// Loops below are subgroup-uniform (each subgroup owns whole rows), which the analysis cannot prove.
diagnostic(off, subgroup_uniformity);
#endif

#include "common"

struct Params {
  T: u32,     // token rows
  N: u32,     // output features (rows of W)
  K: u32,     // input features (cols of W, even)
  x_off: u32, // first row of x
}

@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // (T, N)
@group(0) @binding(3) var<uniform> p: Params;                  // dims
#ifdef HAS_AUX
@group(0) @binding(4) var<storage, read> aux: array<f32>;      // bias (N) | m (T, N)
#endif

// ---- epilogues: `i` = t·N + n is the output index ----
fn tanh_acc(z: f32) -> f32 {
  // Accurate everywhere (a builtin tanh may overflow to NaN for large |z| or lose relative precision near 0).
  let a = abs(z);
  var r: f32;
  if (a < 0.125) {
    let z2 = z * z;
    r = a * (1.0 + z2 * (-1.0 / 3.0 + z2 * (2.0 / 15.0 + z2 * (-17.0 / 315.0))));
  } else {
    let e = exp(-2.0 * min(a, 20.0));
    r = (1.0 - e) / (1.0 + e);
  }
  return select(r, -r, z < 0.0);
}
fn epi_none(z: f32, i: u32, n: u32) -> f32 { return z; }
fn epi_tanh(z: f32, i: u32, n: u32) -> f32 { return tanh_acc(z); }
fn epi_relu2(z: f32, i: u32, n: u32) -> f32 { let r = max(z, 0.0); return r * r; }
fn epi_sigmoid(z: f32, i: u32, n: u32) -> f32 { return sigmoid(z); }
fn epi_silu(z: f32, i: u32, n: u32) -> f32 { return z * sigmoid(z); }
fn epi_add(z: f32, i: u32, n: u32) -> f32 { return y[i] + z; }
#ifdef HAS_AUX
fn epi_bias(z: f32, i: u32, n: u32) -> f32 { return z + aux[n]; }
fn epi_mul_add(z: f32, i: u32, n: u32) -> f32 { return y[i] + aux[i] * z; }
#endif

// y[t, n] = EPI(z) if t < T and n < N.
fn store(t: u32, n: u32, z: f32) {
  if (t < p.T && n < p.N) {
    let i = t * p.N + n;
    y[i] = EPI(z, i, n);
  }
}

#ifdef MAT
// ================================ tiled matrix–matrix ================================
@group(0) @binding(0) var<storage, read> x: array<vec2<f32>>; // (x_off + T, K)
@group(0) @binding(1) var<storage, read> w: array<u32>;       // (N, K / 2) packed 16-bit

const BM: u32 = 64u; // token rows per tile
const BN: u32 = 64u; // output features per tile
const BK: u32 = 16u; // k per shared-memory step

var<workgroup> xs: array<vec4<f32>, 256>; // [BK][BM / 4]
var<workgroup> ws: array<vec4<f32>, 256>; // [BK][BN / 4]

fn store4(t: u32, n: u32, v: vec4<f32>) {
  store(t, n, v.x);
  store(t, n + 1u, v.y);
  store(t, n + 2u, v.z);
  store(t, n + 3u, v.w);
}

@compute @workgroup_size(256)
fn matmul_mat(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let n0 = wid.x * BN;
  let m0 = wid.y * BM;
  let tx = lid % 16u; // owns output cols n0 + 4tx … +3
  let ty = lid / 16u; // owns token rows m0 + 4ty … +3
  // Loader: 4 threads per tile row, 4 consecutive k each (two pairs; K is even so a pair is all-in or all-out).
  let lr = lid / 4u;
  let lk = (lid % 4u) * 4u;
  let xrow = m0 + lr;
  let wrow = n0 + lr;
  let half = p.K / 2u;
  let xbase = (p.x_off + xrow) * half;
  let wbase = wrow * half;
  let sv = lr / 4u;
  let sc = lr % 4u;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    let k = k0 + lk;
    var a0 = vec2<f32>(0.0);
    var a1 = vec2<f32>(0.0);
    var b0 = vec2<f32>(0.0);
    var b1 = vec2<f32>(0.0);
    if (xrow < p.T) {
      if (k < p.K) { a0 = x[xbase + k / 2u]; }
      if (k + 2u < p.K) { a1 = x[xbase + k / 2u + 1u]; }
    }
    if (wrow < p.N) {
      if (k < p.K) { b0 = unpack_w(w[wbase + k / 2u]); }
      if (k + 2u < p.K) { b1 = unpack_w(w[wbase + k / 2u + 1u]); }
    }
    xs[(lk + 0u) * 16u + sv][sc] = a0.x;
    xs[(lk + 1u) * 16u + sv][sc] = a0.y;
    xs[(lk + 2u) * 16u + sv][sc] = a1.x;
    xs[(lk + 3u) * 16u + sv][sc] = a1.y;
    ws[(lk + 0u) * 16u + sv][sc] = b0.x;
    ws[(lk + 1u) * 16u + sv][sc] = b0.y;
    ws[(lk + 2u) * 16u + sv][sc] = b1.x;
    ws[(lk + 3u) * 16u + sv][sc] = b1.y;
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a = xs[kk * 16u + ty];
      let b = ws[kk * 16u + tx];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }
  let t = m0 + 4u * ty;
  let n = n0 + 4u * tx;
  store4(t, n, acc0);
  store4(t + 1u, n, acc1);
  store4(t + 2u, n, acc2);
  store4(t + 3u, n, acc3);
}

#else
// ================================ matrix–vector (decode) ================================
#ifdef VEC8
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>; // (x_off + T, K)
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>; // (N, K / 8): 8 packed 16-bit weights each
const PER: u32 = 8u;  // weights per load
const XPER: u32 = 4u; // floats per element of x
#else
@group(0) @binding(0) var<storage, read> x: array<vec2<f32>>; // (x_off + T, K)
@group(0) @binding(1) var<storage, read> w: array<u32>;       // (N, K / 2): 2 packed 16-bit weights each
const PER: u32 = 2u;
const XPER: u32 = 2u;
#endif

#ifdef TT4
const TT: u32 = 4u;
alias Acc = vec4<f32>;
#else
#ifdef TT2
const TT: u32 = 2u;
alias Acc = vec2<f32>;
#else
const TT: u32 = 1u;
alias Acc = f32;
#endif
#endif

override WG: u32 = 256u;
override TPR: u32 = 64u;
override ROWS: u32 = 64u;

// Element index of the first x element of each token row of this tile (rows ≥ T clamped to T − 1).
var<private> xrow: vec4<u32>;

// One token row's share of one load: 8 (or 2) weights times the matching x values.
#ifdef VEC8
fn tok(wa: vec4<f32>, wb: vec4<f32>, xr: u32, c: u32) -> f32 {
  return dot(wa, x[xr + 2u * c]) + dot(wb, x[xr + 2u * c + 1u]);
}
fn chunk(wr: u32, c: u32) -> Acc {
  let q = w[wr + c];
  let wa = vec4<f32>(unpack_w(q.x), unpack_w(q.y));
  let wb = vec4<f32>(unpack_w(q.z), unpack_w(q.w));
#ifdef TT4
  return vec4<f32>(tok(wa, wb, xrow.x, c), tok(wa, wb, xrow.y, c), tok(wa, wb, xrow.z, c), tok(wa, wb, xrow.w, c));
#else
#ifdef TT2
  return vec2<f32>(tok(wa, wb, xrow.x, c), tok(wa, wb, xrow.y, c));
#else
  return tok(wa, wb, xrow.x, c);
#endif
#endif
}
#else
fn chunk(wr: u32, c: u32) -> Acc {
  let v = unpack_w(w[wr + c]);
#ifdef TT4
  return vec4<f32>(dot(v, x[xrow.x + c]), dot(v, x[xrow.y + c]), dot(v, x[xrow.z + c]), dot(v, x[xrow.w + c]));
#else
#ifdef TT2
  return vec2<f32>(dot(v, x[xrow.x + c]), dot(v, x[xrow.y + c]));
#else
  return dot(v, x[xrow.x + c]);
#endif
#endif
}
#endif

fn set_xrow(t0: u32) {
  let last = p.T - 1u;
  let t = min(vec4<u32>(t0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
  xrow = (vec4<u32>(p.x_off) + t) * (p.K / XPER);
}

// Store the TT results of output row n (token tile starting at t0).
fn store_acc(t0: u32, n: u32, v: Acc) {
#ifdef TT4
  store(t0, n, v.x);
  store(t0 + 1u, n, v.y);
  store(t0 + 2u, n, v.z);
  store(t0 + 3u, n, v.w);
#else
#ifdef TT2
  store(t0, n, v.x);
  store(t0 + 1u, n, v.y);
#else
  store(t0, n, v);
#endif
#endif
}

#ifdef SUBGROUP
var<workgroup> subgroup_count: atomic<u32>;

@compute @workgroup_size(WG)
fn matmul_vec(
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sg_size: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let first = (wid.x + wid.y * nwg.x) * ROWS;
  if (first >= p.N) { return; } // uniform per workgroup
  var sg = 0u;
  if (subgroupElect()) { sg = atomicAdd(&subgroup_count, 1u); }
  sg = subgroupBroadcastFirst(sg);
  workgroupBarrier();
  let n_sg = atomicLoad(&subgroup_count);
  let t0 = wid.z * TT;
  set_xrow(t0);
  let chunks = p.K / PER;
  let end = min(first + ROWS, p.N);
  for (var n = first + sg; n < end; n += n_sg) {
    let wr = n * chunks;
    var acc = Acc(0.0);
    for (var c = lane; c < chunks; c += sg_size) { acc += chunk(wr, c); }
    let s = subgroupAdd(acc);
    if (lane == 0u) { store_acc(t0, n, s); }
  }
}

#else
var<workgroup> red: array<Acc, WG>;

@compute @workgroup_size(WG)
fn matmul_vec(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let first = (wid.x + wid.y * nwg.x) * (WG / TPR);
  if (first >= p.N) { return; } // uniform per workgroup
  let lane = lid % TPR;
  let n = first + lid / TPR;
  let t0 = wid.z * TT;
  set_xrow(t0);
  let chunks = p.K / PER;
  let wr = min(n, p.N - 1u) * chunks; // rows ≥ N read row N − 1 and are discarded at the store
  var acc = Acc(0.0);
  for (var c = lane; c < chunks; c += TPR) { acc += chunk(wr, c); }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (lane == 0u) { store_acc(t0, n, red[lid]); }
}
#endif
#endif
