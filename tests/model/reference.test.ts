/**
 * The float64 CPU reference (tests/reference/model.ts) against the golden fixtures (tests/fixtures/cases):
 * text prefill (all logits + final state), RNN decode by teacher forcing, v6.0/v7.00 visual layouts with and
 * without the bidirectional flip, the v7 left-pad quirk, and both projectors.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readJson, tensorF32, tensorI32 } from '../helpers/fixtures';
import { maxAbsDiff } from '../helpers/compare';
import {
  argmaxFirst, createRefState, loadReferenceModel, logSumExp, refForward, refGenerate, refProjectV6, refProjectV7,
  refSpliceRows, type FlipSpan, type RefModel, type RefRow, type RefState,
} from '../reference/model';

/** Goldens are exact float64 results rounded to f32; an f64 reference lands within f32 rounding (~1e-6 rel). */
const LOGIT_TOL = 1e-4;
/** Same reasoning for att_x / wkv / ffn_x (|values| ≲ 10). */
const STATE_TOL = 1e-4;
/** Projector rows are O(1–10); f32 storage rounding is ~1e-6. */
const ROWS_TOL = 1e-5;
/** Greedy ids must agree where the golden top-2 gap exceeds this (10× LOGIT_TOL). */
const GREEDY_MARGIN = 1e-3;

type Json = Record<string, any>;
const MODELS = ['rwkv6_tiny', 'rwkv7_tiny', 'rwkv6_vocab65536'] as const;
const models = new Map<string, RefModel>();
function model(name: string): RefModel {
  if (!models.has(name)) models.set(name, loadReferenceModel(`models/${name}`));
  return models.get(name)!;
}

/** Max errors per case, printed at the end. */
const report: Record<string, Record<string, number>> = {};
function record(caseName: string, what: string, err: number, tol: number): void {
  const r = (report[caseName] ??= {});
  r[what] = Math.max(r[what] ?? 0, err);
  expect(err, `${caseName}: ${what} max |Δ| = ${err} > ${tol}`).toBeLessThanOrEqual(tol);
}
afterAll(() => {
  const lines = Object.entries(report).map(
    ([c, r]) => `${c.padEnd(40)} ${Object.entries(r).map(([k, v]) => `${k}=${v.toExponential(2)}`).join('  ')}`,
  );
  console.log(`max |Δ| per case:\n${lines.join('\n')}`);
});

/** A case's JSON and tensor accessors. */
function loadCase(modelName: string, name: string) {
  const dir = `cases/${modelName}`;
  const json = readJson<Json>(`${dir}/${name}.json`);
  const file = `${dir}/${json.tensors_file}`;
  const has = (t: string): boolean => t in json.tensors;
  return {
    id: `${modelName}/${name}`, json, has,
    f32: (t: string) => tensorF32(file, t),
    i32: (t: string) => Array.from(tensorI32(file, t)),
    shape: (t: string): number[] => json.tensors[t].shape,
  };
}
type Case = ReturnType<typeof loadCase>;

/** Flat [n, C] f32 → n float64 rows. */
function toRows(x: Float32Array, C: number): Float64Array[] {
  return Array.from({ length: x.length / C }, (_, i) => Float64Array.from(x.subarray(i * C, (i + 1) * C)));
}
const flat = (rows: Float64Array[]): Float64Array => {
  const out = new Float64Array(rows.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of rows) out.set(r, (o += r.length) - r.length);
  return out;
};

/** Compares every layer's att_x / wkv / ffn_x with `<prefix>.<i>.*`. */
function checkState(c: Case, state: RefState, prefix: string): void {
  state.layers.forEach((s, i) => {
    for (const k of ['att_x', 'wkv', 'ffn_x'] as const) {
      record(c.id, `${prefix}.${k}`, maxAbsDiff(s[k], c.f32(`${prefix}.${i}.${k}`)).maxAbs, STATE_TOL);
    }
  });
}

/** Compares full logit rows with a golden [n, V] tensor. */
function checkLogits(c: Case, what: string, ours: Float64Array[], golden: Float32Array): void {
  record(c.id, what, maxAbsDiff(flat(ours), golden).maxAbs, LOGIT_TOL);
}

/** Large-vocab goldens: compares our logits at the golden top-k ids, and the log-sum-exp of each row. */
function checkTopK(c: Case, what: string, ours: Float64Array[], ids: string, vals: string, lse: string): void {
  const k = c.shape(ids)[1]!;
  const gi = c.i32(ids), gv = c.f32(vals), gl = c.f32(lse);
  let err = 0, errLse = 0;
  ours.forEach((row, t) => {
    for (let j = 0; j < k; j++) err = Math.max(err, Math.abs(row[gi[t * k + j]!]! - gv[t * k + j]!));
    errLse = Math.max(errLse, Math.abs(logSumExp(row) - gl[t]!));
  });
  record(c.id, `${what}.top${k}`, err, LOGIT_TOL);
  record(c.id, `${what}.logsumexp`, errLse, LOGIT_TOL);
}

