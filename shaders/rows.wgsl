// rows — helpers on (rows, C) f32 row buffers.
//
//   embed:        x[t, :] = f32(emb[ids[t], :])   if 0 ≤ ids[t] < V;   0 if ids[t] ≥ V;   untouched if ids[t] < 0
//                 (negative ids mark image rows written beforehand with queue.writeBuffer). An embedding too large for
//                 one storage binding is split into row blocks, one dispatch each: a block holds rows
//                 [row0, row0 + V) and writes only the ids it holds (the last block also the zero rows of ids past
//                 the vocabulary; `last` = 1), so the dispatches of all blocks together write every row once.
//   reverse_rows: x[start + i, :] ↔ x[start + count − 1 − i, :]  for i < ⌊count / 2⌋  (in place)
//
// Entries (one per module, chosen by the REVERSE define): embed, reverse_rows.
// Dispatch: one thread per vec2 element: embed T·C/2 threads, reverse_rows ⌊count/2⌋·C/2 threads (each swaps one
//           pair of elements); workgroups (x, y) folded as g = wid.x + wid.y · num_workgroups.x, WG threads each.
// Override: WG threads per workgroup (default 256). Defines: REVERSE, W_F16 (IEEE half embedding, else bf16).

#include "common"

override WG: u32 = 256u;

fn flat_index(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

#ifdef REVERSE
struct Params {
  start: u32, // first row of the span
  count: u32, // rows in the span
  C: u32,     // channels (even)
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<vec2<f32>>; // (≥ start + count, C)
@group(0) @binding(1) var<uniform> p: Params;                      // dims

@compute @workgroup_size(WG)
fn reverse_rows(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let half = p.C / 2u;
  let g = flat_index(lid, wid, nwg);
  let i = g / half;
  if (i >= p.count / 2u) { return; }
  let c = g % half;
  let a = (p.start + i) * half + c;
  let b = (p.start + p.count - 1u - i) * half + c;
  let va = x[a];
  x[a] = x[b];
  x[b] = va;
}

#else
struct Params {
  T: u32,    // rows
  C: u32,    // channels (even)
  V: u32,    // vocabulary rows in this block of emb
  row0: u32, // vocabulary id of the block's first row
  last: u32, // 1: ids ≥ row0 + V get zero rows (the last block)
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<i32>;          // (T)
@group(0) @binding(1) var<storage, read> emb: array<u32>;          // (V, C / 2) packed 16-bit
@group(0) @binding(2) var<storage, read_write> x: array<vec2<f32>>; // (T, C)
@group(0) @binding(3) var<uniform> p: Params;                      // dims

@compute @workgroup_size(WG)
fn embed(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let half = p.C / 2u;
  let g = flat_index(lid, wid, nwg);
  let t = g / half;
  if (t >= p.T) { return; }
  let id = ids[t];
  if (id < 0 || u32(id) < p.row0) { return; }
  let r = u32(id) - p.row0;
  var v = vec2<f32>(0.0);
  if (r < p.V) {
    v = unpack_w(emb[r * half + g % half]);
  } else if (p.last == 0u) {
    return; // a later block holds it
  }
  x[g] = v;
}
#endif
