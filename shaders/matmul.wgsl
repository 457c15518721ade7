// matmul — y = epi(x · Wᵀ) for a 16-bit weight matrix in the PyTorch Linear layout (spec §3/§4: "x·Wᵀ").
//
//   z[t, n] = Σ_k x[x_off + t, k] · W[n, k]          t < T, n < N, k < K  (f32 accumulation)
//   y[t, n] = EPI(z):  none z | tanh tanh(z) | relu2 max(z,0)² | sigmoid σ(z) | silu z·σ(z)
//                      add y + z | bias z + b[n] | mul_add y + m[t, n]·z
//
// Entries (one per module, chosen by the MAT define):
//   matmul_vec (decode, T small): W streamed once per tile of TT ∈ {1, 2, 4} token rows. A lane works on a GROUP of
//     4 consecutive output rows at once: per step it issues 4 independent 16-byte weight loads (VEC8: vec4<u32> =
//     8 weights of each row; else one u32 = 2 weights), loads the matching x values once and reuses them for the 4
//     rows (x is read through the cache, never staged: no barrier before the loop). The 4 row sums of a token sit
//     in one vec4 accumulator (one per token: TT independent accumulators), so a lane's partials reduce with one
//     vec4 reduction per token. Rows past the end are clamped for the loads and dropped at the store.
//     · SUBGROUP: each subgroup owns whole row groups (ids from a workgroup atomic, so no assumption on how
//       invocations map to subgroups); its lanes stride over K (adjacent lanes read adjacent 16 bytes) and
//       subgroupAdd reduces — no shared memory, one barrier per workgroup. ROWS output rows per workgroup.
//     · otherwise: TPR threads share a row group (4·WG / TPR rows per workgroup), a shared-memory tree reduces.
//     Dispatch (gx, gy, ceil(T / TT)): row block g = wid.x + wid.y · num_workgroups.x, token tile wid.z.
//   matmul_mat (prefill): a BM×64 output tile (BM ∈ {16, 32, 64} token rows, picked from T) per 2·BM-thread
//     workgroup, each thread an 8×4 register block (8 vec4 accumulators: 3 shared-memory vec4 reads per 32 FMAs).
//     K advances in steps of 16 through two shared-memory buffers (double buffering: the next step's global loads go
//     to registers before the current step's FMAs and land in the other buffer after them, so one barrier per step).
//     VEC8 loads: x as vec4<f32>, W as vec4<u32> (8 weights); otherwise pairs. Dispatch (ceil(N / 64), ceil(T / BM)).
// Overrides: WG threads per workgroup (vec, 256) · TPR threads per row group (vec workgroup path, 64) · ROWS rows per
//   workgroup (vec subgroup path, 64) · BM token rows per tile (mat, 64; the workgroup has 2·BM threads).
// Defines: MAT · SUBGROUP · W_F16 (IEEE half weights, else bf16) · VEC8 (K % 8 == 0) · TT2 / TT4 (vec token tile
//   2 / 4, else 1) · EPI (epilogue function, e.g. 'epi_silu') · HAS_AUX (binding 4: bias for epi_bias, m for epi_mul_add).

#ifdef SUBGROUP
enable subgroups;
// Loops below are subgroup-uniform (each subgroup owns whole row groups), which the analysis cannot prove.
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

#ifdef VEC8
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>; // (x_off + T, K)
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>; // (N, K / 8): 8 packed 16-bit weights each
const PER: u32 = 8u;  // weights per element of w
const XPER: u32 = 4u; // floats per element of x
#else
@group(0) @binding(0) var<storage, read> x: array<vec2<f32>>; // (x_off + T, K)
@group(0) @binding(1) var<storage, read> w: array<u32>;       // (N, K / 2): 2 packed 16-bit weights each
const PER: u32 = 2u;
const XPER: u32 = 2u;
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
override BM: u32 = 64u;           // token rows per tile (16, 32 or 64); 2·BM threads, each 8 rows × 4 features
override XS: u32 = BK * BM / 4u;  // vec4 slots of one x buffer: [BK][BM / 4] (derived from BM; never set)
const BN: u32 = 64u;              // output features per tile
const BK: u32 = 16u;              // k per shared-memory step
const WS: u32 = BK * BN / 4u;     // vec4 slots of one w buffer: [BK][BN / 4]

var<workgroup> xs: array<vec4<f32>, 2u * XS>; // two buffers of [BK][BM / 4] (4 token rows per vec4)
var<workgroup> ws: array<vec4<f32>, 2u * WS>; // two buffers of [BK][BN / 4] (4 output features per vec4)

fn store4(t: u32, n: u32, v: vec4<f32>) {
  store(t, n, v.x);
  store(t, n + 1u, v.y);
  store(t, n + 2u, v.z);
  store(t, n + 3u, v.w);
}

