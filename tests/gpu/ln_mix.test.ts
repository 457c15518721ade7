/** ln_mix (LayerNorm + token shift) and ln_mix_lora (+ LoRA down with tanh) vs the float64 reference (tests/reference/ln_mix.ts). */
import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import type { Gpu } from '../../src/engine/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { lnMixOp, lnMixLoraOp, LN_MIX_MAX_C } from '../../src/kernels/ln_mix';
import { uploadMatrix } from '../../src/kernels/types';
import { ShapeError } from '../../src/errors';
import { expectWithin, random16, randomF32, rng } from '../reference/matmul';
import { lnMixRef, lnMixLoraRef } from '../reference/ln_mix';

/** LN output error relative to |weight|·(|x̂| + 1) + |bias| (the shifted two-pass of layer_norm; see its test). */
const LN_REL = 1e-6;
/** The mix a + (p − a)·μ rounds three times: relative to |a| + |d|·|μ|, 3·2⁻²⁴ ≈ 1.8e-7, with headroom. */
const MIX_REL = 4e-7;
/** Dot-product rounding of z·W1ᵀ: Z_REL·√C·Σ|z w| (as tests/gpu/matmul). */
const Z_REL = 3e-7;
/** tanh itself in f32 (exp and a division), relative to 1 + |h|. */
const TANH_REL = 2e-6;

interface Data {
  x: Float32Array;
  prev: Float32Array;
  weight: Float32Array;
  bias: Float32Array;
  mu: Float32Array;
}

/** Rows with mean/spread cycling through `rows` (large means with small spreads stress the LN). */
function makeData(seed: number, T: number, C: number, M: number, rows: [number, number][]): Data {
  const r = rng(seed);
  const x = new Float32Array(T * C);
  for (let t = 0; t < T; t++) {
    const [mean, spread] = rows[t % rows.length]!;
    for (let c = 0; c < C; c++) x[t * C + c] = mean + spread * (2 * r() - 1);
  }
  return {
    x,
    prev: randomF32(r, C, -3, 3),
    weight: randomF32(r, C, -2, 2),
    bias: randomF32(r, C, -1, 1),
    mu: randomF32(r, M * C, -0.5, 1.5),
  };
}

const PLAIN: [number, number][] = [[0, 2]];
const MIXED: [number, number][] = [[0, 1], [10, 0.01], [-100, 0.05], [3, 30]];

interface MixCase { name: string; T: number; C: number; M: number; rows: [number, number][] }
const MIX_CASES: MixCase[] = [
  { name: 'T=1 C=128 M=2 (decode, channel mix)', T: 1, C: 128, M: 2, rows: PLAIN },
  { name: 'T=300 C=128 M=1, mixed magnitudes', T: 300, C: 128, M: 1, rows: MIXED },
  { name: 'T=3 C=34 M=6 (odd pair count)', T: 3, C: 34, M: 6, rows: PLAIN },
  { name: 'T=2 C=4096 (max) M=2, large mean', T: 2, C: LN_MIX_MAX_C, M: 2, rows: [[100, 0.01], [-5, 1]] },
];

interface LoraCase { name: string; T: number; C: number; NL: number; dtype: 'bf16' | 'f16'; rows: [number, number][] }
const LORA_CASES: LoraCase[] = [
  { name: 'T=1 C=128 NL=160 bf16 (RWKV-6 decode, R=32)', T: 1, C: 128, NL: 160, dtype: 'bf16', rows: PLAIN },
  { name: 'T=4 C=64 NL=7 f16 (NL not a multiple of 4)', T: 4, C: 64, NL: 7, dtype: 'f16', rows: MIXED },
  { name: 'T=1 C=2048 NL=160 bf16, large mean', T: 1, C: 2048, NL: 160, dtype: 'bf16', rows: [[20, 0.5]] },
  { name: 'T=1 C=4096 (max) NL=64 f16', T: 1, C: 4096, NL: 64, dtype: 'f16', rows: PLAIN },
  { name: 'T=70 C=34 NL=10 bf16', T: 70, C: 34, NL: 10, dtype: 'bf16', rows: MIXED },
  { name: 'T=2 C=256 NL=300 f16 (several workgroups, the last one partial)', T: 2, C: 256, NL: 300, dtype: 'f16', rows: PLAIN },
];

async function runMix(gpu: Gpu, cs: MixCase, seed: number): Promise<number> {
  const { T, C, M } = cs;
  const d = makeData(seed, T, C, M, cs.rows);
  const [a, out] = await checked(gpu, async () => {
    const ab = createStorage(gpu, 'a', T * C * 4);
    const ob = createStorage(gpu, 'out', M * T * C * 4);
    submit(gpu, [lnMixOp(gpu, {
      x: uploadStorage(gpu, 'x', d.x), prev: uploadStorage(gpu, 'prev', d.prev), weight: uploadStorage(gpu, 'w', d.weight),
      bias: uploadStorage(gpu, 'b', d.bias), mu: uploadStorage(gpu, 'mu', d.mu), a: ab, out: ob, M, T, C, label: cs.name,
    })]);
    return [await readF32(gpu, ab, 0, T * C), await readF32(gpu, ob, 0, M * T * C)] as const;
  });
  const ref = lnMixRef(d.x, d.prev, d.weight, d.bias, d.mu, M, T, C);
  const w1 = expectWithin(a, ref.a, ref.aScale.map((s) => LN_REL * s), `${cs.name}: a`);
  const w2 = expectWithin(out, ref.out, ref.outScale.map((s, i) => LN_REL * s + MIX_REL * ref.outMag[i]! + 1e-30), `${cs.name}: out`);
  return Math.max(w1, w2);
}

