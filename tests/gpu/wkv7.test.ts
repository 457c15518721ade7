/**
 * wkv7 (RWKV-7 recurrence, spec §4.3 step 9) vs the float64 reference `wkv7` of tests/reference/rwkv7.ts:
 * y and the final state for T = 1, 2, 17, 100 at (H, N) = (2, 64) and (1, 32), random non-zero initial state,
 * decay logits spanning −8 … +8 with whole tokens at −8 and at +8; chained calls; rowsPerGroup < N; shape errors.
 * The chunked kernel (mode 'chunked') likewise for T = 1, 15, 16, 17, 100, 300, against the float64 reference and
 * against the sequential kernel, chained with itself and with the sequential kernel, with other chunk lengths; and the
 * float64 chunked formulas (`wkv7Chunked`) against the float64 recurrence.
 */
import { describe, expect, it } from 'vitest';
import { checked, testGpu } from '../helpers/gpu';
import { expectClose } from '../helpers/compare';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import type { Gpu } from '../../src/engine/gpu';
import { submit } from '../../src/engine/op';
import { ShapeError } from '../../src/errors';
import { wkv7ChunkedSharedBytes, wkv7Op, type Wkv7Args } from '../../src/kernels/wkv7';
import { normalizePerHead } from '../reference/rwkv7';
import { f64, maxAbs, rng, row, uniform, wkv7Chunked, wkv7Seq } from '../reference/rwkv7_kernels';

/**
 * Error relative to max |reference| of y / of S. f32 state: each step rounds N-term sums (≈ √N·2⁻²⁴ relative) and the
 * rounding of S is carried with gain ≤ 1 through up to 100 steps; measured ≤ 1.1e-6 on SwiftShader, ~10× headroom.
 */
const WKV_REL_TOL = 1e-5;
/** Chained vs single call: identical f32 operations per step; only compiler FMA contraction may differ. */
const CHAIN_REL_TOL = 1e-6;
/**
 * Chunked kernel vs the float64 reference, relative to max |reference|. Per chunk it rounds N-term dot products
 * (S0·ã_t, the L×L matrices), the ≤ L-term solve and the state row's (2L+1)-term update; the decay factors
 * e^{±g} (|g| ≤ 0.61·L, f32 exp: a few ulp) and the f32 cumsum of ≤ 16 log-decays add ~1e-6 relative per term. Across
 * chunks the state error is carried with gain ≤ 1 as in the sequential kernel. Measured on SwiftShader ≤ 6.4e-7
 * relative (y ≤ 3.9e-7, S ≤ 6.3e-7; T ≤ 300, tokens of all −8 and all +8 decay logits included; 'seq' measures
 * ≤ 2.9e-7 on the same kind of inputs; L = 24: 1.0e-6): the same 1e-5 bound as 'seq' leaves ~15×, while a 1e-4 relative error in the
 * state of one chunk (or a decay off by one token) fails.
 */
const CHUNKED_REL_TOL = 1e-5;
/** Chunked vs the sequential kernel: both are within ~5e-7 of the float64 reference; measured ≤ 5.0e-7 apart. */
const CHUNKED_VS_SEQ_REL_TOL = 1e-5;
/** Float64 chunked formulas vs the float64 recurrence: only float64 rounding (measured ≤ 1.3e-15 absolute). */
const REF_F64_TOL = 1e-12;

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
    // whole tokens at one end: all +8 on tokens 16…31 (one aligned chunk of 16 at the fastest decay: the chunked
    // kernel's largest e^{−g}) and t ≡ 3 (mod 7); all −8 (slowest decay) on t ≡ 5 (mod 7) outside 16…31
    const inFast = t >= 16 && t < 32;
    if (inFast || t % 7 === 3) z.fill(8, t * C, (t + 1) * C);
    else if (t % 7 === 5) z.fill(-8, t * C, (t + 1) * C);
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

interface RunOpts {
  /** Lengths of successive calls (default one call of T). */
  split?: number[];
  /** Mode of each call of `split` (default opts.mode for all). */
  modes?: Wkv7Args['mode'][];
  rowsPerGroup?: number;
  mode?: Wkv7Args['mode'];
  chunk?: number;
}

/** Run wkv7 over the inputs, optionally as several calls of the given lengths. */
async function runGpu(gpu: Gpu, x: Inputs, opts: RunOpts = {}): Promise<GpuRun> {
  const { T, H, N } = x;
  const C = H * N;
  const split = opts.split ?? [T];
  let call = 0;
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
        T: n, H, N, mode: opts.modes?.[call] ?? opts.mode, rowsPerGroup: opts.rowsPerGroup, chunk: opts.chunk,
      }),
    ]);
    y.set(await readF32(gpu, yb, 0, n * C), t0 * C);
    for (const b of [...bufs, yb]) b.destroy();
    t0 += n;
    call++;
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
  console.log(
    `${what}: y max|Δ| ${ry.maxAbs.toExponential(2)} (scale ${maxAbs(want.y).toFixed(2)}, rel ${(ry.maxAbs / maxAbs(want.y)).toExponential(2)}), ` +
      `S max|Δ| ${rs.maxAbs.toExponential(2)} (scale ${maxAbs(want.S).toFixed(2)}, rel ${(rs.maxAbs / maxAbs(want.S)).toExponential(2)})`,
  );
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

