// matmul_tile — the tiled matrix–matrix core of matmul.wgsl (matmul_mat) and matmul_group.wgsl (matmul_group_mat),
// pulled in with `#include "matmul_tile"` in their MAT builds. A BM×64 output tile (BM ∈ {16, 32, 64} token rows) per
// 2·BM-thread workgroup, each thread an 8×4 register block (8 vec4 accumulators: 3 shared-memory vec4 reads per 32
// FMAs). K advances in steps of 16 through two shared-memory buffers (double buffering: the next step's global loads
// go to registers before the current step's FMAs and land in the other buffer after them, so one barrier per step).
// VEC8 loads: x as vec4<f32>, W as vec4<u32> (8 weights); otherwise pairs of k (any even K).
//
// The includer provides: `p.T`, `p.K` (uniform); `x` and `w` bound as the VEC8 / pair layouts below describe;
// `fn tile_store4(t: u32, n: u32, v: vec4<f32>)` (stores features n … n+3 of token t, dropping what is out of range);
// and an entry point `@workgroup_size(2u * BM)` that sets blk_xrow / blk_wrow / blk_rows, then calls tile_mat.

override BM: u32 = 64u;           // token rows per tile (16, 32 or 64); 2·BM threads, each 8 rows × 4 features
override XS: u32 = BK * BM / 4u;  // vec4 slots of one x buffer: [BK][BM / 4] (derived from BM; never set)
const BN: u32 = 64u;              // output features per tile
const BK: u32 = 16u;              // k per shared-memory step
const WS: u32 = BK * BN / 4u;     // vec4 slots of one w buffer: [BK][BN / 4]

var<workgroup> xs: array<vec4<f32>, 2u * XS>; // two buffers of [BK][BM / 4] (4 token rows per vec4)
var<workgroup> ws: array<vec4<f32>, 2u * WS>; // two buffers of [BK][BN / 4] (4 output features per vec4)

// Set by the includer's entry point before tile_mat (workgroup-uniform): the first x row, the first W row and the
// number of W rows (output features) the tile reads; rows of W past blk_rows read as 0, and tokens past p.T.
var<private> blk_xrow: u32;
var<private> blk_wrow: u32;
var<private> blk_rows: u32;

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

// One BM×BN output tile: rows m0 … m0+BM−1 (tokens), features n0 … n0+BN−1 (local to the blk_* rows of W); each thread
// accumulates 8 token rows × 4 features and hands them to the includer's tile_store4(t, n, v) (features n … n+3).
fn tile_mat(lid: u32, n0: u32, m0: u32) {
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
  tile_store4(t, n, acc0);
  tile_store4(t + 1u, n, acc1);
  tile_store4(t + 2u, n, acc2);
  tile_store4(t + 3u, n, acc3);
  tile_store4(t + 4u, n, acc4);
  tile_store4(t + 5u, n, acc5);
  tile_store4(t + 6u, n, acc6);
  tile_store4(t + 7u, n, acc7);
}
