/**
 * wkv6_fused (decay LoRA up + WKV recurrence + gated GroupNorm) vs the float64 reference composed of the per-step
 * references, chaining, and shape checks.
 */
import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import type { Gpu } from '../../src/engine/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { wkv6FusedOp } from '../../src/kernels/wkv6_fused';
import { GROUP_NORM_EPS } from '../../src/kernels/group_norm';
import { uploadMatrix } from '../../src/kernels/types';
import { ShapeError } from '../../src/errors';
import { expectWithin, random16, randomF32, rng } from '../reference/matmul';
import { wkv6FusedRef } from '../reference/wkv6_fused';

/**
 * WKV output and state error relative to the max |value| of the tensor, as tests/gpu/wkv6 for the sequential kernel:
 * 1e-6 of dot-product rounding plus w's f32 rounding compounding over T (2⁻²⁵ per step, 2×) — plus DECAY_REL for
 * δ itself, an f32 dot product of Rd terms (|δ| ≲ 10 here: a few ulps ≈ 2e-6 absolute, moving w by ≤ e^δ·2e-6
 * relative, which matters only where w is not negligible, e^δ ≲ 5).
 */
const W_ROUNDING = 2 ** -25;
const DECAY_REL = 2e-6;
const yRel = (T: number) => 1e-6 + 2 * T * W_ROUNDING + DECAY_REL;
/** GroupNorm's own rounding relative to its scale (as tests/gpu/group_norm). */
const GN_REL = 1e-6;

interface Case {
  name: string;
  T: number;
  H: number;
  N: number;
  Rd: number;
  dtype: 'bf16' | 'f16';
}

interface Data {
  rkvgd: Float32Array;
  d2: { bytes: Uint8Array; values: Float64Array };
  timeDecay: Float32Array;
  u: Float32Array;
  lnWeight: Float32Array;
  lnBias: Float32Array;
  state: Float32Array;
}

/** Decay logits: time_decay ∈ [−6, 1] plus a LoRA term with standard deviation 1; state ~±5 (many tokens seen). */
function makeData(cs: Case, seed: number): Data {
  const { T, H, N, Rd } = cs;
  const C = H * N;
  const r = rng(seed);
  const rkvgd = new Float32Array(4 * T * C + T * Rd);
  rkvgd.set(randomF32(r, 4 * T * C, -1, 1));
  rkvgd.set(randomF32(r, T * Rd, -1, 1), 4 * T * C); // tanh outputs
  return {
    rkvgd,
    d2: random16(r, cs.dtype, C, Rd, 3 / Math.sqrt(Rd)),
    timeDecay: randomF32(r, C, -6, 1),
    u: randomF32(r, C, -1, 1),
    lnWeight: randomF32(r, C, -2, 2),
    lnBias: randomF32(r, C, -1, 1),
    state: randomF32(r, C * N, -5, 5),
  };
}

/** Run the kernel over `splits` (token counts summing to T), chaining the state. */
async function runGpu(gpu: Gpu, cs: Case, d: Data, splits: number[] = [cs.T]) {
  const { H, N, Rd } = cs;
  const C = H * N;
  return checked(gpu, async () => {
    const state = uploadStorage(gpu, 'state', d.state);
    const d2 = uploadMatrix(gpu, 'd2', C, Rd, { dtype: cs.dtype, bytes: d.d2.bytes });
    const common = {
      d2, timeDecay: uploadStorage(gpu, 'td', d.timeDecay), u: uploadStorage(gpu, 'u', d.u),
      lnWeight: uploadStorage(gpu, 'lnw', d.lnWeight), lnBias: uploadStorage(gpu, 'lnb', d.lnBias), state, H, N,
    };
    const o = new Float32Array(cs.T * C);
    let t0 = 0;
    for (const T of splits) {
      // This call's packed input: its rows of each block.
      const x = new Float32Array(4 * T * C + T * Rd);
      for (let b = 0; b < 4; b++) x.set(d.rkvgd.subarray(b * cs.T * C + t0 * C, b * cs.T * C + (t0 + T) * C), b * T * C);
      x.set(d.rkvgd.subarray(4 * cs.T * C + t0 * Rd, 4 * cs.T * C + (t0 + T) * Rd), 4 * T * C);
      const ob = createStorage(gpu, 'o', T * C * 4);
      submit(gpu, [wkv6FusedOp(gpu, { ...common, rkvgd: uploadStorage(gpu, 'rkvgd', x), o: ob, T, label: `${cs.name} T=${T}` })]);
      o.set(await readF32(gpu, ob, 0, T * C), t0 * C);
      t0 += T;
    }
    return { o, state: await readF32(gpu, state, 0, C * N) };
  });
}

