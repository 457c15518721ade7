/** token_shift and ddlerp vs the float64 references (tests/reference/token_shift.ts). */
import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { tokenShiftOp, ddlerpOp } from '../../src/kernels/token_shift';
import { ShapeError } from '../../src/errors';
import { f16ToF32 } from '../../src/weights/dtype';
import { tokenShiftRef, ddlerpRef } from '../reference/token_shift';

/** token_shift is a + (p − a)·μ in f32: three roundings of values up to |a| + |d|·|μ| ≤ 8 (ulp(8) ≈ 1e-6; measured 5e-7). */
const SHIFT_ABS_TOL = 3e-6;
/**
 * ddlerp per-element error bound relative to |a| + |d|·(|μ| + Σ|h·W2|): an f32 dot product of R ≤ 70 terms has a
 * worst-case relative error of ~R·2^−24 ≈ 4e-6 of that sum; typical errors are far smaller (measured ≤ 2.2e-7).
 */
const DDLERP_REL_TOL = 4e-6;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(r: () => number, n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** Random 16-bit weights: the packed words and their decoded values. */
function random16(r: () => number, n: number, dtype: 'bf16' | 'f16'): { words: Uint16Array; values: Float64Array } {
  const words = new Uint16Array(n);
  const values = new Float64Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'bf16') {
      f[0] = (2 * r() - 1) * 0.5;
      words[i] = u[0]! >>> 16; // truncation: any 16-bit pattern is a valid bf16
      u[0] = words[i]! << 16;
      values[i] = f[0];
    } else {
      const e = 8 + Math.floor(r() * 7); // exponents 2^-7 … 2^-1: normal halfs
      words[i] = (r() < 0.5 ? 0x8000 : 0) | (e << 10) | Math.floor(r() * 1024);
      values[i] = f16ToF32(words[i]!);
    }
  }
  return { words, values };
}

function maxAbs(got: ArrayLike<number>, want: ArrayLike<number>): { d: number; i: number } {
  let d = 0;
  let i = -1;
  for (let k = 0; k < want.length; k++) {
    const e = Math.abs(got[k]! - want[k]!);
    if (!(e <= d)) {
      d = Number.isNaN(e) ? Infinity : e;
      i = k;
    }
  }
  return { d, i };
}

describe('token_shift', () => {
  for (const [T, C, M] of [[1, 32, 1], [7, 128, 2], [300, 128, 6], [300, 32, 1], [5, 130, 3]] as const) {
    it(`T=${T} C=${C} M=${M}, non-zero prev`, async () => {
      const gpu = await testGpu();
      const r = rng(T * 1000 + C + M);
      const a = uniform(r, T * C, -2, 2);
      const prev = uniform(r, C, -2, 2);
      const mu = uniform(r, M * C, -0.5, 1.5);
      const got = await checked(gpu, async () => {
        const out = createStorage(gpu, 'out', M * T * C * 4);
        submit(gpu, [tokenShiftOp(gpu, {
          a: uploadStorage(gpu, 'a', a), prev: uploadStorage(gpu, 'prev', prev), mu: uploadStorage(gpu, 'mu', mu), out, M, T, C,
        })]);
        return readF32(gpu, out, 0, M * T * C);
      });
      const want = tokenShiftRef(a, prev, mu, M, T, C);
      const { d, i } = maxAbs(got, want);
      expect(d <= SHIFT_ABS_TOL, `max |Δ| = ${d} at ${i}: got ${got[i]}, want ${want[i]}`).toBe(true);
      // Row 0 really uses prev (not zeros): out[0][0] differs from a_0 wherever μ ≠ 0.
      expect(got[0]).toBeCloseTo(a[0]! + (prev[0]! - a[0]!) * mu[0]!, 5);
    });
  }
});

describe('ddlerp', () => {
  for (const [T, C, R, dtype] of [
    [1, 32, 32, 'bf16'],
    [7, 128, 32, 'f16'],
    [300, 128, 32, 'bf16'],
    [300, 32, 16, 'f16'],
    [9, 130, 70, 'bf16'], // partial column tile, rank > one staged pass, partial row tile
  ] as const) {
    it(`T=${T} C=${C} R=${R} ${dtype}`, async () => {
      const gpu = await testGpu();
      const r = rng(T * 7 + C * 13 + R);
      const a = uniform(r, T * C, -2, 2);
      const prev = uniform(r, C, -2, 2);
      const h = uniform(r, T * 5 * R, -1, 1); // tanh output range
      const mu = uniform(r, 5 * C, -0.5, 1.5);
      const w2 = random16(r, 5 * R * C, dtype);
      const got = await checked(gpu, async () => {
        const out = createStorage(gpu, 'out', 5 * T * C * 4);
        submit(gpu, [ddlerpOp(gpu, {
          a: uploadStorage(gpu, 'a', a), prev: uploadStorage(gpu, 'prev', prev), h: uploadStorage(gpu, 'h', h),
          w2: uploadStorage(gpu, 'w2', w2.words), w2Dtype: dtype, mu: uploadStorage(gpu, 'mu', mu), out, T, C, R,
        })]);
        return readF32(gpu, out, 0, 5 * T * C);
      });
      const want = ddlerpRef(a, prev, h, w2.values, mu, T, C, R);
      let worst = 0;
      let at = 0;
      for (let i = 0; i < want.out.length; i++) {
        const e = Math.abs(got[i]! - want.out[i]!) / want.scale[i]!;
        if (!(e <= worst)) {
          worst = Number.isNaN(e) ? Infinity : e;
          at = i;
        }
      }
      expect(worst <= DDLERP_REL_TOL, `max relative error ${worst} at ${at}: got ${got[at]}, want ${want.out[at]}`).toBe(true);
    });
  }

  it('rejects bad shapes with ShapeError', async () => {
    const gpu = await testGpu();
    const T = 3, C = 64, R = 32;
    const b = (n: number) => createStorage(gpu, 'b', n * 4);
    const args = { a: b(T * C), prev: b(C), h: b(T * 5 * R), w2: b((5 * R * C) / 2), w2Dtype: 'bf16' as const, mu: b(5 * C), out: b(5 * T * C), T, C, R };
    expect(() => ddlerpOp(gpu, args)).not.toThrow();
    expect(() => ddlerpOp(gpu, { ...args, R: 64 })).toThrow(ShapeError);
    expect(() => ddlerpOp(gpu, { ...args, C: 63 })).toThrow(ShapeError);
    expect(() => ddlerpOp(gpu, { ...args, out: args.a })).toThrow(ShapeError);
    expect(() => tokenShiftOp(gpu, { a: args.a, prev: args.prev, mu: args.mu, out: b(2 * T * C), M: 3, T, C })).toThrow(ShapeError);
    expect(() => tokenShiftOp(gpu, { a: args.a, prev: args.prev, mu: args.mu, out: args.out, M: 0, T, C })).toThrow(ShapeError);
  });
});
