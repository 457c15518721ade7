/**
 * wkv7 (RWKV-7 recurrence, spec §4.3 step 9) vs the float64 reference `wkv7` of tests/reference/rwkv7.ts:
 * y and the final state for T = 1, 2, 17, 100 at (H, N) = (2, 64) and (1, 32), random non-zero initial state,
 * decay logits spanning −8 … +8; chained calls; rowsPerGroup < N; shape errors.
 */
import { describe, expect, it } from 'vitest';
import { checked, testGpu } from '../helpers/gpu';
import { expectClose } from '../helpers/compare';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import type { Gpu } from '../../src/engine/gpu';
import { submit } from '../../src/engine/op';
import { ShapeError } from '../../src/errors';
import { wkv7Op, type Wkv7Args } from '../../src/kernels/wkv7';
import { normalizePerHead } from '../reference/rwkv7';
import { f64, maxAbs, rng, row, uniform, wkv7Seq } from '../reference/rwkv7_kernels';

/**
 * Error relative to max |reference| of y / of S. f32 state: each step rounds N-term sums (≈ √N·2⁻²⁴ relative) and the
 * rounding of S is carried with gain ≤ 1 through up to 100 steps; measured ≤ 1.1e-6 on SwiftShader, ~10× headroom.
 */
const WKV_REL_TOL = 1e-5;
/** Chained vs single call: identical f32 operations per step; only compiler FMA contraction may differ. */
const CHAIN_REL_TOL = 1e-6;

interface Inputs {
  T: number;
  H: number;
  N: number;
  r: Float32Array;
  z: Float32Array;
  k: Float32Array;
  v: Float32Array;
  kk: Float32Array;
  alpha: Float32Array;
  S: Float32Array;
}

function makeInputs(T: number, H: number, N: number, seed: number): Inputs {
  const r = rng(seed);
  const C = H * N;
  const z = uniform(r, T * C, -8, 8);
  for (let t = 0; t < T; t++) {
    // pin both ends of the decay range in every row: w ≈ 0.9998 (z = −8) and w ≈ 0.5456 (z = +8)
    z[t * C] = -8;
    z[t * C + 1] = 8;
  }
  const kkRaw = uniform(r, T * C);
  const kk = new Float32Array(T * C);
  for (let t = 0; t < T; t++) kk.set(normalizePerHead(row(kkRaw, t, C), H), t * C);
  const alpha = uniform(r, T * C, 0.02, 0.98);
  return {
    T, H, N, z, kk, alpha,
    r: uniform(r, T * C),
    k: uniform(r, T * C),
    v: uniform(r, T * C),
    S: uniform(r, H * N * N),
  };
}

interface GpuRun {
  y: Float32Array;
  S: Float32Array;
}

/** Run wkv7 over the inputs, optionally as several calls of the given lengths. */
async function runGpu(gpu: Gpu, x: Inputs, opts: { split?: number[]; rowsPerGroup?: number; mode?: Wkv7Args['mode'] } = {}): Promise<GpuRun> {
  const { T, H, N } = x;
  const C = H * N;
  const split = opts.split ?? [T];
  const state = uploadStorage(gpu, 'wkv7.state', x.S);
  const y = new Float32Array(T * C);
  let t0 = 0;
  for (const n of split) {
    const part = (a: Float32Array, name: string) => uploadStorage(gpu, `wkv7.${name}`, a.subarray(t0 * C, (t0 + n) * C));
    const yb = createStorage(gpu, 'wkv7.y', n * C * 4);
    const bufs = [part(x.r, 'r'), part(x.z, 'w'), part(x.k, 'k'), part(x.v, 'v'), part(x.kk, 'kk'), part(x.alpha, 'alpha')] as const;
    submit(gpu, [
      wkv7Op(gpu, {
        r: bufs[0], w: bufs[1], k: bufs[2], v: bufs[3], kk: bufs[4], alpha: bufs[5], state, y: yb,
        T: n, H, N, mode: opts.mode, rowsPerGroup: opts.rowsPerGroup,
      }),
    ]);
    y.set(await readF32(gpu, yb, 0, n * C), t0 * C);
    for (const b of [...bufs, yb]) b.destroy();
    t0 += n;
  }
  const S = await readF32(gpu, state, 0, H * N * N);
  state.destroy();
  return { y, S };
}

