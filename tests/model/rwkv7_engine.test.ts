/**
 * RWKV-7 through the same API and CLI as RWKV-6, on a synthetic VisualRWKV-7 checkpoint with the real 65536-token
 * vocabulary generated at test time (tests/helpers/synthetic7.ts: L=2, C=64, 2 heads of 32, F=256, LoRA 16/16/8/16,
 * projector D=48): the version, layout and defaults come from the checkpoint alone; the GPU engine equals the
 * float64 reference for text-only chat and for the v7 image-first layout with backbone features.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testGpu, checked } from '../helpers/gpu';
import { expectClose, maxAbsDiff } from '../helpers/compare';
import { runCli } from '../helpers/cli';
import { TEST_RWKV7, syntheticRwkv7Tensors, writeSyntheticRwkv7, type SyntheticRwkv7Files } from '../helpers/synthetic7';
import {
  referenceModelFrom, refTensorsFrom, refGenerate, refProjectV7, refSpliceRows, V7_IMAGE_ID, type RefModel, type RefGenerateResult,
} from '../reference/model';
import { minTop2Gap } from '../reference/common';
import { seededUniform } from '../../bench/synthetic';
import type { Gpu } from '../../src/engine/gpu';
import { openCheckpoint } from '../../src/weights/checkpoint';
import { nodeFileSource } from '../../src/weights/node-source';
import { readModelConfig } from '../../src/model/config';
import { RwkvModel } from '../../src/model/model';
import { generateGreedy } from '../../src/model/generate';
import { VisualRwkvEngine } from '../../src/worker/api';
import { GREEDY } from '../../src/text/sampler';
import { loadDefaultTokenizer, type WorldTokenizer } from '../../src/text/tokenizer';
import { parseSafetensors } from '../../src/weights/safetensors';
import { toF32, toI32 } from '../../src/weights/dtype';
import type { TokenChunk } from '../../src/types';

/** Issue acceptance: f32 GPU vs float64 reference (RWKV-7 fixtures measure ≤ 1e-4; GN cancellation can amplify). */
const LOGIT_TOL = 1e-3;
/** Greedy ids are compared only where the reference's top-2 gap is this much above the tolerance; checked below. */
const MIN_MARGIN = 10 * LOGIT_TOL;
/** Same weights through the same kernels from two files: the logits must be bit-identical. */
const SAME_WEIGHTS_TOL = 0;
/** Restoring the cached image-prefix state instead of recomputing it: only summation order may differ. */
const REUSE_TOL = 1e-4;
const STEPS = 6;
/** Image rows per image for these tests (the release uses 1024; 16 keeps the float64 reference quick). */
const TOKENS_PER_IMAGE = 16;
/** Text question, then two image questions: reference top-2 gaps ≥ 0.18 at every step (random weights have near-ties). */
const QUESTION = 'What is the capital of France?';
const QUESTION_2 = 'How many wheels does the bus have?';
const QUESTION_3 = 'Describe the picture.';

let dir: string;
let files: SyntheticRwkv7Files;
let ref: RefModel;
let tok: WorldTokenizer;
let gpu: Gpu;
let engine: VisualRwkvEngine;
/** Backbone features (1024 × D, a 32×32 grid) in [−1, 1]. */
let features: Float32Array;

async function collect(it: AsyncIterable<TokenChunk>): Promise<TokenChunk[]> {
  const out: TokenChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

/** Smallest top-2 gap over the reference's greedy steps. */
const minMargin = (r: RefGenerateResult): number => minTop2Gap(r.logits);

/** The engine's streamed chunks agree with the reference generation: ids, logits ≤ LOGIT_TOL, margins safe. */
function expectMatchesReference(chunks: TokenChunk[], r: RefGenerateResult, what: string): number {
  expect(minMargin(r), `${what}: reference top-2 margin too small for a stable greedy comparison`).toBeGreaterThan(MIN_MARGIN);
  expect(chunks.map((c) => c.id), what).toEqual(r.ids);
  let worst = 0;
  chunks.forEach((c, i) => (worst = Math.max(worst, expectClose(c.logits!, r.logits[i]!, LOGIT_TOL, `${what} step ${i}`).maxAbs)));
  return worst;
}

const textPromptIds = (q: string): number[] => [...tok.encode(`User: ${q}\n\n`), ...tok.encode('Assistant:')];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'visualrwkv-rwkv7-'));
  files = writeSyntheticRwkv7(dir, TEST_RWKV7);
  ref = referenceModelFrom(refTensorsFrom(syntheticRwkv7Tensors(TEST_RWKV7, 'visualrwkv')), 'synthetic-rwkv7');
  tok = await loadDefaultTokenizer();
  gpu = await testGpu();
  engine = await VisualRwkvEngine.create({ model: files.pth, tokensPerImage: TOKENS_PER_IMAGE }, gpu);
  const u = seededUniform(11);
  features = Float32Array.from({ length: 1024 * files.shapes.D }, () => 2 * u() - 1);
});

