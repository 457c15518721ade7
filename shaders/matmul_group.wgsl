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
//   matmul_group_mat (prefill): matmul.wgsl's tiled kernel — a BM×64 output tile (BM ∈ {16, 32, 64} token rows,
//     picked from T) per 2·BM-thread workgroup, each thread an 8×4 register block, K in steps of 16 through two
//     shared-memory buffers (double buffering, one barrier per step), VEC8 loads as vec4<f32> / vec4<u32> — with
//     tiles that never straddle blocks: workgroup x = tile0_b + (64-row tile within block b), y = token tile.
//     Dispatch (Σ_b ceil(N_b / 64), ceil(T / BM)).
// Overrides: WG threads per workgroup (vec) · TPR threads per row group (vec workgroup path) · GROUPS row groups per
//   workgroup (vec) · BM token rows per tile (mat; the workgroup has 2·BM threads).
// Defines: MAT · SUBGROUP · W_F16 (IEEE half weights, else bf16) · VEC8 (K % 8 == 0) · TT2 / TT4 (vec token tile
//   2 / 4, else 1) · Y1…Y4 (output bindings y1…y4 present; y0 always).
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

// Where a block's results go (read from the block table once per row group / tile, not per element).
struct Dst {
  rows: u32,
  epi: u32,
  slot: u32,
  yoff: u32,
}

fn dst_of(b: u32) -> Dst {
  let blk = p.blocks[b];
  return Dst(blk.rows, blk.epi, blk.slot, blk.yoff);
}

// Output row n (local to the block) of token t, if t < T and n < N_b.
fn store(d: Dst, t: u32, n: u32, z: f32) {
  if (t < p.T && n < d.rows) {
    put(d.slot, d.yoff + t * d.rows + n, epi(d.epi, z));
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

// The workgroup's block (workgroup-uniform, set once at entry): its first x row, first W row and row count N_b.
var<private> blk_xrow: u32;
var<private> blk_wrow: u32;
var<private> blk_rows: u32;

fn store4(d: Dst, t: u32, n: u32, v: vec4<f32>) {
  store(d, t, n, v.x);
  store(d, t, n + 1u, v.y);
  store(d, t, n + 2u, v.z);
  store(d, t, n + 3u, v.w);
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
  let xb = (blk_xrow + t) * (p.K / 4u) + kx / 4u;
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
    if (u < 128u && n < blk_rows && kw < p.K) { f.w[i] = w[(blk_wrow + n) * (p.K / 8u) + kw / 8u]; }
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
    let base = (blk_xrow + t) * (p.K / 2u) + k / 2u;
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
    if (n0 + r < blk_rows && k0 + kk < p.K) { v = unpack_w(w[(blk_wrow + n0 + r) * (p.K / 2u) + (k0 + kk) / 2u]); }
    put_w(b, r, kk, v.x);
    put_w(b, r, kk + 1u, v.y);
  }
}
#endif

@compute @workgroup_size(2u * BM)
fn matmul_group_mat(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  var bi = 0u;
  for (var i = 1u; i < p.nblocks; i++) {
    if (wid.x >= p.blocks[i].tile0) { bi = i; }
  }
  let blk = p.blocks[bi];
  blk_xrow = blk.xrow;
  blk_wrow = blk.n0;
  blk_rows = blk.rows;
  let n0 = (wid.x - blk.tile0) * BN; // local to the block
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
  let dst = dst_of(bi);
  store4(dst, t, n, acc0);
  store4(dst, t + 1u, n, acc1);
  store4(dst, t + 2u, n, acc2);
  store4(dst, t + 3u, n, acc3);
  store4(dst, t + 4u, n, acc4);
  store4(dst, t + 5u, n, acc5);
  store4(dst, t + 6u, n, acc6);
  store4(dst, t + 7u, n, acc7);
}

#else
// ================================ matrix–vector (decode) ================================
// As matmul.wgsl's vec kernel: a lane works on a GROUP of 4 consecutive output rows (of one block; a block's last
// group may be partial) — 4 independent weight loads per step, the x values loaded once for the 4 rows, one vec4
// accumulator per token.

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
struct Group { d: Dst, n0: u32, rows: vec4<u32> }

fn group_of(g: u32, t0: u32, chunks: u32) -> Group {
  var gr: Group;
  let b = block_of_group(g);
  gr.d = dst_of(b);
  let blk = p.blocks[b];
  gr.n0 = (g - blk.group0) * 4u;
  let last = blk.n0 + blk.rows - 1u;
  gr.rows = min(vec4<u32>(blk.n0 + gr.n0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * chunks;
  set_xrow(t0, blk.xrow);
  return gr;
}

// Store local rows n0 + j (j = lane, lane + stride, … < 4) of token t from the row sums v.
fn store_group(d: Dst, t: u32, n0: u32, v: vec4<f32>, lane: u32, stride: u32) {
  for (var j = lane; j < 4u; j += stride) { store(d, t, n0 + j, v[j]); }
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
    store_group(gr.d, t0, gr.n0, subgroupAdd(a.t0), lane, sg_size);
#ifdef TT2
    store_group(gr.d, t0 + 1u, gr.n0, subgroupAdd(a.t1), lane, sg_size);
#endif
#ifdef TT4
    store_group(gr.d, t0 + 1u, gr.n0, subgroupAdd(a.t1), lane, sg_size);
    store_group(gr.d, t0 + 2u, gr.n0, subgroupAdd(a.t2), lane, sg_size);
    store_group(gr.d, t0 + 3u, gr.n0, subgroupAdd(a.t3), lane, sg_size);
#endif
  }
}

#else
var<workgroup> red: array<vec4<f32>, WG>;

// Tree-sum v over the TPR lanes of each row group and store token t's rows. Called in uniform control flow.
fn reduce_store(lid: u32, lane: u32, ok: bool, d: Dst, t: u32, n0: u32, v: vec4<f32>) {
  red[lid] = v;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (ok) { store_group(d, t, n0, red[lid - lane], lane, TPR); }
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
  reduce_store(lid, lane, ok, gr.d, t0, gr.n0, a.t0);
#ifdef TT2
  reduce_store(lid, lane, ok, gr.d, t0 + 1u, gr.n0, a.t1);
#endif
#ifdef TT4
  reduce_store(lid, lane, ok, gr.d, t0 + 1u, gr.n0, a.t1);
  reduce_store(lid, lane, ok, gr.d, t0 + 2u, gr.n0, a.t2);
  reduce_store(lid, lane, ok, gr.d, t0 + 3u, gr.n0, a.t3);
#endif
}
#endif
#endif
