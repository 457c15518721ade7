/**
 * Models of shapes no fixture has — other widths, head counts and sizes (N = 16, 32, 64), LoRA ranks, vocabularies
 * not a multiple of anything, channel-mix widths not a multiple of 64 — generated at test time and run through the
 * GPU engine (RwkvModel: prefill with image rows, then greedy decode) against the float64 reference forward of
 * tests/reference. RWKV-6 with the bidirectional scan on; RWKV-7 in the VisualRWKV and the released key layouts.
 * This is how "unseen models will be checked the same way" is checked here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checked, testGpu } from '../helpers/gpu';
import { expectClose } from '../helpers/compare';
import { syntheticRwkv6Checkpoint, seededUniform, type SyntheticRwkv6Options } from '../../bench/synthetic';
import { syntheticRwkv7Tensors, tensorsToSafetensors, type SyntheticRwkv7Options } from '../helpers/synthetic7';
import { referenceModelFrom, refTensorsFrom, refGenerate, type RefModel, type RefRow } from '../reference/model';
import type { Gpu } from '../../src/engine/gpu';
import type { Checkpoint } from '../../src/weights/checkpoint';
import { openCheckpoint } from '../../src/weights/checkpoint';
import { bytesSource } from '../../src/weights/source';
import type { HostTensor } from '../../src/weights/dtype';
import { RwkvModel, type InputRow } from '../../src/model/model';
import { bidirectionalSpan, generateGreedy } from '../../src/model/generate';
import { readModelConfig } from '../../src/model/config';

/** Issue acceptance for logits (f32 GPU vs float64 reference). */
const LOGIT_TOL = 1e-3;
/** Greedy ids are compared where the reference's top-2 gap exceeds this (random weights can have near-ties). */
const MIN_MARGIN = 10 * LOGIT_TOL;
const STEPS = 4;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => {
  gpu?.device.destroy();
});

async function tensorsOf(ckpt: Checkpoint): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [k, info] of ckpt.tensors) out.set(k, await info.read());
  return out;
}

/** Prompt: text ids, `image` rows of width C in [−1.5, 1.5], more text ids (the sandwich's shape). */
function prompt(V: number, C: number, image: number, seed: number): { rows: InputRow[]; start: number } {
  const u = seededUniform(seed);
  const id = () => Math.floor(u() * V);
  const before = Array.from({ length: 5 }, id);
  const img = Array.from({ length: image }, () => Float32Array.from({ length: C }, () => 3 * u() - 1.5));
  const after = Array.from({ length: 4 }, id);
  return { rows: [...before, ...img, ...after], start: before.length };
}

const toRef = (rows: InputRow[]): RefRow[] => rows.map((r) => (typeof r === 'number' ? r : Float64Array.from(r)));

/** Engine vs reference for one model: prefill logits and STEPS greedy steps; returns the worst |Δ logit|. */
async function compare(ckpt: Checkpoint, ref: RefModel, C: number, V: number, bidi: boolean, seed: number): Promise<number> {
  const { rows, start } = prompt(V, C, 20, seed);
  const span = bidi ? bidirectionalSpan({ start, rows: 20 }) : undefined;
  const expected = refGenerate(ref, toRef(rows), { steps: STEPS, bidirectional: span });
  const model = await RwkvModel.load(gpu, ckpt, { maxRows: 64 });
  try {
    const got = await checked(gpu, () => generateGreedy(model, rows, { maxTokens: STEPS, bidirectional: span }));
    let worst = 0;
    let idsCompared = 0;
    for (let i = 0; i < expected.ids.length; i++) {
      worst = Math.max(worst, expectClose(got.logits[i]!, expected.logits[i]!, LOGIT_TOL, `step ${i}`).maxAbs);
      const sorted = [...expected.logits[i]!].sort((a, b) => b - a);
      if (sorted[0]! - sorted[1]! < MIN_MARGIN) break; // a near-tie: later ids may legitimately differ
      expect(got.ids[i], `greedy id at step ${i}`).toBe(expected.ids[i]);
      idsCompared++;
    }
    // The seeds are fixed: every case here has clear margins over all steps (a near-tie would hide an id mismatch).
    expect(idsCompared, 'greedy ids compared').toBe(STEPS);
    return worst;
  } finally {
    model.destroy();
  }
}

describe('RWKV-6 of unseen shapes vs the float64 reference (bidirectional scan on)', () => {
  const cases: [string, SyntheticRwkv6Options][] = [
    ['C=96, 3 heads of 32, F=336, LoRA 16/24, V=1000', { L: 2, C: 96, H: 3, F: 336, V: 1000, R_m: 16, R_d: 24, seed: 3 }],
    ['C=48, 3 heads of 16, F=176, LoRA 8/8, V=777', { L: 3, C: 48, H: 3, F: 176, V: 777, R_m: 8, R_d: 8, seed: 4 }],
    ['C=256, 4 heads of 64, F=896, LoRA 32/64, V=4099', { L: 2, C: 256, H: 4, V: 4099, seed: 5 }],
  ];
  it.each(cases)('%s', async (_name, o) => {
    const ckpt = await syntheticRwkv6Checkpoint({ ...o, prefix: 'rwkv.' });
    const cfg = readModelConfig(ckpt);
    expect([cfg.C, cfg.H, cfg.N, cfg.V]).toEqual([o.C, o.H ?? o.C / 64, o.C / (o.H ?? o.C / 64), o.V]);
    const ref = referenceModelFrom(refTensorsFrom(await tensorsOf(ckpt)), 'synthetic-rwkv6');
    const worst = await compare(ckpt, ref, o.C, o.V, true, o.seed! + 100);
    expect(worst).toBeLessThanOrEqual(LOGIT_TOL);
    console.log(`rwkv6 ${_name}: max |Δ logit| ${worst.toExponential(2)}`);
  });
});

describe('RWKV-7 of unseen shapes vs the float64 reference', () => {
  const cases: [string, SyntheticRwkv7Options, 'visualrwkv' | 'released'][] = [
    ['C=96, 3 heads of 32, F=384, released key order', { L: 3, C: 96, H: 3, V: 1000, seed: 8 }, 'released'],
    ['C=48, 3 heads of 16, LoRA 8/8/4/8, VisualRWKV layout', { L: 2, C: 48, H: 3, V: 513, R_w: 8, R_a: 8, R_v: 4, R_g: 8, seed: 9 }, 'visualrwkv'],
    ['C=128, 2 heads of 64, F=448, released key order', { L: 2, C: 128, H: 2, F: 448, V: 2048, seed: 10 }, 'released'],
  ];
  it.each(cases)('%s', async (_name, o, layout) => {
    const tensors = syntheticRwkv7Tensors(o, layout);
    const ckpt = await openCheckpoint(bytesSource(tensorsToSafetensors(tensors), `synthetic-rwkv7-${layout}.safetensors`));
    const cfg = readModelConfig(ckpt);
    expect([cfg.arch, cfg.C, cfg.H, cfg.V]).toEqual(['rwkv7', o.C, o.H, o.V]);
    const ref = referenceModelFrom(refTensorsFrom(tensors), 'synthetic-rwkv7');
    const worst = await compare(ckpt, ref, o.C, o.V, false, o.seed! + 100);
    expect(worst).toBeLessThanOrEqual(LOGIT_TOL);
    console.log(`rwkv7 ${_name}: max |Δ logit| ${worst.toExponential(2)}`);
  });
});
