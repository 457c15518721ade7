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
//   matmul_group_vec (decode, T small): W streamed once per tile of TT ∈ {1, 2, 4} token rows. As matmul.wgsl's
//     vec kernel, a lane works on a group of 4 consecutive rows (4 independent loads per step, x loaded once for
//     them, a vec4 accumulator per token); groups never straddle blocks (block b owns ceil(N_b / 4) groups from
//     group0_b; a partial last group clamps its loads and drops the extra rows). SUBGROUP: each subgroup owns whole
//     groups (ids from a workgroup atomic) and reduces with subgroupAdd; otherwise TPR threads per group and a
//     shared-memory tree. GROUPS groups per workgroup. Dispatch (gx, gy, ceil(T / TT)): workgroup
//     wid.x + wid.y · num_workgroups.x, token tile wid.z.
//   matmul_group_mat (prefill): matmul_mat's 64×64 tiles (256 threads, K in steps of 16 through shared memory, a 4×4
//     register block per thread), never straddling blocks: workgroup x = tile0_b + (tile within block b), y = token
//     tile. Each output is an fma chain over k in order, as in matmul_mat.
//     Dispatch (Σ_b ceil(N_b / 64), ceil(T / 64)).
// Overrides (vec): WG threads per workgroup · TPR threads per row group (workgroup path) · GROUPS row groups per
//   workgroup.
// Defines: MAT · SUBGROUP · W_F16 (IEEE half weights, else bf16) · VEC8 (K % 8 == 0) · TT2 / TT4 (token tile 2 / 4,
//   else 1) · Y1…Y4 (output bindings y1…y4 present; y0 always).
// Bindings (group 0): 0 params, 1 x, 2 w, 3 y0, 4 y1, 5 y2, 6 y3, 7 y4.

#ifdef SUBGROUP
enable subgroups;
// Loops below are subgroup-uniform (each subgroup owns whole row groups), which the analysis cannot prove.
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
  group0: u32, // first row group of the block (vec: groups of 4 rows)
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
// As matmul.wgsl's vec kernel: a lane works on a GROUP of 4 consecutive output rows (of one block; a block's last
// group may be partial) — 4 independent weight loads per step, the x values loaded once for the 4 rows, one vec4
// accumulator per token.
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
#else
#ifdef TT2
const TT: u32 = 2u;
#else
const TT: u32 = 1u;
#endif
#endif

override WG: u32 = 256u;
override TPR: u32 = 64u;
override GROUPS: u32 = 16u; // row groups per workgroup

// Element index (in x's array) of the first x element of each token row of this tile (rows ≥ T clamped to T − 1).
var<private> xrow: vec4<u32>;

fn set_xrow(t0: u32, first: u32) {
  let last = p.T - 1u;
  let t = min(vec4<u32>(t0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
  xrow = (vec4<u32>(first) + t) * (p.K / XPER);
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

// Row group g (global over all blocks: block b owns ceil(N_b / 4) groups from group0) → its block.
fn block_of_group(g: u32) -> u32 {
  var b = 0u;
  for (var i = 1u; i < p.nblocks; i++) {
    if (g >= p.blocks[i].group0) { b = i; }
  }
  return b;
}

// Σ over this lane's chunks c = c0, c0 + stride, … of the 4 rows (element starts `rows`) × TT tokens.
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

// Group g: its block, first local row, and the element starts of its 4 rows in W (rows past the block's end
// clamped to its last row; their sums are dropped at the store). Sets xrow for the block's input.
struct Group { b: u32, n0: u32, rows: vec4<u32> }

fn group_of(g: u32, t0: u32, chunks: u32) -> Group {
  var gr: Group;
  gr.b = block_of_group(g);
  let blk = p.blocks[gr.b];
  gr.n0 = (g - blk.group0) * 4u;
  let last = blk.n0 + blk.rows - 1u;
  gr.rows = min(vec4<u32>(blk.n0 + gr.n0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * chunks;
  set_xrow(t0, blk.xrow);
  return gr;
}

// Store local rows n0 + j (j = lane, lane + stride, … < 4) of token t of block b from the row sums v.
fn store_group(b: u32, t: u32, n0: u32, v: vec4<f32>, lane: u32, stride: u32) {
  for (var j = lane; j < 4u; j += stride) { store(b, t, n0 + j, v[j]); }
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
  let first = (wid.x + wid.y * nwg.x) * GROUPS;
  let ngroups = p.blocks[p.nblocks - 1u].group0 + (p.blocks[p.nblocks - 1u].rows + 3u) / 4u;
  if (first >= ngroups) { return; } // uniform per workgroup
  var sg = 0u;
  if (subgroupElect()) { sg = atomicAdd(&subgroup_count, 1u); }
  sg = subgroupBroadcastFirst(sg);
  workgroupBarrier();
  let n_sg = atomicLoad(&subgroup_count);
  let t0 = wid.z * TT;
  let chunks = p.K / PER;
  let end = min(first + GROUPS, ngroups);
  for (var g = first + sg; g < end; g += n_sg) {
    let gr = group_of(g, t0, chunks);
    let a = row_group(gr.rows, lane, sg_size, chunks);
    store_group(gr.b, t0, gr.n0, subgroupAdd(a.t0), lane, sg_size);
#ifdef TT2
    store_group(gr.b, t0 + 1u, gr.n0, subgroupAdd(a.t1), lane, sg_size);
#endif
#ifdef TT4
    store_group(gr.b, t0 + 1u, gr.n0, subgroupAdd(a.t1), lane, sg_size);
    store_group(gr.b, t0 + 2u, gr.n0, subgroupAdd(a.t2), lane, sg_size);
    store_group(gr.b, t0 + 3u, gr.n0, subgroupAdd(a.t3), lane, sg_size);
#endif
  }
}

#else
var<workgroup> red: array<vec4<f32>, WG>;

// Tree-sum v over the TPR lanes of each row group and store token t's rows. Called in uniform control flow.
fn reduce_store(lid: u32, lane: u32, ok: bool, b: u32, t: u32, n0: u32, v: vec4<f32>) {
  red[lid] = v;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (ok) { store_group(b, t, n0, red[lid - lane], lane, TPR); }
  workgroupBarrier(); // red is reused by the next token
}

@compute @workgroup_size(WG)
fn matmul_group_vec(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let first = (wid.x + wid.y * nwg.x) * (WG / TPR);
  let ngroups = p.blocks[p.nblocks - 1u].group0 + (p.blocks[p.nblocks - 1u].rows + 3u) / 4u;
  if (first >= ngroups) { return; } // uniform per workgroup
  let lane = lid % TPR;
  let g = first + lid / TPR;
  let ok = g < ngroups; // groups past the end redo the last group and skip the store
  let t0 = wid.z * TT;
  let chunks = p.K / PER;
  let gr = group_of(min(g, ngroups - 1u), t0, chunks);
  let a = row_group(gr.rows, lane, TPR, chunks);
  reduce_store(lid, lane, ok, gr.b, t0, gr.n0, a.t0);
#ifdef TT2
  reduce_store(lid, lane, ok, gr.b, t0 + 1u, gr.n0, a.t1);
#endif
#ifdef TT4
  reduce_store(lid, lane, ok, gr.b, t0 + 1u, gr.n0, a.t1);
  reduce_store(lid, lane, ok, gr.b, t0 + 2u, gr.n0, a.t2);
  reduce_store(lid, lane, ok, gr.b, t0 + 3u, gr.n0, a.t3);
#endif
}
#endif
#endif
