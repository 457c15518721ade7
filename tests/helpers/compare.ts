/** Numeric comparison helpers that print index, both values and the max error on failure. */
import { expect } from 'vitest';
import { maxAbsDiff, type DiffReport } from './diff';

export { maxAbsDiff, type DiffReport };

/** Assert max |got - want| <= tol, with a message naming `what`, the worst index and both values. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): DiffReport {
  const r = maxAbsDiff(got, want);
  expect(
    r.maxAbs <= tol,
    `${what}: max |Δ| = ${r.maxAbs} > ${tol} at index ${r.index} (got ${r.got}, want ${r.want})`,
  ).toBe(true);
  return r;
}