/** Greedy ids: our argmax equals the golden id wherever the golden top-2 margin exceeds GREEDY_MARGIN. */
function checkGreedy(c: Case, logits: Float64Array[], ids: number[], margins: Float32Array | null): number {
  let checked = 0;
  logits.forEach((row, t) => {
    if (margins && !(margins[t]! > GREEDY_MARGIN)) return;
    expect(argmaxFirst(row), `${c.id}: greedy id at step ${t}`).toBe(ids[t]);
    checked++;
  });
  return checked;
}

/**
 * Generated-step logits by teacher forcing: step 0 = `prefillLast`, step j = after feeding golden gen_ids[j−1]
 * from `state` (mutated). Compares full rows (small vocab) or top-32 + logsumexp + first/last full rows.
 */
function checkTeacherForcing(c: Case, m: RefModel, state: RefState, prefillLast: Float64Array): void {
  const gen = c.i32('gen_ids');
  const steps = [prefillLast, ...refForward(m, state, gen.slice(0, -1), { logits: 'all' })];
  if (c.has('gen_logits')) checkLogits(c, 'gen_logits', steps, c.f32('gen_logits'));
  else {
    checkTopK(c, 'gen_logits', steps, 'gen_top32_ids', 'gen_top32_logits', 'gen_logsumexp');
    checkLogits(c, 'gen_logits_laststep', [steps.at(-1)!], c.f32('gen_logits_laststep'));
  }
  checkGreedy(c, steps, gen, c.f32('gen_top2_margin'));
  if (c.has('state_after.0.wkv')) checkState(c, state, 'state_after');
}

/** The case's image rows: its own `image_rows` tensor, or the shared file named in the JSON. */
function imageRows(c: Case, modelName: string, C: number): Float64Array[] {
  if (c.has('image_rows')) return toRows(c.f32('image_rows'), C);
  const ref = c.json.image_rows as { file: string; tensor: string };
  return toRows(tensorF32(`cases/${modelName}/${ref.file}`, ref.tensor), C);
}

function flipOf(c: Case): FlipSpan | undefined {
  const f = c.json.flip_span as [number, number] | null;
  return f ? { start: f[0], count: f[1] - f[0] } : undefined;
}

describe('text prefill (sequence mode from the zero state)', () => {
  const cases = [['rwkv6_tiny', 'text_0'], ['rwkv7_tiny', 'text_0'], ['rwkv6_vocab65536', 'text_0'],
    ['rwkv6_vocab65536', 'text_1']] as const;
  it.each(cases)('%s %s: logits of every position and the final state', (mn, name) => {
    const c = loadCase(mn, name), m = model(mn);
    const state = createRefState(m);
    const logits = refForward(m, state, c.i32('input_ids'));
    if (c.has('logits')) checkLogits(c, 'logits', logits, c.f32('logits'));
    else checkTopK(c, 'logits', logits, 'logits_top8_ids', 'logits_top8_logits', 'logits_logsumexp');
    checkLogits(c, 'logits_last', [logits.at(-1)!], c.f32('logits_last'));
    expect(logits.map((l) => argmaxFirst(l))).toEqual(c.i32('logits_argmax'));
    checkState(c, state, 'state');
  });
});

describe('RNN decode (teacher forcing the golden ids from the text state)', () => {
  const cases = [['rwkv6_tiny', 'decode_0'], ['rwkv7_tiny', 'decode_0'], ['rwkv6_vocab65536', 'decode_0'],
    ['rwkv6_vocab65536', 'decode_1']] as const;
  it.each(cases)('%s %s: every step\'s logits, state_after, greedy ids', (mn, name) => {
    const c = loadCase(mn, name), m = model(mn);
    const state = createRefState(m);
    const [last] = refForward(m, state, c.i32('input_ids'), { logits: 'last' });
    checkTeacherForcing(c, m, state, last!);
    // refGenerate on its own must reproduce the golden greedy ids (all margins here are > GREEDY_MARGIN).
    const gen = c.i32('gen_ids');
    expect(Math.min(...c.f32('gen_top2_margin'))).toBeGreaterThan(GREEDY_MARGIN);
    expect(refGenerate(m, c.i32('input_ids'), { steps: gen.length }).ids).toEqual(gen);
  });
});