describe('wkv7 chunked', () => {
  it('the float64 chunked formulas equal the float64 recurrence (derivation check)', () => {
    for (const [T, H, N, L] of [[1, 2, 16, 16], [17, 2, 16, 16], [40, 1, 32, 8], [37, 2, 8, 5]] as const) {
      const x = makeInputs(T, H, N, 300 + T);
      const want = reference(x);
      const S = f64(x.S);
      const y = wkv7Chunked(S, T, H, N, f64(x.r), f64(x.z), f64(x.k), f64(x.v), f64(x.kk), f64(x.alpha), L);
      expectClose(y, want.y, REF_F64_TOL, `ref T=${T} L=${L} y`);
      expectClose(S, want.S, REF_F64_TOL, `ref T=${T} L=${L} state`);
    }
  });

  for (const { H, N } of SHAPES) {
    for (const T of [1, 15, 16, 17, 100, 300]) {
      it(`matches the float64 reference and the sequential kernel: T=${T}, H=${H}, N=${N}`, async () => {
        const gpu = await testGpu();
        const x = makeInputs(T, H, N, 7000 + 1000 * T + N);
        const got = await checked(gpu, () => runGpu(gpu, x, { mode: 'chunked' }));
        const seq = await checked(gpu, () => runGpu(gpu, x, { mode: 'seq' }));
        expectMatches(got, reference(x), CHUNKED_REL_TOL, `chunked T=${T} H=${H} N=${N} vs reference`);
        expectMatches(got, seq, CHUNKED_VS_SEQ_REL_TOL, `chunked T=${T} H=${H} N=${N} vs seq`);
      });
    }

    it(`chunked (T = 37) then seq (T = 63) equals one seq call of T = 100, H=${H}, N=${N}`, async () => {
      const gpu = await testGpu();
      const x = makeInputs(100, H, N, 11 + N);
      const whole = await checked(gpu, () => runGpu(gpu, x, { mode: 'seq' }));
      const mixed = await checked(gpu, () => runGpu(gpu, x, { split: [37, 63], modes: ['chunked', 'seq'] }));
      expectMatches(mixed, whole, CHUNKED_VS_SEQ_REL_TOL, `chunked+seq H=${H} N=${N} vs seq`);
      expectMatches(mixed, reference(x), CHUNKED_REL_TOL, `chunked+seq H=${H} N=${N} vs reference`);
    });

    it(`chained chunked calls (T = 7 + 1 + 20 + 16) equal the reference, H=${H}, N=${N}`, async () => {
      const gpu = await testGpu();
      const x = makeInputs(44, H, N, 13 + N);
      const got = await checked(gpu, () => runGpu(gpu, x, { split: [7, 1, 20, 16], mode: 'chunked' }));
      expectMatches(got, reference(x), CHUNKED_REL_TOL, `chained chunked H=${H} N=${N}`);
    });

    it(`rowsPerGroup = N / 4 and other chunk lengths (5, 8, 24, 32 where they fit): T = 45, H=${H}, N=${N}`, async () => {
      const gpu = await testGpu();
      const x = makeInputs(45, H, N, 17 + N);
      const want = reference(x);
      const got = await checked(gpu, () => runGpu(gpu, x, { mode: 'chunked', rowsPerGroup: N / 4 }));
      expectMatches(got, want, CHUNKED_REL_TOL, `chunked rowsPerGroup=${N / 4}`);
      for (const chunk of [5, 8, 24, 32]) {
        if (wkv7ChunkedSharedBytes(N, chunk) > gpu.limits.maxComputeWorkgroupStorageSize) continue;
        const c = await checked(gpu, () => runGpu(gpu, x, { mode: 'chunked', chunk }));
        expectMatches(c, want, CHUNKED_REL_TOL, `chunked L=${chunk}`);
      }
    });
  }

  it('rejects bad chunk lengths with ShapeError', async () => {
    const gpu = await testGpu();
    const b = createStorage(gpu, 'b', 4 * 64 * 64 * 4);
    const s = createStorage(gpu, 's', 4 * 64 * 64 * 4);
    const y = createStorage(gpu, 'y', 4 * 64 * 64 * 4);
    const base = { r: b, w: b, k: b, v: b, kk: b, alpha: b, state: s, y, T: 4, H: 2, N: 64, mode: 'chunked' as const };
    expect(wkv7Op(gpu, base).entry).toBe('wkv7_chunked');
    expect(wkv7Op(gpu, { ...base, mode: 'seq' }).entry).toBe('wkv7');
    expect(() => wkv7Op(gpu, { ...base, chunk: 0 })).toThrow(ShapeError);
    expect(() => wkv7Op(gpu, { ...base, chunk: 33 })).toThrow(ShapeError); // > MAX_L
    expect(() => wkv7Op(gpu, { ...base, chunk: 2.5 })).toThrow(ShapeError);
    for (const x of [b, s, y]) x.destroy();
  });
});