// Tile element (row r, k offset kk) → its scalar slot in buffer `b` (xs / ws are [BK][rows / 4] of vec4).
fn put_x(b: u32, r: u32, kk: u32, v: f32) { xs[b * XS + kk * (BM / 4u) + r / 4u][r % 4u] = v; }
fn put_w(b: u32, r: u32, kk: u32, v: f32) { ws[b * WS + kk * (BN / 4u) + r / 4u][r % 4u] = v; }

fn put_x4(b: u32, r: u32, kk: u32, v: vec4<f32>) {
  put_x(b, r, kk, v.x);
  put_x(b, r, kk + 1u, v.y);
  put_x(b, r, kk + 2u, v.z);
  put_x(b, r, kk + 3u, v.w);
}

#ifdef VEC8
// Register prefetch of one step: x is BM rows × 4 vec4 (two per thread), W is 64 rows × 2 vec4<u32> of 8 weights
// (128 units, 64 / BM per thread). Missing rows / k read as 0.
struct Fetch { x0: vec4<f32>, x1: vec4<f32>, w: array<vec4<u32>, 4> }

fn fetch(lid: u32, n0: u32, m0: u32, k0: u32) -> Fetch {
  var f: Fetch;
  let kx = k0 + 4u * (lid % 4u);
  let t = m0 + lid / 4u; // and t + BM / 2
  let xb = (p.x_off + t) * (p.K / 4u) + kx / 4u;
  f.x0 = vec4<f32>(0.0);
  f.x1 = vec4<f32>(0.0);
  if (kx < p.K) {
    if (t < p.T) { f.x0 = x[xb]; }
    if (t + BM / 2u < p.T) { f.x1 = x[xb + (BM / 2u) * (p.K / 4u)]; }
  }
  let kw = k0 + 8u * (lid % 2u);
  for (var i = 0u; i < 4u; i++) {
    let u = lid + i * 2u * BM; // unit: row u / 2, k kw
    let n = n0 + u / 2u;
    f.w[i] = vec4<u32>(0u);
    if (u < 128u && n < p.N && kw < p.K) { f.w[i] = w[n * (p.K / 8u) + kw / 8u]; }
  }
  return f;
}

fn stash(b: u32, lid: u32, f: Fetch) {
  let kx = 4u * (lid % 4u);
  put_x4(b, lid / 4u, kx, f.x0);
  put_x4(b, lid / 4u + BM / 2u, kx, f.x1);
  let kw = 8u * (lid % 2u);
  for (var i = 0u; i < 4u; i++) {
    let u = lid + i * 2u * BM;
    if (u < 128u) {
      let q = f.w[i];
      let r = u / 2u;
      let a0 = unpack_w(q.x);
      let a1 = unpack_w(q.y);
      let a2 = unpack_w(q.z);
      let a3 = unpack_w(q.w);
      put_w(b, r, kw, a0.x);
      put_w(b, r, kw + 1u, a0.y);
      put_w(b, r, kw + 2u, a1.x);
      put_w(b, r, kw + 3u, a1.y);
      put_w(b, r, kw + 4u, a2.x);
      put_w(b, r, kw + 5u, a2.y);
      put_w(b, r, kw + 6u, a3.x);
      put_w(b, r, kw + 7u, a3.y);
    }
  }
}
#else
// Any even K: x and W move in pairs of k (a pair is all-in or all-out); only x is prefetched to registers, W goes
// straight from memory to the buffer (odd shapes only).
struct Fetch { x0: vec4<f32>, x1: vec4<f32> }

fn x4(t: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (t < p.T) {
    let base = (p.x_off + t) * (p.K / 2u) + k / 2u;
    if (k < p.K) { v = vec4<f32>(x[base], 0.0, 0.0); }
    if (k + 2u < p.K) { v = vec4<f32>(v.xy, x[base + 1u]); }
  }
  return v;
}

fn fetch(lid: u32, n0: u32, m0: u32, k0: u32) -> Fetch {
  let k = k0 + 4u * (lid % 4u);
  let t = m0 + lid / 4u;
  return Fetch(x4(t, k), x4(t + BM / 2u, k));
}

fn stash(b: u32, lid: u32, f: Fetch, n0: u32, k0: u32) {
  let kx = 4u * (lid % 4u);
  put_x4(b, lid / 4u, kx, f.x0);
  put_x4(b, lid / 4u + BM / 2u, kx, f.x1);
  for (var u = lid; u < BN * BK / 2u; u += 2u * BM) {
    let r = u / (BK / 2u);
    let kk = 2u * (u % (BK / 2u));
    var v = vec2<f32>(0.0);
    if (n0 + r < p.N && k0 + kk < p.K) { v = unpack_w(w[(n0 + r) * (p.K / 2u) + (k0 + kk) / 2u]); }
    put_w(b, r, kk, v.x);
    put_w(b, r, kk + 1u, v.y);
  }
}
#endif