describe('visual layouts (image rows spliced, ln0 on every row, optional v6.0 flip)', () => {
  const positions = ['first', 'middle', 'last'];
  const cases: [string, string][] = [];
  for (const mn of ['rwkv6_tiny', 'rwkv7_tiny']) for (const p of positions) for (const d of ['bidi', 'uni']) cases.push([mn, `visual_${p}_${d}`]);
  cases.push(['rwkv6_vocab65536', 'visual_middle_bidi'], ['rwkv6_vocab65536', 'e2e_image_0_middle_bidi'],
    ['rwkv6_vocab65536', 'e2e_image_1_middle_bidi'], ['rwkv7_tiny', 'v7layout_first_nopad']);
  it.each(cases)('%s %s: prefill last logits, prefill state, generated-step logits', (mn, name) => {
    const c = loadCase(mn, name), m = model(mn);
    const rows = refSpliceRows(c.i32('input_ids'), imageRows(c, mn, m.config.C), c.json.layout);
    const state = createRefState(m);
    const [last] = refForward(m, state, rows, { bidirectional: flipOf(c), logits: 'last' });
    const goldenLast = c.has('prefill_logits_last') ? 'prefill_logits_last' : 'gen_logits_step0';
    checkLogits(c, goldenLast, [last!], c.f32(goldenLast));
    checkState(c, state, 'prefill_state');
    checkTeacherForcing(c, m, state, last!);
  });

  it('rwkv7_tiny visual_middle_bidi: refGenerate (prefill with flip + RNN decode) gives the golden ids', () => {
    const c = loadCase('rwkv7_tiny', 'visual_middle_bidi'), m = model('rwkv7_tiny');
    const rows = refSpliceRows(c.i32('input_ids'), imageRows(c, 'rwkv7_tiny', m.config.C), 'v6');
    const gen = refGenerate(m, rows, { bidirectional: flipOf(c), steps: 8, stopId: 261 });
    expect(gen.ids).toEqual(c.i32('gen_ids'));
    checkLogits(c, 'refGenerate.logits', gen.logits, c.f32('gen_logits'));
  });

  it('rwkv7_tiny v7layout_first_pad16: full recompute with 261 left-padding to a multiple of 16 (spec §8.5)', () => {
    const c = loadCase('rwkv7_tiny', 'v7layout_first_pad16'), m = model('rwkv7_tiny');
    const rows = refSpliceRows(c.i32('input_ids'), imageRows(c, 'rwkv7_tiny', m.config.C), 'v7');
    const gen = c.i32('gen_ids');
    const steps = gen.map((_, t) => {
      const seq: RefRow[] = [...rows, ...gen.slice(0, t)];
      const pad = (16 - (seq.length % 16)) % 16;
      return refForward(m, createRefState(m), [...Array<number>(pad).fill(261), ...seq], { logits: 'last' })[0]!;
    });
    checkLogits(c, 'gen_logits', steps, c.f32('gen_logits'));
    checkGreedy(c, steps, gen, c.f32('gen_top2_margin'));
  });
});

describe('projectors', () => {
  it.each(['rwkv6_tiny', 'rwkv6_vocab65536'])('%s projector_v6: grid pooling, proj, ln0 for every grid', (mn) => {
    const c = loadCase(mn, 'projector_v6'), m = model(mn);
    const features = c.f32('raw_features');
    for (const g of Object.keys(c.json.grids)) {
      const out = refProjectV6(features, m.w('proj.weight'), Number(g), m.norm('blocks.0.ln0'));
      record(c.id, 'pooled', maxAbsDiff(flat(out.pooled), c.f32(`grid${g}.pooled`)).maxAbs, ROWS_TOL);
      record(c.id, 'projected', maxAbsDiff(flat(out.projected), c.f32(`grid${g}.projected`)).maxAbs, ROWS_TOL);
      record(c.id, 'after_ln0', maxAbsDiff(flat(out.afterLn0), c.f32(`grid${g}.after_ln0`)).maxAbs, ROWS_TOL);
    }
  });

  it('rwkv7_tiny projector_v7: adaptive pooling, context gating, ln_v, ln0 (16 and 64 tokens)', () => {
    const c = loadCase('rwkv7_tiny', 'projector_v7'), m = model('rwkv7_tiny');
    const w = { gate: m.w('proj.gate.weight'), oProj: m.w('proj.o_proj.weight'), lnV: m.norm('proj.ln_v') };
    for (const n of c.json.num_token_per_image as number[]) {
      const out = refProjectV7(c.f32('raw_features'), c.shape('raw_features')[0]!, n, w, m.norm('blocks.0.ln0'));
      record(c.id, 'pooled', maxAbsDiff(flat(out.pooled), c.f32(`tokens${n}.pooled`)).maxAbs, ROWS_TOL);
      record(c.id, 'projected', maxAbsDiff(flat(out.projected), c.f32(`tokens${n}.projected`)).maxAbs, ROWS_TOL);
      record(c.id, 'after_ln0', maxAbsDiff(flat(out.afterLn0), c.f32(`tokens${n}.after_ln0`)).maxAbs, ROWS_TOL);
    }
    // The v7layout cases feed exactly these rows.
    const v7 = loadCase('rwkv7_tiny', 'v7layout_first_nopad');
    const out16 = refProjectV7(c.f32('raw_features'), 1024, 16, w, m.norm('blocks.0.ln0'));
    record(v7.id, 'image_rows_vs_projector', maxAbsDiff(flat(out16.projected), v7.f32('image_rows')).maxAbs, ROWS_TOL);
  });
});

it('fixture models load with the documented configs', () => {
  expect(MODELS.map((n) => model(n).config)).toEqual([
    { arch: 6, L: 4, C: 128, H: 2, N: 64, V: 1024, F: 448 },
    { arch: 7, L: 4, C: 128, H: 2, N: 64, V: 1024, F: 512 },
    { arch: 6, L: 2, C: 32, H: 1, N: 32, V: 65536, F: 96 },
  ]);
});