function reference(x: Inputs): { y: Float64Array; S: Float64Array } {
  const S = f64(x.S);
  const y = wkv7Seq(S, x.T, x.H, x.N, f64(x.r), f64(x.z), f64(x.k), f64(x.v), f64(x.kk), f64(x.alpha));
  return { y, S };
}

function expectMatches(got: GpuRun, want: { y: ArrayLike<number>; S: ArrayLike<number> }, rel: number, what: string): void {
  const ry = expectClose(got.y, want.y, rel * maxAbs(want.y), `${what} y`);
  const rs = expectClose(got.S, want.S, rel * maxAbs(want.S), `${what} state`);
  console.log(`${what}: y max|Δ| ${ry.maxAbs.toExponential(2)} (scale ${maxAbs(want.y).toFixed(2)}), S max|Δ| ${rs.maxAbs.toExponential(2)} (scale ${maxAbs(want.S).toFixed(2)})`);
}

const SHAPES = [
  { H: 2, N: 64 },
  { H: 1, N: 32 },
];

describe('wkv7', () => {
  for (const { H, N } of SHAPES) {
    for (const T of [1, 2, 17, 100]) {
      it(`matches the float64 reference: T=${T}, H=${H}, N=${N}`, async () => {
        const gpu = await testGpu();
        const x = makeInputs(T, H, N, 1000 * T + N);
        const got = await checked(gpu, () => runGpu(gpu, x));
        expectMatches(got, reference(x), WKV_REL_TOL, `T=${T} H=${H} N=${N}`);
      });
    }

    it(`chaining calls (T = 7 + 1 + 12) equals one call of T = 20, H=${H}, N=${N}`, async () => {
      const gpu = await testGpu();
      const x = makeInputs(20, H, N, 77 + N);
      const whole = await checked(gpu, () => runGpu(gpu, x));
      const chained = await checked(gpu, () => runGpu(gpu, x, { split: [7, 1, 12] }));
      expectMatches(chained, whole, CHAIN_REL_TOL, `chained H=${H} N=${N}`);
      expectMatches(chained, reference(x), WKV_REL_TOL, `chained vs reference H=${H} N=${N}`);
    });

    it(`splits a head over N / rowsPerGroup workgroups: H=${H}, N=${N}, rowsPerGroup=${N / 4}`, async () => {
      const gpu = await testGpu();
      const x = makeInputs(17, H, N, 5 + N);
      const got = await checked(gpu, () => runGpu(gpu, x, { rowsPerGroup: N / 4 }));
      expectMatches(got, reference(x), WKV_REL_TOL, `rowsPerGroup=${N / 4}`);
    });
  }

  it("mode 'chunked' (falls back to the sequential kernel) matches the reference", async () => {
    const gpu = await testGpu();
    const x = makeInputs(17, 2, 64, 9);
    const got = await checked(gpu, () => runGpu(gpu, x, { mode: 'chunked' }));
    expectMatches(got, reference(x), WKV_REL_TOL, 'chunked');
  });

  it('rejects bad shapes and aliased outputs with ShapeError', async () => {
    const gpu = await testGpu();
    const b = createStorage(gpu, 'b', 4 * 64 * 64 * 4);
    const s = createStorage(gpu, 's', 4 * 64 * 64 * 4);
    const y = createStorage(gpu, 'y', 4 * 64 * 64 * 4);
    const base = { r: b, w: b, k: b, v: b, kk: b, alpha: b, state: s, y, T: 4, H: 2, N: 64 };
    expect(() => wkv7Op(gpu, base)).not.toThrow();
    expect(() => wkv7Op(gpu, { ...base, N: 128, H: 1 })).toThrow(ShapeError); // N > 64
    expect(() => wkv7Op(gpu, { ...base, rowsPerGroup: 48 })).toThrow(ShapeError); // does not divide N
    expect(() => wkv7Op(gpu, { ...base, T: 0 })).toThrow(ShapeError);
    expect(() => wkv7Op(gpu, { ...base, T: 200 })).toThrow(ShapeError); // buffers too small
    expect(() => wkv7Op(gpu, { ...base, y: b })).toThrow(ShapeError); // y aliases the inputs
    expect(() => wkv7Op(gpu, { ...base, state: y })).toThrow(ShapeError); // state aliases y
    for (const x of [b, s, y]) x.destroy();
  });
});

