/**
 * wkv6: the sequential and the chunked kernel vs the float64 recurrence (tests/reference/wkv6.ts), vs each other,
 * extreme decays, chaining, and shape checks.
 */
import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import type { Gpu } from '../../src/engine/gpu';
import { submit } from '../../src/engine/op';
import { wkv6Op, wkv6ChunkedSharedBytes } from '../../src/kernels/wkv6';
import { ShapeError } from '../../src/errors';
import { wkv6Ref } from '../reference/wkv6';

/**
 * Tolerances: max |Δ| relative to max |reference| of the compared tensor (state entries reach ~100 here).
 * Per token both kernels round like any f32 dot product (~1e-7 measured). On top of that the sequential kernel
 * multiplies the state by w = exp(−exp(δ)) rounded to f32 once per token: near 1 (δ = −8, w ≈ 0.99966) that
 * relative error of up to 2^−25 is the same every step and compounds linearly over T (≈9e-6 measured at T = 300 with
 * all decays −8, as in the official CUDA kernel). The chunked kernel rounds e^{Σℓ} once per chunk instead.
 */
/** Rounding of w per step, systematic when the decay is constant over time. */
const W_ROUNDING = 2 ** -25;
/** Sequential kernel vs float64: dot-product rounding plus 2× the compounded rounding of w. */
const seqRefTol = (T: number) => 1e-6 + 2 * T * W_ROUNDING;
/** Chunked kernel vs float64: worst measured 1.2e-6 (all decays −8, T = 300); 3× headroom. */
const CHUNKED_REF_REL_TOL = 4e-6;
/** Chunked vs sequential: the sum of both budgets. */
const chunkedSeqTol = (T: number) => seqRefTol(T) + CHUNKED_REF_REL_TOL;
/** One call vs chained calls of the same kernel: only chunk boundaries move (measured ≤ 1e-7; seq is bit-identical). */
const CHAIN_REL_TOL = 1e-6;

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

interface Inputs {
  r: Float32Array;
  k: Float32Array;
  v: Float32Array;
  decay: Float32Array;
  u: Float32Array;
  state: Float32Array;
  T: number;
  H: number;
  N: number;
}

type DecayKind = 'uniform' | 'all-8' | 'all+8' | 'per-channel' | 'pm8' | 'huge';

/** Random inputs; state non-zero with magnitude ~5 (a state that has seen many tokens). */
function makeInputs(T: number, H: number, N: number, kind: DecayKind, seed: number): Inputs {
  const C = H * N;
  const r = rng(seed);
  const decay = new Float32Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      const i = t * C + c;
      if (kind === 'uniform') decay[i] = -8 + 16 * r();
      else if (kind === 'all-8') decay[i] = -8;
      else if (kind === 'all+8') decay[i] = 8;
      else if (kind === 'per-channel') decay[i] = [-8, 8, -8, 0, -3, 8, -8, 2][c % 8]!; // constant over t
      else if (kind === 'pm8') decay[i] = r() < 0.5 ? -8 : 8; // extremes interleaved in time: huge ℓ then tiny ℓ
      else decay[i] = r() < 0.3 ? 60 + 40 * r() : -8 + 16 * r(); // beyond the clamp (exp(δ) overflows f32 at 88.7)
    }
  }
  return {
    r: uniform(r, T * C, -1, 1),
    k: uniform(r, T * C, -1, 1),
    v: uniform(r, T * C, -1, 1),
    decay,
    u: uniform(r, C, -1, 1),
    state: uniform(r, C * N, -5, 5),
    T,
    H,
    N,
  };
}

interface Result {
  y: Float32Array;
  state: Float32Array;
}

/** Run one or more chained calls (token splits `splits`, summing to T) of one kernel mode. */
async function runGpu(gpu: Gpu, inp: Inputs, mode: 'seq' | 'chunked', splits: number[] = [inp.T], chunk?: number): Promise<Result> {
  const { H, N } = inp;
  const C = H * N;
  return checked(gpu, async () => {
    const state = uploadStorage(gpu, 'wkv.state', inp.state);
    const u = uploadStorage(gpu, 'wkv.u', inp.u);
    const ys: GPUBuffer[] = [];
    let t0 = 0;
    for (const T of splits) {
      const part = (x: Float32Array, name: string) => uploadStorage(gpu, `wkv.${name}`, x.subarray(t0 * C, (t0 + T) * C));
      const y = createStorage(gpu, 'wkv.y', T * C * 4);
      ys.push(y);
      const op = wkv6Op(gpu, {
        r: part(inp.r, 'r'), k: part(inp.k, 'k'), v: part(inp.v, 'v'), decay: part(inp.decay, 'decay'), u, state, y,
        T, H, N, mode, chunk, label: `wkv6 ${mode} T=${T}`,
      });
      submit(gpu, [op]);
      t0 += T;
    }
    const y = new Float32Array(inp.T * C);
    t0 = 0;
    for (let i = 0; i < splits.length; i++) {
      y.set(await readF32(gpu, ys[i]!, 0, splits[i]! * C), t0 * C);
      t0 += splits[i]!;
    }
    return { y, state: await readF32(gpu, state, 0, C * N) };
  });
}