@compute @workgroup_size(2u * BM)
fn matmul_mat(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let n0 = wid.x * BN;
  let m0 = wid.y * BM;
  let tx = lid % 16u; // owns output features n0 + 4tx … +3
  let ty = lid / 16u; // owns token rows m0 + 8ty … +7

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  var acc4 = vec4<f32>(0.0);
  var acc5 = vec4<f32>(0.0);
  var acc6 = vec4<f32>(0.0);
  var acc7 = vec4<f32>(0.0);
  let steps = (p.K + BK - 1u) / BK;
#ifdef VEC8
  stash(0u, lid, fetch(lid, n0, m0, 0u));
#else
  stash(0u, lid, fetch(lid, n0, m0, 0u), n0, 0u);
#endif
  workgroupBarrier();
  for (var s = 0u; s < steps; s++) {
    // Double buffering: step s reads buffer s % 2 while the loads of step s + 1 are in flight; they land in the
    // other buffer, whose last readers (step s − 1) all passed the previous barrier. One barrier per step.
    let cur = s % 2u;
    let more = s + 1u < steps;
    var f: Fetch;
    if (more) { f = fetch(lid, n0, m0, (s + 1u) * BK); }
    let xb = cur * XS + 2u * ty;
    let wb = cur * WS + tx;
    for (var kk = 0u; kk < BK; kk++) {
      let a = xs[xb + kk * (BM / 4u)];
      let c = xs[xb + kk * (BM / 4u) + 1u];
      let b = ws[wb + kk * (BN / 4u)];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
      acc4 = fma(vec4<f32>(c.x), b, acc4);
      acc5 = fma(vec4<f32>(c.y), b, acc5);
      acc6 = fma(vec4<f32>(c.z), b, acc6);
      acc7 = fma(vec4<f32>(c.w), b, acc7);
    }
    if (more) {
#ifdef VEC8
      stash(1u - cur, lid, f);
#else
      stash(1u - cur, lid, f, n0, (s + 1u) * BK);
#endif
    }
    workgroupBarrier();
  }
  let t = m0 + 8u * ty;
  let n = n0 + 4u * tx;
  store4(t, n, acc0);
  store4(t + 1u, n, acc1);
  store4(t + 2u, n, acc2);
  store4(t + 3u, n, acc3);
  store4(t + 4u, n, acc4);
  store4(t + 5u, n, acc5);
  store4(t + 6u, n, acc6);
  store4(t + 7u, n, acc7);
}

#else
// ================================ matrix–vector (decode) ================================
#ifdef TT4
const TT: u32 = 4u;
#else
#ifdef TT2
const TT: u32 = 2u;
#else
const TT: u32 = 1u;
#endif
#endif

override WG: u32 = 256u;
override TPR: u32 = 64u;
override ROWS: u32 = 64u;

// Element index (in x's array) of the first x element of each token row of this tile (rows ≥ T clamped to T − 1).
var<private> xrow: vec4<u32>;

