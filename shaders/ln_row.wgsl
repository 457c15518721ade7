// ln_row — the LayerNorm of one row, shared by layer_norm.wgsl and ln_mix.wgsl (`#include "ln_row"`).
// Statistics in f32 by a shifted two-pass: d = x[r, c] − x[r, 0] is exact for rows whose values cluster (Sterbenz),
// μ_d = mean(d), σ² = mean((d − μ_d)²); each thread keeps its pairs c = lid + i·WG (i < PAIRS) in registers, so the
// row is read once.
// The includer provides: `x` and `weight`, `bias` as array<vec2<f32>>; `p.C` (even) and `p.eps`; `override WG`
// (a power of two); `const PAIRS`; and `var<workgroup> red: array<f32, ≥ WG>` (for wg_sum).

#include "wg_sum"

// LN of x row `row`, this thread's pairs (zero past C). Must be called in workgroup-uniform control flow.
fn ln_row(row: u32, lid: u32) -> array<vec2<f32>, PAIRS> {
  let half = p.C / 2u;
  let src = row * half;
  let pivot = x[src].x;
  var d: array<vec2<f32>, PAIRS>;
  var s = 0.0;
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      d[i] = x[src + c] - pivot;
      s += d[i].x + d[i].y;
    }
  }
  let mean_d = wg_sum(s, lid) / f32(p.C);
  var q = 0.0;
  for (var i = 0u; i < PAIRS; i++) {
    if (lid + i * WG < half) {
      let e = d[i] - mean_d;
      q += dot(e, e);
    }
  }
  let inv = 1.0 / sqrt(wg_sum(q, lid) / f32(p.C) + p.eps);
  var y: array<vec2<f32>, PAIRS>;
  for (var i = 0u; i < PAIRS; i++) {
    let c = lid + i * WG;
    if (c < half) {
      y[i] = (d[i] - mean_d) * inv * weight[c] + bias[c];
    }
  }
  return y;
}
