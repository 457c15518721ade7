/**
 * rwkv7_prep (spec §4.3 steps 4, 6–8) vs the float64 reference `prep7` (built on `normalizePerHead` of
 * tests/reference/rwkv7.ts): α, κ̂, k', and v / v_first on layer 0 and on layers ≥ 1, for T = 1, 2, 17, 100 at
 * (H, N) = (2, 64) and (1, 32); a zero head (κ̂ = 0, no NaN); shape and aliasing errors.
 */
import { describe, expect, it } from 'vitest';
import { checked, testGpu } from '../helpers/gpu';
import { expectClose } from '../helpers/compare';
import { readF32, uploadStorage, createStorage } from '../../src/engine/buffers';
import type { Gpu } from '../../src/engine/gpu';
import { submit } from '../../src/engine/op';
import { ShapeError } from '../../src/errors';
import { rwkv7PrepOp } from '../../src/kernels/rwkv7_prep';
import { prep7, rng, row, stack, uniform, type Prep7 } from '../reference/rwkv7_kernels';

/** Elementwise f32 ops on O(1) values (k' ≤ ~6): a few ulp, measured ≤ 2.8e-7; room for WGSL exp (3 + 2|x| ulp). */
const PREP_TOL = 4e-6;

interface Inputs {
  T: number;
  H: number;
  N: number;
  k: Float32Array;
  aLogit: Float32Array;
  v: Float32Array;
  vFirst: Float32Array;
  vGate: Float32Array;
  kScale: Float32Array;
  ka: Float32Array;
}

function makeInputs(T: number, H: number, N: number, seed: number): Inputs {
  const r = rng(seed);
  const C = H * N;
  const k = uniform(r, T * C, -2, 2);
  if (T > 1) k.fill(0, C, C + N); // row 1, head 0 all zero: ‖κ‖ = 0 takes the 1e-12 floor, κ̂ = 0
  return {
    T, H, N, k,
    aLogit: uniform(r, T * C, -6, 6),
    v: uniform(r, T * C),
    vFirst: uniform(r, T * C),
    vGate: uniform(r, T * C, -6, 6),
    kScale: uniform(r, C, 0.5, 1.2),
    ka: uniform(r, C, 0, 1.5),
  };
}

type Out = Record<keyof Prep7, Float32Array>;

async function runGpu(gpu: Gpu, x: Inputs, layer0: boolean): Promise<Out> {
  const { T, H, N } = x;
  const up = (name: string, a: Float32Array) => uploadStorage(gpu, `prep.${name}`, a);
  const b = {
    k: up('k', x.k), aLogit: up('aLogit', x.aLogit), v: up('v', x.v), vFirst: up('vFirst', x.vFirst),
    vGate: layer0 ? undefined : up('vGate', x.vGate), kk_scale: up('k_k', x.kScale), ka: up('k_a', x.ka),
    kk: createStorage(gpu, 'prep.kk', T * H * N * 4), alpha: createStorage(gpu, 'prep.alpha', T * H * N * 4),
  };
  const ops = rwkv7PrepOp(gpu, { ...b, layer0, T, H, N });
  expect(ops).toHaveLength(2);
  submit(gpu, ops);
  const n = T * H * N;
  const out: Out = {
    k: await readF32(gpu, b.k, 0, n), kk: await readF32(gpu, b.kk, 0, n), alpha: await readF32(gpu, b.alpha, 0, n),
    v: await readF32(gpu, b.v, 0, n), vFirst: await readF32(gpu, b.vFirst, 0, n),
  };
  for (const buf of Object.values(b)) buf?.destroy();
  return out;
}

function reference(x: Inputs, layer0: boolean): Record<keyof Prep7, Float64Array> {
  const C = x.H * x.N;
  const rows: Prep7[] = [];
  for (let t = 0; t < x.T; t++) {
    const g = (a: Float32Array) => row(a, t, C);
    rows.push(prep7(g(x.k), g(x.aLogit), g(x.v), g(x.vFirst), layer0 ? undefined : g(x.vGate), row(x.kScale, 0, C), row(x.ka, 0, C), x.H));
  }
  const col = (key: keyof Prep7) => stack(rows.map((p) => p[key]));
  return { k: col('k'), kk: col('kk'), alpha: col('alpha'), v: col('v'), vFirst: col('vFirst') };
}

describe('rwkv7_prep', () => {
  for (const { H, N } of [{ H: 2, N: 64 }, { H: 1, N: 32 }]) {
    for (const T of [1, 2, 17, 100]) {
      for (const layer0 of [true, false]) {
        it(`matches the float64 reference: T=${T}, H=${H}, N=${N}, ${layer0 ? 'layer 0' : 'layer ≥ 1'}`, async () => {
          const gpu = await testGpu();
          const x = makeInputs(T, H, N, 31 * T + N + (layer0 ? 0 : 7));
          const got = await checked(gpu, () => runGpu(gpu, x, layer0));
          const want = reference(x, layer0);
          let worst = 0;
          for (const key of ['k', 'kk', 'alpha', 'v', 'vFirst'] as const) {
            worst = Math.max(worst, expectClose(got[key], want[key], PREP_TOL, `${key} T=${T}`).maxAbs);
          }
          if (layer0) expect(Array.from(got.vFirst)).toEqual(Array.from(x.v)); // exact copy, v unchanged
          else expect(Array.from(got.vFirst)).toEqual(Array.from(x.vFirst)); // read only
          if (T > 1) {
            const C = H * N;
            expect(Array.from(got.kk.subarray(C, C + N)).every((q) => q === 0)).toBe(true); // zero head → κ̂ = 0
          }
          console.log(`prep T=${T} H=${H} N=${N} layer0=${layer0}: max|Δ| ${worst.toExponential(2)}`);
        });
      }
    }
  }

  it('rejects a vGate on layer 0, a missing vGate on layer ≥ 1, short buffers and aliased outputs', async () => {
    const gpu = await testGpu();
    const mk = (l: string) => createStorage(gpu, l, 4 * 128 * 4);
    const base = {
      k: mk('k'), aLogit: mk('a'), v: mk('v'), vFirst: mk('vf'), kk_scale: mk('kk_scale'), ka: mk('ka'),
      kk: mk('kk'), alpha: mk('alpha'), layer0: true, T: 4, H: 2, N: 64,
    };
    const vGate = mk('vg');
    expect(rwkv7PrepOp(gpu, base)).toHaveLength(2);
    expect(rwkv7PrepOp(gpu, { ...base, layer0: false, vGate })).toHaveLength(2);
    expect(() => rwkv7PrepOp(gpu, { ...base, vGate })).toThrow(ShapeError);
    expect(() => rwkv7PrepOp(gpu, { ...base, layer0: false })).toThrow(ShapeError);
    expect(() => rwkv7PrepOp(gpu, { ...base, T: 5 })).toThrow(ShapeError);
    expect(() => rwkv7PrepOp(gpu, { ...base, kk: base.k })).toThrow(ShapeError);
    expect(() => rwkv7PrepOp(gpu, { ...base, vFirst: base.v })).toThrow(ShapeError);
    expect(() => rwkv7PrepOp(gpu, { ...base, N: 2048, H: 1, T: 1 })).toThrow(ShapeError);
    for (const b of [...Object.values(base), vGate]) if (typeof b === 'object') b.destroy();
  });
});