afterAll(() => {
  engine?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('RWKV-7 checkpoints (synthetic, real vocabulary)', () => {
  it('readModelConfig picks RWKV-7 and the gated v7 projector from .pth and .safetensors; the released bare file is a bare LM', async () => {
    const expected = {
      arch: 'rwkv7', L: 2, C: 64, H: 2, N: 32, F: 256, V: 65536, loraMix: 0, loraDecay: 0, loraW: 16, loraA: 16, loraV: 8, loraG: 16,
      vision: 'none', weightDtype: 'BF16',
    };
    for (const f of [files.pth, files.safetensors, files.barePth]) {
      const src = await nodeFileSource(f);
      try {
        const cfg = readModelConfig(await openCheckpoint(src));
        expect(cfg).toMatchObject(expected);
        const bare = f === files.barePth;
        expect(cfg.prefix).toBe(bare ? '' : 'rwkv.');
        expect(cfg.projector).toEqual(bare ? { kind: 'none' } : { kind: 'gated_v7', inDim: 48 });
      } finally {
        await src.close?.();
      }
    }
    expect(engine.info).toMatchObject({ arch: 'rwkv7', L: 2, C: 64, V: 65536, hasEncoder: false });
  });

  it(`GPU model = float64 reference on a text prompt (${STEPS} greedy ids, logits ≤ ${LOGIT_TOL}); the bare released-order .pth gives identical logits`, async () => {
    const ids = textPromptIds(QUESTION);
    const want = refGenerate(ref, ids, { steps: STEPS });
    const results = [];
    for (const f of [files.pth, files.barePth]) {
      const src = await nodeFileSource(f);
      try {
        const progress: { loaded: number; total: number }[] = [];
        const model = await RwkvModel.load(gpu, await openCheckpoint(src), { onProgress: (p) => progress.push(p) });
        try {
          // Progress ends complete even though the released file carries tensors the model ignores (v0/v1/v2).
          const last = progress[progress.length - 1]!;
          expect(last.loaded, f).toBe(last.total);
          expect(progress.every((p) => p.loaded <= p.total), f).toBe(true);
          results.push(await checked(gpu, () => generateGreedy(model, ids, { maxTokens: STEPS })));
        } finally {
          model.destroy();
        }
      } finally {
        await src.close?.();
      }
    }
    const [prefixed, bare] = results as [Awaited<ReturnType<typeof generateGreedy>>, Awaited<ReturnType<typeof generateGreedy>>];
    expect(minMargin(want)).toBeGreaterThan(MIN_MARGIN);
    expect(prefixed.ids).toEqual(want.ids);
    let worst = 0;
    prefixed.logits.forEach((l, i) => (worst = Math.max(worst, expectClose(l, want.logits[i]!, LOGIT_TOL, `step ${i}`).maxAbs)));
    expect(bare.ids).toEqual(prefixed.ids);
    bare.logits.forEach((l, i) => expectClose(l, prefixed.logits[i]!, SAME_WEIGHTS_TOL, `bare vs prefixed step ${i}`));
    console.log(`[rwkv7] text prompt (${ids.length} ids): GPU vs float64 max |Δlogit| = ${worst.toExponential(2)}, min top-2 margin ${minMargin(want).toFixed(3)}, ids ${want.ids.join(',')}`);
  });

  it('CLI: `run` on the bare released-order .pth and `chat --greedy` on the VisualRWKV-7 .pth match the reference', () => {
    const ids = textPromptIds(QUESTION);
    const want = refGenerate(ref, ids, { steps: 4 });
    const out = join(dir, 'run.safetensors');
    const r = runCli(['run', '--model', files.barePth, '--ids', ids.join(','), '--max-tokens', '4', '--out', out, '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    const t = parseSafetensors(new Uint8Array(readFileSync(out)));
    expect(Array.from(toI32(t.get('gen_ids')!))).toEqual(want.ids);
    expectClose(toF32(t.get('prefill_logits_last')!), want.logits[0]!, LOGIT_TOL, 'CLI run prefill logits');

    const chatOut = join(dir, 'chat.safetensors');
    const c = runCli(['chat', '--model', files.pth, '--question', QUESTION, '--greedy', '--max-tokens', '4', '--out', chatOut, '--quiet']);
    expect(c.status, c.stderr).toBe(0);
    const ct = parseSafetensors(new Uint8Array(readFileSync(chatOut)));
    const chatIds = Array.from(toI32(ct.get('gen_ids')!));
    expect(chatIds).toEqual(want.ids);
    expect(c.stdout.replace(/\n$/, '')).toBe(tok.decode(chatIds));
  });

  it('engine.chat({ text }): text-only turn `User: {q}\\n\\n` + `Assistant:` streams the reference reply', async () => {
    const settings = { sampler: { ...GREEDY, stopIds: [] }, maxTokens: STEPS, recordLogits: true };
    const chunks = await collect(engine.chat({ text: QUESTION, newChat: true, ...settings }));
    const ids = textPromptIds(QUESTION);
    const want = refGenerate(ref, ids, { steps: STEPS });
    const worst = expectMatchesReference(chunks, want, 'text-only chat');
    const last = chunks.at(-1)!;
    expect(last.done).toBe('length');
    expect(last.stats.prefillRows).toBe(ids.length);
    expect(last.stats.encoderRan).toBe(false);
    expect(chunks.map((c) => c.text).join('')).toBe(tok.decode(want.ids));
    console.log(`[rwkv7] engine text-only: max |Δlogit| = ${worst.toExponential(2)}, reply ${JSON.stringify(tok.decode(want.ids))}`);
  });

  it(`engine.chat({ text, imageFeatures }): v7 image-first layout with ${TOKENS_PER_IMAGE} projected rows = reference; a second question reuses the image prefix`, async () => {
    const settings = { sampler: { ...GREEDY, stopIds: [] }, maxTokens: STEPS, recordLogits: true };
    const imageFeatures = { data: features, rows: 1024, dim: files.shapes.D };
    const proj = refProjectV7(features, 1024, TOKENS_PER_IMAGE, {
      gate: ref.w('proj.gate.weight'), oProj: ref.w('proj.o_proj.weight'), lnV: ref.norm('proj.ln_v'),
    }, ref.norm('blocks.0.ln0'));
    const head = tok.encode('User: ');
    const promptIds = (q: string) => [...head, ...Array<number>(TOKENS_PER_IMAGE).fill(V7_IMAGE_ID), ...tok.encode(`\n${q}\n\n`), ...tok.encode('Assistant:')];
    expect(head).toEqual([24281, 59, 33]); // spec §7.4: the trailing space is its own token before the image

    // v6 options (the page always sends them) do not apply: the layout comes from the checkpoint's version.
    const a = await collect(engine.chat({ text: QUESTION_2, imageFeatures, position: 'middle', ...settings }));
    const idsA = promptIds(QUESTION_2);
    const wantA = refGenerate(ref, refSpliceRows(idsA, proj.projected, 'v7'), { steps: STEPS });
    const worstA = expectMatchesReference(a, wantA, 'image turn');
    expect(a.at(-1)!.stats.prefillRows).toBe(idsA.length); // whole prompt: "User: " + image + question + "Assistant:"

    const b = await collect(engine.chat({ text: QUESTION_3, imageFeatures, ...settings }));
    const idsB = promptIds(QUESTION_3);
    const wantB = refGenerate(ref, refSpliceRows(idsB, proj.projected, 'v7'), { steps: STEPS });
    expect(minMargin(wantB)).toBeGreaterThan(MIN_MARGIN);
    expect(b.map((c) => c.id)).toEqual(wantB.ids);
    const prefixLen = head.length + TOKENS_PER_IMAGE;
    expect(b.at(-1)!.stats.prefillRows).toBe(idsB.length - prefixLen); // only the question's tokens
    let worstB = 0;
    b.forEach((c, i) => {
      worstB = Math.max(worstB, expectClose(c.logits!, wantB.logits[i]!, LOGIT_TOL, `second question step ${i}`).maxAbs);
    });
    // The reused prefix state equals recomputing it on a fresh engine.
    const fresh = await VisualRwkvEngine.create({ model: files.safetensors, tokensPerImage: TOKENS_PER_IMAGE }, gpu);
    try {
      const c = await collect(fresh.chat({ text: QUESTION_3, imageFeatures, ...settings }));
      expect(c.at(-1)!.stats.prefillRows).toBe(idsB.length);
      expect(c.map((x) => x.id)).toEqual(b.map((x) => x.id));
      const reuse = Math.max(...b.map((x, i) => maxAbsDiff(x.logits!, c[i]!.logits!).maxAbs));
      expect(reuse).toBeLessThanOrEqual(REUSE_TOL);
      console.log(
        `[rwkv7] image-first: max |Δlogit| vs float64 ${worstA.toExponential(2)} / ${worstB.toExponential(2)} (cached prefix), ` +
          `cached vs recomputed prefix ${reuse.toExponential(2)}, prefill rows ${a.at(-1)!.stats.prefillRows} then ${b.at(-1)!.stats.prefillRows}`,
      );
    } finally {
      fresh.dispose();
    }
  });
});