/** Assert max |got − want| ≤ rel · max |want|; report index and values on failure; return the relative error. */
function expectRel(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string): number {
  expect(got.length).toBe(want.length);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= worst)) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  const e = scale > 0 ? worst / scale : worst;
  expect(e <= rel, `${what}: max |Δ| = ${worst} (${e.toExponential(2)} of max |want| ${scale}) at ${at}: got ${got[at]}, want ${want[at]}`).toBe(true);
  return e;
}

describe('wkv6 seq vs float64 reference', () => {
  for (const [H, N] of [[2, 64], [1, 32]] as const) {
    for (const T of [1, 2, 17, 300]) {
      it(`H=${H} N=${N} T=${T}, decay logits U(−8, 8), non-zero state`, async () => {
        const gpu = await testGpu();
        const inp = makeInputs(T, H, N, 'uniform', 1000 * T + N);
        const got = await runGpu(gpu, inp, 'seq');
        const ref = wkv6Ref(inp);
        expectRel(got.y, ref.y, seqRefTol(T), 'y');
        expectRel(got.state, ref.state, seqRefTol(T), 'state');
      });
    }
  }
});

describe('wkv6 chunked vs float64 reference and vs seq', () => {
  const cases: { T: number; H: number; N: number; kind: DecayKind; chunk?: number }[] = [
    ...[1, 15, 16, 17, 64, 200, 300].map((T) => ({ T, H: 2, N: 64, kind: 'uniform' as const })),
    { T: 300, H: 2, N: 64, kind: 'all-8' },
    { T: 300, H: 2, N: 64, kind: 'all+8' },
    { T: 300, H: 2, N: 64, kind: 'per-channel' },
    { T: 200, H: 2, N: 64, kind: 'pm8' },
    { T: 100, H: 2, N: 64, kind: 'huge' },
    { T: 77, H: 1, N: 32, kind: 'uniform' },
    { T: 300, H: 1, N: 32, kind: 'pm8' },
    { T: 100, H: 2, N: 64, kind: 'pm8', chunk: 8 },
    { T: 100, H: 1, N: 32, kind: 'pm8', chunk: 32 },
  ];
  for (const cs of cases) {
    const name = `H=${cs.H} N=${cs.N} T=${cs.T}, decay ${cs.kind}${cs.chunk ? `, chunk ${cs.chunk}` : ''}`;
    it(name, async () => {
      const gpu = await testGpu();
      const inp = makeInputs(cs.T, cs.H, cs.N, cs.kind, 7 * cs.T + cs.N + cs.kind.length);
      const chunked = await runGpu(gpu, inp, 'chunked', [cs.T], cs.chunk);
      const seq = await runGpu(gpu, inp, 'seq');
      const ref = wkv6Ref(inp);
      expectRel(chunked.y, ref.y, CHUNKED_REF_REL_TOL, 'chunked y vs reference');
      expectRel(chunked.state, ref.state, CHUNKED_REF_REL_TOL, 'chunked state vs reference');
      expectRel(seq.y, ref.y, seqRefTol(cs.T), 'seq y vs reference');
      expectRel(seq.state, ref.state, seqRefTol(cs.T), 'seq state vs reference');
      expectRel(chunked.y, seq.y, chunkedSeqTol(cs.T), 'chunked y vs seq');
      expectRel(chunked.state, seq.state, chunkedSeqTol(cs.T), 'chunked state vs seq');
    });
  }
});

describe('wkv6 chaining: two calls of T/2 equal one call of T', () => {
  for (const [mode, T, splits] of [
    ['chunked', 200, [100, 100]],
    ['chunked', 37, [16, 21]],
    ['seq', 40, [20, 20]],
    ['seq', 3, [1, 1, 1]],
  ] as const) {
    it(`${mode} T=${T} as ${splits.join(' + ')}`, async () => {
      const gpu = await testGpu();
      const inp = makeInputs(T, 2, 64, 'uniform', 99 + T);
      const one = await runGpu(gpu, inp, mode);
      const two = await runGpu(gpu, inp, mode, [...splits]);
      expectRel(two.y, one.y, CHAIN_REL_TOL, 'y');
      expectRel(two.state, one.state, CHAIN_REL_TOL, 'state');
    });
  }
});

describe('wkv6 shape checks', () => {
  it('rejects bad shapes, chunk lengths and aliasing with ShapeError', async () => {
    const gpu = await testGpu();
    const T = 4, H = 2, N = 64, C = H * N;
    const b = (n: number) => createStorage(gpu, 'b', n * 4);
    const args = { r: b(T * C), k: b(T * C), v: b(T * C), decay: b(T * C), u: b(C), state: b(C * N), y: b(T * C), T, H, N, mode: 'chunked' as const };
    expect(() => wkv6Op(gpu, args)).not.toThrow();
    expect(() => wkv6Op(gpu, { ...args, T: 5 })).toThrow(ShapeError);
    expect(() => wkv6Op(gpu, { ...args, state: b(C * N - 8) })).toThrow(ShapeError);
    expect(() => wkv6Op(gpu, { ...args, N: 128, H: 1 })).toThrow(ShapeError);
    expect(() => wkv6Op(gpu, { ...args, chunk: 24 })).toThrow(ShapeError);
    expect(() => wkv6Op(gpu, { ...args, y: args.state })).toThrow(ShapeError);
    expect(() => wkv6Op(gpu, { ...args, mode: 'seq', T: 0 })).toThrow(ShapeError);
    expect(wkv6ChunkedSharedBytes(64, 16)).toBeLessThanOrEqual(16384); // fits WebGPU's default limit
  });
});
