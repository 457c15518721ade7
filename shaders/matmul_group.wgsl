// matmul_group — several Linear layers in one dispatch (spec §3.3 steps 5–6, §3.4): one 16-bit weight matrix W whose
// rows are the weights of up to MAX_BLOCKS Linear layers stacked, each block b reading its own row block of x and
// writing its own output region with its own epilogue.
//
//   block b = rows [n0_b, n0_b + N_b) of W, input x rows xrow_b + t (t < T), output y_{slot_b}[yoff_b + t·N_b + n]:
//   z[t, n] = Σ_k x[xrow_b + t, k] · W[n0_b + n, k]                 (f32 accumulation)
//   y = EPI_b(z):  0 none z | 1 tanh | 2 relu2 max(z,0)² | 3 sigmoid σ(z) | 4 silu z·σ(z)
//
// E.g. RWKV-6 time mix: W = [W_r; W_k; W_v; W_g; D1] over the ddlerp branches x_r, x_k, x_v, x_g (silu), x_w (tanh);
// channel mix: W = [W_key; W_receptance] over its two shifted inputs (relu2, sigmoid).
//
// Entries (one per module, chosen by the MAT define); the same structure as matmul.wgsl:
//   matmul_group_vec (decode, T small): W streamed once per tile of TT ∈ {1, 2, 4} token rows; per output row the
//     block is looked up (rows of one workgroup may span blocks). SUBGROUP: each subgroup owns whole rows and
//     reduces with subgroupAdd, ROWS rows per workgroup; otherwise TPR threads per row and a shared-memory tree.
//     Dispatch (gx, gy, ceil(T / TT)): row block g = wid.x + wid.y · num_workgroups.x over all Σ N_b rows.
//   matmul_group_mat (prefill): 64×64 output tiles that never straddle blocks: workgroup x = tile0_b + (tile within
//     block b), y = token tile. 256 threads, K in steps of 16 through shared memory, 4×4 register block per thread.
//     Dispatch (Σ_b ceil(N_b / 64), ceil(T / 64)).
// Overrides (vec): WG threads per workgroup · TPR threads per row (workgroup path) · ROWS rows per workgroup (subgroup).
// Defines: MAT · SUBGROUP · W_F16 (IEEE half weights, else bf16) · VEC8 (K % 8 == 0) · TT2 / TT4 (token tile 2 / 4,
//   else 1) · Y1…Y4 (output bindings y1…y4 present; y0 always).
// Bindings (group 0): 0 params, 1 x, 2 w, 3 y0, 4 y1, 5 y2, 6 y3, 7 y4.

#ifdef SUBGROUP
enable subgroups;
// Loops below are subgroup-uniform (each subgroup owns whole rows), which the analysis cannot prove.
diagnostic(off, subgroup_uniformity);
#endif

#include "common"

const MAX_BLOCKS: u32 = 8u;

struct Block {
  n0: u32,    // first row of W
  rows: u32,  // N_b
  xrow: u32,  // first x row this block reads
  epi: u32,   // epilogue code (see header)
  slot: u32,  // output binding y_slot
  yoff: u32,  // first element of the block's (T, N_b) output in y_slot
  tile0: u32, // first workgroup x of the block's tiles (mat)
  _pad: u32,
}

struct Params {
  T: u32,       // token rows
  K: u32,       // input features (cols of W, even)
  nblocks: u32, // 1…MAX_BLOCKS
  ntot: u32,    // Σ N_b = rows of W
  blocks: array<Block, MAX_BLOCKS>,
}

@group(0) @binding(0) var<uniform> p: Params;                     // dims + block table
@group(0) @binding(3) var<storage, read_write> y0: array<f32>;    // (T, N_b) regions of blocks with slot 0
#ifdef Y1
@group(0) @binding(4) var<storage, read_write> y1: array<f32>;    // (T, N_b) regions of blocks with slot 1
#endif
#ifdef Y2
@group(0) @binding(5) var<storage, read_write> y2: array<f32>;    // (T, N_b) regions of blocks with slot 2
#endif
#ifdef Y3
@group(0) @binding(6) var<storage, read_write> y3: array<f32>;    // (T, N_b) regions of blocks with slot 3
#endif
#ifdef Y4
@group(0) @binding(7) var<storage, read_write> y4: array<f32>;    // (T, N_b) regions of blocks with slot 4
#endif

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

fn epi(code: u32, z: f32) -> f32 {
  switch code {
    case 1u: { return tanh_acc(z); }
    case 2u: { let r = max(z, 0.0); return r * r; }
    case 3u: { return sigmoid(z); }
    case 4u: { return z * sigmoid(z); }
    default: { return z; }
  }
}

fn put(slot: u32, i: u32, v: f32) {
  switch slot {
#ifdef Y1
    case 1u: { y1[i] = v; }
#endif
#ifdef Y2
    case 2u: { y2[i] = v; }
#endif
#ifdef Y3
    case 3u: { y3[i] = v; }
#endif
#ifdef Y4
    case 4u: { y4[i] = v; }
#endif
    default: { y0[i] = v; }
  }
}

// Output row n (local to block b) of token t, if t < T and n < N_b.
fn store(b: u32, t: u32, n: u32, z: f32) {
  let blk = p.blocks[b];
  if (t < p.T && n < blk.rows) {
    put(blk.slot, blk.yoff + t * blk.rows + n, epi(blk.epi, z));
  }
}

#ifdef MAT
// ================================ tiled matrix–matrix ================================
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>; // (rows of all blocks' inputs, K)
@group(0) @binding(2) var<storage, read> w: array<u32>;       // (Σ N_b, K / 2) packed 16-bit

