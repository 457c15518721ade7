/** Max |got − want| with where it happens — without vitest, so the tools in scripts/ can use it too. */
export interface DiffReport {
  maxAbs: number;
  index: number;
  got: number;
  want: number;
}

/** Max |got − want| over two equally long vectors (NaN counts as ∞), with the worst index and both values there. */
export function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): DiffReport {
  if (got.length !== want.length) throw new Error(`length mismatch: got ${got.length}, want ${want.length}`);
  let r: DiffReport = { maxAbs: 0, index: -1, got: NaN, want: NaN };
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= r.maxAbs)) {
      r = { maxAbs: d, index: i, got: got[i]!, want: want[i]! };
      if (Number.isNaN(d)) r.maxAbs = Infinity;
    }
  }
  return r;
}