async function runLora(gpu: Gpu, cs: LoraCase, seed: number, reduce: 'subgroup' | 'workgroup'): Promise<number> {
  const { T, C, NL } = cs;
  const d = makeData(seed, T, C, 1, cs.rows);
  const w = random16(rng(seed + 1), cs.dtype, NL, C, 4 / Math.sqrt(C));
  const [a, h] = await checked(gpu, async () => {
    const ab = createStorage(gpu, 'a', T * C * 4);
    const hb = createStorage(gpu, 'h', T * NL * 4);
    submit(gpu, [lnMixLoraOp(gpu, {
      x: uploadStorage(gpu, 'x', d.x), prev: uploadStorage(gpu, 'prev', d.prev), weight: uploadStorage(gpu, 'w', d.weight),
      bias: uploadStorage(gpu, 'b', d.bias), mu: uploadStorage(gpu, 'mu', d.mu), a: ab, h: hb, T, C,
      w1: uploadMatrix(gpu, 'w1', NL, C, { dtype: cs.dtype, bytes: w.bytes }), reduce, label: `${cs.name} (${reduce})`,
    })]);
    return [await readF32(gpu, ab, 0, T * C), await readF32(gpu, hb, 0, T * NL)] as const;
  });
  const ref = lnMixLoraRef(d.x, d.prev, d.weight, d.bias, d.mu, w.values, NL, T, C);
  const w1 = expectWithin(a, ref.a, ref.aScale.map((s) => LN_REL * s), `${cs.name} (${reduce}): a`);
  const tol = ref.h.map((hv, i) => LN_REL * ref.hScale[i]! + MIX_REL * ref.hMixMag[i]! + Z_REL * Math.sqrt(C) * ref.hMag[i]! + TANH_REL * (1 + Math.abs(hv)));
  const w2 = expectWithin(h, ref.h, tol, `${cs.name} (${reduce}): h`);
  return Math.max(w1, w2);
}

describe('ln_mix', () => {
  for (const [i, cs] of MIX_CASES.entries()) {
    it(`ln_mix ${cs.name}`, async () => {
      const worst = await runMix(await testGpu(), cs, 700 + i);
      console.log(`ln_mix ${cs.name}: worst error/tolerance ${worst.toFixed(3)}`);
    });
  }
  for (const [i, cs] of LORA_CASES.entries()) {
    it(`ln_mix_lora ${cs.name}`, async () => {
      const gpu = await testGpu();
      for (const reduce of gpu.features.subgroups ? (['subgroup', 'workgroup'] as const) : (['workgroup'] as const)) {
        const worst = await runLora(gpu, cs, 800 + i, reduce);
        console.log(`ln_mix_lora ${cs.name} (${reduce}): worst error/tolerance ${worst.toFixed(3)}`);
      }
    });
  }

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const C = 16;
    const buf = (n: number) => createStorage(gpu, 'b', n * 4);
    const x = buf(2 * C), prev = buf(C), w = buf(C), b = buf(C), mu = buf(2 * C), a = buf(2 * C), out = buf(4 * C);
    const w1 = uploadMatrix(gpu, 'w1', 5, C, new Float32Array(5 * C));
    const h = buf(10);
    expect(lnMixOp(gpu, { x, prev, weight: w, bias: b, mu, a, out, M: 2, T: 2, C }).entry).toBe('ln_mix');
    expect(lnMixLoraOp(gpu, { x, prev, weight: w, bias: b, mu, a, w1, h, T: 2, C }).workgroups).toEqual([1, 2]);
    expect(lnMixLoraOp(gpu, { x, prev, weight: w, bias: b, mu, a, w1, h, T: 2, C, reduce: 'workgroup' }).defines?.SUBGROUP).toBeUndefined();
    expect(() => lnMixOp(gpu, { x, prev, weight: w, bias: b, mu, a, out, M: 2, T: 3, C })).toThrow(ShapeError); // x too small
    expect(() => lnMixOp(gpu, { x, prev, weight: w, bias: b, mu, a, out, M: 3, T: 2, C })).toThrow(ShapeError); // mu, out
    expect(() => lnMixOp(gpu, { x, prev, weight: w, bias: b, mu, a: x, out, M: 2, T: 2, C })).toThrow(ShapeError);
    expect(() => lnMixOp(gpu, { x, prev, weight: w, bias: b, mu, a, out: a, M: 1, T: 2, C })).toThrow(ShapeError);
    expect(() => lnMixOp(gpu, { x, prev, weight: w, bias: b, mu, a, out, M: 1, T: 2, C: 15 })).toThrow(ShapeError);
    expect(() => lnMixOp(gpu, { x, prev, weight: w, bias: b, mu, a, out, M: 1, T: 1, C: 16, eps: 0 })).toThrow(ShapeError);
    expect(() => lnMixLoraOp(gpu, { x, prev, weight: w, bias: b, mu, a, w1, h: buf(1), T: 2, C })).toThrow(ShapeError); // h too small
    expect(() => lnMixLoraOp(gpu, { x, prev, weight: w, bias: b, mu, a, w1: uploadMatrix(gpu, 'w1b', 5, 8, new Float32Array(40)), h, T: 2, C })).toThrow(ShapeError);
  });
});
