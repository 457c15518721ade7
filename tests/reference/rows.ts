/** CPU references for shaders/rows.wgsl (embedding lookup, in-place row reversal). */

/** x (T, C) after embed: rows with id < 0 keep `x`'s old values, ids ≥ V give zeros, else emb[id]. */
export function embedRef(ids: Int32Array, emb: Float64Array, V: number, C: number, xBefore: Float32Array): Float64Array {
  const out = Float64Array.from(xBefore);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (id < 0) continue;
    for (let c = 0; c < C; c++) out[t * C + c] = id < V ? emb[id * C + c]! : 0;
  }
  return out;
}

/** x (R, C) with rows [start, start + count) reversed. */
export function reverseRowsRef(x: Float32Array, start: number, count: number, C: number): Float32Array {
  const out = Float32Array.from(x);
  for (let i = 0; i < count; i++) {
    out.set(x.subarray((start + count - 1 - i) * C, (start + count - i) * C), (start + i) * C);
  }
  return out;
}
