// Shared helpers, pulled in with `#include "common"`.
// 16-bit weights are stored two per u32 (element 2i in the low half, 2i+1 in the high half).
// Define W_F16 for IEEE half weights; otherwise bfloat16 (exact: unpacking is a shift).

#ifdef W_F16
fn unpack_w(p: u32) -> vec2<f32> { return unpack2x16float(p); }
#else
fn unpack_w(p: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u));
}
#endif

fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

// tanh accurate everywhere (a builtin tanh may overflow to NaN for large |z| or lose relative precision near 0).
fn tanh_acc(z: f32) -> f32 {
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