const BM: u32 = 64u; // token rows per tile
const BN: u32 = 64u; // output features per tile
const BK: u32 = 16u; // k per shared-memory step

var<workgroup> xs: array<vec4<f32>, 256>; // [BK][BM / 4]
var<workgroup> ws: array<vec4<f32>, 256>; // [BK][BN / 4]

fn store4(b: u32, t: u32, n: u32, v: vec4<f32>) {
  store(b, t, n, v.x);
  store(b, t, n + 1u, v.y);
  store(b, t, n + 2u, v.z);
  store(b, t, n + 3u, v.w);
}

@compute @workgroup_size(256)
fn matmul_group_mat(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  var b = 0u;
  for (var i = 1u; i < p.nblocks; i++) {
    if (wid.x >= p.blocks[i].tile0) { b = i; }
  }
  let blk = p.blocks[b];
  let n0 = (wid.x - blk.tile0) * BN; // local to the block
  let m0 = wid.y * BM;
  let tx = lid % 16u; // owns output cols n0 + 4tx … +3
  let ty = lid / 16u; // owns token rows m0 + 4ty … +3
  // Loader: 4 threads per tile row, 4 consecutive k each (two pairs; K is even so a pair is all-in or all-out).
  let lr = lid / 4u;
  let lk = (lid % 4u) * 4u;
  let xrow = m0 + lr;
  let wrow = n0 + lr;
  let half = p.K / 2u;
  let xbase = (blk.xrow + xrow) * half;
  let wbase = (blk.n0 + wrow) * half;
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
    if (wrow < blk.rows) {
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
      let bw = ws[kk * 16u + tx];
      acc0 = fma(vec4<f32>(a.x), bw, acc0);
      acc1 = fma(vec4<f32>(a.y), bw, acc1);
      acc2 = fma(vec4<f32>(a.z), bw, acc2);
      acc3 = fma(vec4<f32>(a.w), bw, acc3);
    }
    workgroupBarrier();
  }
  let t = m0 + 4u * ty;
  let n = n0 + 4u * tx;
  store4(b, t, n, acc0);
  store4(b, t + 1u, n, acc1);
  store4(b, t + 2u, n, acc2);
  store4(b, t + 3u, n, acc3);
}

#else
// ================================ matrix–vector (decode) ================================
#ifdef VEC8
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>; // (rows of all blocks' inputs, K)
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>; // (Σ N_b, K / 8): 8 packed 16-bit weights each
const PER: u32 = 8u;  // weights per load
const XPER: u32 = 4u; // floats per element of x
#else
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>; // (rows of all blocks' inputs, K)
@group(0) @binding(2) var<storage, read> w: array<u32>;       // (Σ N_b, K / 2): 2 packed 16-bit weights each
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

// The block holding global row n (n < ntot).
fn block_of(n: u32) -> u32 {
  var b = 0u;
  for (var i = 1u; i < p.nblocks; i++) {
    if (n >= p.blocks[i].n0) { b = i; }
  }
  return b;
}

fn set_xrow(t0: u32, first: u32) {
  let last = p.T - 1u;
  let t = min(vec4<u32>(t0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
  xrow = (vec4<u32>(first) + t) * (p.K / XPER);
}

// Store the TT results of global row n of block b (token tile starting at t0).
fn store_acc(b: u32, t0: u32, n: u32, v: Acc) {
  let nl = n - p.blocks[b].n0;
#ifdef TT4
  store(b, t0, nl, v.x);
  store(b, t0 + 1u, nl, v.y);
  store(b, t0 + 2u, nl, v.z);
  store(b, t0 + 3u, nl, v.w);
#else
#ifdef TT2
  store(b, t0, nl, v.x);
  store(b, t0 + 1u, nl, v.y);
#else
  store(b, t0, nl, v);
#endif
#endif
}

#ifdef SUBGROUP
var<workgroup> subgroup_count: atomic<u32>;

@compute @workgroup_size(WG)
fn matmul_group_vec(
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sg_size: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let first = (wid.x + wid.y * nwg.x) * ROWS;
  if (first >= p.ntot) { return; } // uniform per workgroup
  var sg = 0u;
  if (subgroupElect()) { sg = atomicAdd(&subgroup_count, 1u); }
  sg = subgroupBroadcastFirst(sg);
  workgroupBarrier();
  let n_sg = atomicLoad(&subgroup_count);
  let t0 = wid.z * TT;
  let chunks = p.K / PER;
  let end = min(first + ROWS, p.ntot);
  for (var n = first + sg; n < end; n += n_sg) {
    let b = block_of(n);
    set_xrow(t0, p.blocks[b].xrow);
    let wr = n * chunks;
    var acc = Acc(0.0);
    for (var c = lane; c < chunks; c += sg_size) { acc += chunk(wr, c); }
    let s = subgroupAdd(acc);
    if (lane == 0u) { store_acc(b, t0, n, s); }
  }
}

#else
var<workgroup> red: array<Acc, WG>;

@compute @workgroup_size(WG)
fn matmul_group_vec(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let first = (wid.x + wid.y * nwg.x) * (WG / TPR);
  if (first >= p.ntot) { return; } // uniform per workgroup
  let lane = lid % TPR;
  let n = min(first + lid / TPR, p.ntot - 1u); // rows ≥ ntot redo row ntot − 1 and skip the store
  let b = block_of(n);
  let t0 = wid.z * TT;
  set_xrow(t0, p.blocks[b].xrow);
  let chunks = p.K / PER;
  let wr = n * chunks;
  var acc = Acc(0.0);
  for (var c = lane; c < chunks; c += TPR) { acc += chunk(wr, c); }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && first + lid / TPR < p.ntot) { store_acc(b, t0, n, red[lid]); }
}
#endif
#endif