fn set_xrow(t0: u32) {
  let last = p.T - 1u;
  let t = min(vec4<u32>(t0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
  xrow = (vec4<u32>(p.x_off) + t) * (p.K / XPER);
}

// Partial sums of a row group: one vec4 (its 4 rows) per token of the tile.
struct Acc {
  t0: vec4<f32>,
#ifdef TT2
  t1: vec4<f32>,
#endif
#ifdef TT4
  t1: vec4<f32>,
  t2: vec4<f32>,
  t3: vec4<f32>,
#endif
}

// Element index of the start of each of the 4 rows (clamped to `last`) of the group starting at row n0.
fn group_rows(n0: u32, last: u32, chunks: u32) -> vec4<u32> {
  return min(vec4<u32>(n0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * chunks;
}

// Σ over this lane's chunks c = c0, c0 + stride, … of the 4 rows × TT tokens.
fn row_group(rows: vec4<u32>, c0: u32, stride: u32, chunks: u32) -> Acc {
  var a: Acc;
  a.t0 = vec4<f32>(0.0);
#ifdef TT2
  a.t1 = vec4<f32>(0.0);
#endif
#ifdef TT4
  a.t1 = vec4<f32>(0.0);
  a.t2 = vec4<f32>(0.0);
  a.t3 = vec4<f32>(0.0);
#endif
  for (var c = c0; c < chunks; c += stride) {
    // Four independent loads in flight; the columns of wl / wh are the 4 rows.
    let q0 = w[rows.x + c];
    let q1 = w[rows.y + c];
    let q2 = w[rows.z + c];
    let q3 = w[rows.w + c];
#ifdef VEC8
    let wl = mat4x4<f32>(
      vec4<f32>(unpack_w(q0.x), unpack_w(q0.y)), vec4<f32>(unpack_w(q1.x), unpack_w(q1.y)),
      vec4<f32>(unpack_w(q2.x), unpack_w(q2.y)), vec4<f32>(unpack_w(q3.x), unpack_w(q3.y)));
    let wh = mat4x4<f32>(
      vec4<f32>(unpack_w(q0.z), unpack_w(q0.w)), vec4<f32>(unpack_w(q1.z), unpack_w(q1.w)),
      vec4<f32>(unpack_w(q2.z), unpack_w(q2.w)), vec4<f32>(unpack_w(q3.z), unpack_w(q3.w)));
    // x · W-block: row vector times matrix = the 4 row dot products.
    a.t0 += x[xrow.x + 2u * c] * wl + x[xrow.x + 2u * c + 1u] * wh;
#ifdef TT2
    a.t1 += x[xrow.y + 2u * c] * wl + x[xrow.y + 2u * c + 1u] * wh;
#endif
#ifdef TT4
    a.t1 += x[xrow.y + 2u * c] * wl + x[xrow.y + 2u * c + 1u] * wh;
    a.t2 += x[xrow.z + 2u * c] * wl + x[xrow.z + 2u * c + 1u] * wh;
    a.t3 += x[xrow.w + 2u * c] * wl + x[xrow.w + 2u * c + 1u] * wh;
#endif
#else
    let wm = mat4x2<f32>(unpack_w(q0), unpack_w(q1), unpack_w(q2), unpack_w(q3));
    a.t0 += x[xrow.x + c] * wm;
#ifdef TT2
    a.t1 += x[xrow.y + c] * wm;
#endif
#ifdef TT4
    a.t1 += x[xrow.y + c] * wm;
    a.t2 += x[xrow.z + c] * wm;
    a.t3 += x[xrow.w + c] * wm;
#endif
#endif
  }
  return a;
}

// Store rows n0 + j (j = lane, lane + stride, … < 4; rows ≥ end dropped) of token t0 + dt from the row sums v.
fn store_group(t: u32, n0: u32, end: u32, v: vec4<f32>, lane: u32, stride: u32) {
  for (var j = lane; j < 4u; j += stride) {
    if (n0 + j < end) { store(t, n0 + j, v[j]); }
  }
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
  for (var n0 = first + 4u * sg; n0 < end; n0 += 4u * n_sg) {
    let a = row_group(group_rows(n0, end - 1u, chunks), lane, sg_size, chunks);
    store_group(t0, n0, end, subgroupAdd(a.t0), lane, sg_size);
#ifdef TT2
    store_group(t0 + 1u, n0, end, subgroupAdd(a.t1), lane, sg_size);
#endif
#ifdef TT4
    store_group(t0 + 1u, n0, end, subgroupAdd(a.t1), lane, sg_size);
    store_group(t0 + 2u, n0, end, subgroupAdd(a.t2), lane, sg_size);
    store_group(t0 + 3u, n0, end, subgroupAdd(a.t3), lane, sg_size);
#endif
  }
}

#else
var<workgroup> red: array<vec4<f32>, WG>;

// Tree-sum v over the TPR lanes of each row group and store token t's rows. Called in uniform control flow.
fn reduce_store(lid: u32, lane: u32, t: u32, n0: u32, end: u32, v: vec4<f32>) {
  red[lid] = v;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  store_group(t, n0, end, red[lid - lane], lane, TPR);
  workgroupBarrier(); // red is reused by the next token
}

@compute @workgroup_size(WG)
fn matmul_vec(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let first = (wid.x + wid.y * nwg.x) * (4u * WG / TPR);
  if (first >= p.N) { return; } // uniform per workgroup
  let lane = lid % TPR;
  let n0 = first + 4u * (lid / TPR);
  let t0 = wid.z * TT;
  set_xrow(t0);
  let chunks = p.K / PER;
  let a = row_group(group_rows(n0, p.N - 1u, chunks), lane, TPR, chunks);
  reduce_store(lid, lane, t0, n0, p.N, a.t0);
#ifdef TT2
  reduce_store(lid, lane, t0 + 1u, n0, p.N, a.t1);
#endif
#ifdef TT4
  reduce_store(lid, lane, t0 + 1u, n0, p.N, a.t1);
  reduce_store(lid, lane, t0 + 2u, n0, p.N, a.t2);
  reduce_store(lid, lane, t0 + 3u, n0, p.N, a.t3);
#endif
}
#endif
#endif
