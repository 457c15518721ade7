// matmul_rowgroup — the matrix–vector core of matmul.wgsl (matmul_vec) and matmul_group.wgsl (matmul_group_vec),
// pulled in with `#include "matmul_rowgroup"` in their decode builds. A lane works on a GROUP of 4 consecutive rows
// of W: per step it issues 4 independent weight loads (VEC8: vec4<u32> = 8 weights of each row; else one u32 = 2
// weights), loads the matching x values once and reuses them for the 4 rows; the 4 row sums of a token sit in one
// vec4 accumulator, one per token of the tile (TT ∈ {1, 2, 4}: defines TT2 / TT4).
//
// The includer provides: `p.T`, `p.K` (uniform); `x` and `w` bound as matmul.wgsl describes (VEC8 or pairs);
// constants PER (weights per element of w) and XPER (floats per element of x). It calls set_xrow(t0, first) once,
// then row_group(rows, lane, stride, K / PER) per row group.

#ifdef TT4
const TT: u32 = 4u;
#else
#ifdef TT2
const TT: u32 = 2u;
#else
const TT: u32 = 1u;
#endif
#endif

// Element index (in x's array) of the first x element of each token row of this tile (rows ≥ T clamped to T − 1);
// `first` is the x row of token 0.
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

// Σ over this lane's chunks c = c0, c0 + stride, … of the 4 rows (element starts `rows` in w) × TT tokens.
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