const CASES: Case[] = [
  { name: 'H=2 N=64 Rd=64 T=1 bf16 (rwkv6_tiny decode)', T: 1, H: 2, N: 64, Rd: 64, dtype: 'bf16' },
  { name: 'H=3 N=32 Rd=32 T=4 f16', T: 4, H: 3, N: 32, Rd: 32, dtype: 'f16' },
  { name: 'H=4 N=16 Rd=6 T=2 bf16', T: 2, H: 4, N: 16, Rd: 6, dtype: 'bf16' },
  { name: 'H=1 N=64 Rd=256 (max) T=3 bf16', T: 3, H: 1, N: 64, Rd: 256, dtype: 'bf16' },
  { name: 'H=2 N=64 Rd=128 T=100 bf16 (long)', T: 100, H: 2, N: 64, Rd: 128, dtype: 'bf16' },
];

describe('wkv6_fused vs float64 reference', () => {
  for (const [i, cs] of CASES.entries()) {
    it(cs.name, async () => {
      const gpu = await testGpu();
      const d = makeData(cs, 900 + i);
      const got = await runGpu(gpu, cs, d);
      const ref = wkv6FusedRef({ ...d, d2: d.d2.values, T: cs.T, H: cs.H, N: cs.N, Rd: cs.Rd, eps: GROUP_NORM_EPS });
      const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const ey = yRel(cs.T) * maxAbs(ref.y);
      const es = yRel(cs.T) * maxAbs(ref.state);
      const wo = expectWithin(got.o, ref.o, ref.o.map((_, j) => ref.gnGain[j]! * ey + GN_REL * ref.gnScale[j]! + 1e-30), `${cs.name}: o`);
      const ws = expectWithin(got.state, ref.state, new Float64Array(ref.state.length).fill(es), `${cs.name}: state`);
      console.log(`${cs.name}: worst error/tolerance o ${wo.toFixed(3)}, state ${ws.toFixed(3)}`);
    });
  }

  it('chained calls (2 + 1 + 2 tokens) equal one call of 5 bit for bit', async () => {
    const gpu = await testGpu();
    const cs: Case = { name: 'chain', T: 5, H: 2, N: 32, Rd: 16, dtype: 'bf16' };
    const d = makeData(cs, 77);
    const whole = await runGpu(gpu, cs, d);
    const split = await runGpu(gpu, cs, d, [2, 1, 2]);
    expect(Array.from(split.o)).toEqual(Array.from(whole.o));
    expect(Array.from(split.state)).toEqual(Array.from(whole.state));
  });

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const [H, N, Rd, T] = [2, 16, 8, 1];
    const C = H * N;
    const buf = (n: number) => createStorage(gpu, 'b', n * 4);
    const args = {
      rkvgd: buf(4 * T * C + T * Rd), d2: uploadMatrix(gpu, 'd2', C, Rd, new Float32Array(C * Rd)), timeDecay: buf(C), u: buf(C),
      lnWeight: buf(C), lnBias: buf(C), state: buf(C * N), o: buf(T * C), T, H, N,
    };
    expect(wkv6FusedOp(gpu, args).workgroups).toEqual([H]);
    expect(() => wkv6FusedOp(gpu, { ...args, T: 2 })).toThrow(ShapeError); // rkvgd, o too small
    expect(() => wkv6FusedOp(gpu, { ...args, N: 24, H: 1 })).toThrow(ShapeError); // not a power of two
    expect(() => wkv6FusedOp(gpu, { ...args, d2: uploadMatrix(gpu, 'd2b', C, 6, new Float32Array(C * 6)), N: 32, H: 1 })).toThrow(ShapeError); // state too small for N=32
    expect(() => wkv6FusedOp(gpu, { ...args, d2: uploadMatrix(gpu, 'd2c', C + 2, Rd, new Float32Array((C + 2) * Rd)) })).toThrow(ShapeError);
    expect(() => wkv6FusedOp(gpu, { ...args, d2: uploadMatrix(gpu, 'd2d', C, 258, new Float32Array(C * 258)) })).toThrow(ShapeError);
    expect(() => wkv6FusedOp(gpu, { ...args, o: args.state })).toThrow(ShapeError);
    expect(() => wkv6FusedOp(gpu, { ...args, rkvgd: args.o })).toThrow(ShapeError);
  });
});
