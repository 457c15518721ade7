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
//   matmul_mat (prefill): the tiled kernel of matmul_tile.wgsl (shared with matmul_group.wgsl) — a BM×64 output tile
//     (BM ∈ {16, 32, 64} token rows, picked from T) per 2·BM-thread workgroup, each thread an 8×4 register block,
//     K in steps of 16 through double-buffered shared memory, one barrier per step. Dispatch (ceil(N / 64), ceil(T / BM)).
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
#include "matmul_tile"

fn tile_store4(t: u32, n: u32, v: vec4<f32>) {
  store(t, n, v.x);
  store(t, n + 1u, v.y);
  store(t, n + 2u, v.z);
  store(t, n + 3u, v.w);
}

@compute @workgroup_size(2u * BM)
fn matmul_mat(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  blk_xrow = p.x_off;
  blk_wrow = 0u;
  blk_rows = p.N;
  tile_mat(lid, wid.x * BN, wid.y * BM);
}

#else
// ================================ matrix–vector (decode) ================================
#include "matmul_rowgroup"

override WG: u32 = 256u;
override TPR: u32 = 64u;
override ROWS: u32 = 64u;

// Element index of the start of each of the 4 rows (clamped to `last`) of the group starting at row n0.
fn group_rows(n0: u32, last: u32, chunks: u32) -> vec4<u32> {
  return min(vec4<u32>(n0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * chunks;
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
  set_xrow(t0, p.x_off);
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
  set_xrow(t0, p.x_off);
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
