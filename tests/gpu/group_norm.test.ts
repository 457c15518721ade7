/** group_norm (gated and ungated) vs the float64 reference (tests/reference/group_norm.ts). */
import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { groupNormOp, GROUP_NORM_EPS } from '../../src/kernels/group_norm';
import { ShapeError } from '../../src/errors';
import { groupNormRef } from '../reference/group_norm';

/**
 * Error allowed per element, relative to the reference's rounding scale (|x̂·w| + |b| + |μ|/σ·|w|)·|g|: a tree sum
 * of N ≤ 64 f32 values, a centred two-pass variance and inverseSqrt stay within ~16 ulps (1e-6); measured ≤ 2e-7.
 */
const GN_REL_TOL = 1e-6;

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

interface Case {
  T: number;
  H: number;
  N: number;
  gate: boolean;
  eps?: number;
}

describe('group_norm', () => {
  const cases: Case[] = [
    { T: 1, H: 2, N: 64, gate: true },
    { T: 7, H: 4, N: 32, gate: true },
    { T: 300, H: 2, N: 64, gate: true },
    { T: 5, H: 3, N: 64, gate: false },
    { T: 3, H: 2, N: 16, gate: true, eps: 1e-5 },
  ];
  for (const cs of cases) {
    it(`T=${cs.T} H=${cs.H} N=${cs.N}${cs.gate ? ', gated' : ', no gate'}; heads with tiny variance and large mean`, async () => {
      const gpu = await testGpu();
      const { T, H, N } = cs;
      const C = H * N;
      const eps = cs.eps ?? GROUP_NORM_EPS;
      const r = rng(T * 31 + C + (cs.gate ? 1 : 0));
      // Per (t, head) a mean and a spread; head 1 of every token has variance ~1e-8 ≪ eps, head 0 of odd t a constant
      // row (variance 0), others large means with ordinary or small spreads.
      const y = new Float32Array(T * C);
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          const kind = h === 1 ? 'tiny' : h === 0 && t % 2 === 1 ? 'const' : 'plain';
          const mean = kind === 'tiny' ? 3 : kind === 'const' ? -1.5 : [0, 20, -7][(t + h) % 3]!;
          const spread = kind === 'tiny' ? 2e-4 : kind === 'const' ? 0 : [3, 0.05, 1][(t * 7 + h) % 3]!;
          for (let i = 0; i < N; i++) y[t * C + h * N + i] = mean + spread * (2 * r() - 1);
        }
      }
      const weight = uniform(r, C, -2, 2);
      const bias = uniform(r, C, -1, 1);
      const g = cs.gate ? uniform(r, T * C, -1.5, 1.5) : undefined;
      const got = await checked(gpu, async () => {
        const out = createStorage(gpu, 'gn.out', T * C * 4);
        submit(gpu, [groupNormOp(gpu, {
          y: uploadStorage(gpu, 'gn.y', y), g: g && uploadStorage(gpu, 'gn.g', g),
          weight: uploadStorage(gpu, 'gn.w', weight), bias: uploadStorage(gpu, 'gn.b', bias), out, T, H, N, eps: cs.eps,
        })]);
        return readF32(gpu, out, 0, T * C);
      });
      const want = groupNormRef({ y, g, weight, bias, T, H, N, eps });
      let worst = 0;
      let at = 0;
      for (let i = 0; i < want.out.length; i++) {
        const e = Math.abs(got[i]! - want.out[i]!) / Math.max(want.scale[i]!, 1e-30);
        if (!(e <= worst)) {
          worst = Number.isNaN(e) ? Infinity : e;
          at = i;
        }
      }
      expect(worst <= GN_REL_TOL, `max relative error ${worst} at ${at}: got ${got[at]}, want ${want.out[at]}`).toBe(true);
      // The tiny-variance head is normalised by sqrt(σ² + eps) ≈ sqrt(eps), not blown up: |x̂| stays ≪ 1.
      const o = 1 * N; // t = 0, head 1, channel 0
      const xhat = (want.out[o]! / (g ? g[o]! : 1) - bias[N]!) / weight[N]!;
      expect(Math.abs(xhat)).toBeLessThan(0.05);
    });
  }

  it('rejects bad shapes with ShapeError', async () => {
    const gpu = await testGpu();
    const T = 2, H = 2, N = 64, C = H * N;
    const b = (n: number) => createStorage(gpu, 'b', n * 4);
    const args = { y: b(T * C), g: b(T * C), weight: b(C), bias: b(C), out: b(T * C), T, H, N };
    expect(() => groupNormOp(gpu, args)).not.toThrow();
    expect(() => groupNormOp(gpu, { ...args, N: 48 })).toThrow(ShapeError);
    expect(() => groupNormOp(gpu, { ...args, T: 3 })).toThrow(ShapeError);
    expect(() => groupNormOp(gpu, { ...args, out: args.y })).toThrow(ShapeError);
    expect(() => groupNormOp(gpu, { ...args, eps: 0 })).toThrow(ShapeError);
  });
});
