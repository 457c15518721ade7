/** Numeric comparison helpers that print index, both values and the max error on failure. */
import { expect } from 'vitest';

export interface DiffReport {
  maxAbs: number;
  index: number;
  got: number;
  want: number;
}

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

/** Assert max |got - want| <= tol, with a message naming `what`, the worst index and both values. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): DiffReport {
  const r = maxAbsDiff(got, want);
  expect(
    r.maxAbs <= tol,
    `${what}: max |Δ| = ${r.maxAbs} > ${tol} at index ${r.index} (got ${r.got}, want ${r.want})`,
  ).toBe(true);
  return r;
}
