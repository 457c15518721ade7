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
//   matmul_group_mat (prefill): the tiled kernel of matmul_tile.wgsl (shared with matmul.wgsl: BM×64 output tiles,
//     BM ∈ {16, 32, 64} picked from T, 2·BM threads each owning 8×4 outputs, double-buffered K steps of 16) with
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
#include "matmul_tile"

var<private> blk_dst: Dst; // the workgroup's block: where its results go (set at entry)

fn tile_store4(t: u32, n: u32, v: vec4<f32>) {
  store(blk_dst, t, n, v.x);
  store(blk_dst, t, n + 1u, v.y);
  store(blk_dst, t, n + 2u, v.z);
  store(blk_dst, t, n + 3u, v.w);
}

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
  blk_dst = dst_of(bi);
  tile_mat(lid, (wid.x - blk.tile0) * BN, wid.y * BM); // n0 local to the block
}

#else
// ================================ matrix–vector (decode) ================================
// As matmul.wgsl's vec kernel: a lane works on a GROUP of 4 consecutive output rows (of one block; a block's last
// group may be partial) — 4 independent weight loads per step, the x values loaded once for the 4 rows, one vec4
// accumulator per token.

#include "matmul_rowgroup"

override WG: u32 = 256u;
override TPR: u32 = 64u;
override GROUPS: u32 = 16u; // row groups per workgroup

// Row group g (global over all blocks: block b owns ceil(N_b / 4) groups from group0) → its block.
fn block_of_group(g: u32) -> u32 {
  var b = 0u;
  for (var i = 1u; i < p.nblocks; i++) {
    if (g >= p.blocks[i].group0) { b = i; }
  }
  return b;
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
