import { describe, expect, test } from 'vitest';
import { InvalidArgumentError } from '../../src/errors';
import {
  APP_DEFAULTS,
  GREEDY,
  Penalties,
  Sampler,
  appTemperature,
  argmax,
  createRng,
  keptIds,
  sample,
  xoshiro128ss,
  type Rng,
} from '../../src/text/sampler';

/** Chi-square critical values at α = 0.001 by degrees of freedom: a correct sampler fails with p = 0.001 per check
 *  for a random seed; the seeds are fixed, so the test is deterministic and this bounds how lucky it could be. */
const CHI2_CRIT_0_001: Record<number, number> = { 1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47 };
/** Per-call budget for one draw at V = 65536; measured ~1–3 ms (peaked) / ~10–20 ms (flat, worst case) here. */
const SAMPLE_MAX_MS = 100;
/** f32 logits after penalties: a handful of f32 roundings of values ≈ 3. */
const PENALTY_TOL = 1e-6;

const noRng: Rng = () => {
  throw new Error('greedy must not draw');
};
const f32 = (xs: number[]) => Float32Array.from(xs);
const ids = (a: Int32Array) => Array.from(a);

/** Hand-made distribution: probs [0.1, 0.4, 0.2, 0.2, 0.1]; sorted desc 0.4 (id 1), 0.2 (2), 0.2 (3), 0.1 (0), 0.1 (4);
 *  cumsum 0.4, 0.6, 0.8, 0.9, 1.0. */
const P5 = [0.1, 0.4, 0.2, 0.2, 0.1];
const L5 = f32(P5.map(Math.log));

function normal(r: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Straight port of the official numpy `sample_logits` kept set (full sort), with the same f32 softmax. */
function naiveSorted(logits: Float32Array, mask: number[] = []): { p: Float32Array; order: number[] } {
  const V = logits.length;
  const m = new Set(mask);
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (!m.has(i)) max = Math.max(max, logits[i]);
  const p = new Float32Array(V);
  for (let i = 0; i < V; i++) p[i] = m.has(i) ? 0 : Math.exp(logits[i] - max);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += p[i];
  const inv = 1 / sum;
  for (let i = 0; i < V; i++) p[i] *= inv;
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  return { p, order };
}

function naiveKept({ p, order }: { p: Float32Array; order: number[] }, topP: number, topK: number): number[] {
  const V = p.length;
  let keep = order;
  if (topP < 1) {
    let cum = 0;
    let cutoff = p[order[0]];
    for (const i of order) {
      cum += p[i];
      if (cum >= topP) {
        cutoff = p[i];
        break;
      }
    }
    keep = order.filter((i) => p[i] >= cutoff);
  }
  if (topK > 0 && topK < V) {
    const top = new Set(order.slice(0, topK));
    keep = keep.filter((i) => top.has(i));
  }
  return keep.filter((i) => p[i] > 0).sort((a, b) => a - b);
}

function chiSquare(counts: number[], expected: number[], n: number): number {
  let x = 0;
  for (let i = 0; i < counts.length; i++) if (expected[i] > 0) x += (counts[i] - n * expected[i]) ** 2 / (n * expected[i]);
  return x;
}

describe('rng', () => {
  test('xoshiro128** reference vector (state 1,2,3,4)', () => {
    const g = xoshiro128ss([1, 2, 3, 4]);
    expect([g(), g(), g(), g(), g(), g()]).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  test('createRng: values from an independent Python implementation; same seed ⇒ same stream', () => {
    const r = createRng(42);
    expect([r(), r(), r(), r()]).toEqual([0.6606157208001621, 0.1117019639532224, 0.0791056456144914, 0.015209237180418]);
    const a = createRng(7);
    const b = createRng(7);
    const c = createRng(8);
    const sa = Array.from({ length: 100 }, a);
    expect(Array.from({ length: 100 }, b)).toEqual(sa);
    expect(Array.from({ length: 100 }, c)).not.toEqual(sa);
    for (const v of sa) expect(v >= 0 && v < 1).toBe(true);
  });
});

describe('greedy', () => {
  test('argmax: first max on ties, NaN ignored', () => {
    expect(argmax([1, 3, 2, 3])).toBe(1);
    expect(argmax(f32([-1, -1]))).toBe(0);
    expect(argmax([NaN, 2, NaN, 5])).toBe(3);
    expect(argmax([-Infinity, -Infinity])).toBe(0);
    expect(argmax([])).toBe(-1);
  });

  test('temperature 0 ⇒ argmax with first-max tie, no rng draw; masking applies', () => {
    const l = f32([0.5, 2, -1, 2, 1.5]);
    expect(sample(l, GREEDY, noRng)).toBe(1);
    expect(sample(l, { ...GREEDY, topP: 0.9, topK: 3 }, noRng)).toBe(1);
    expect(sample(l, { ...GREEDY, maskIds: [1] }, noRng)).toBe(3);
    expect(sample(l, { ...GREEDY, maskIds: [1, 3] }, noRng)).toBe(4);
    expect(() => sample(f32([1, NaN]), GREEDY, noRng)).toThrow(InvalidArgumentError);
    expect(() => sample(f32([1, 2]), { ...GREEDY, maskIds: [0, 1] }, noRng)).toThrow(InvalidArgumentError);
  });

  test('top_p 0 with T > 0 keeps exactly the tied maxima (official), then samples among them', () => {
    const l = f32([1, 4, 4, 0]);
    expect(ids(keptIds(l, { topP: 0, topK: 0 }))).toEqual([1, 2]);
    const r = createRng(3);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(sample(l, { temperature: 1, topP: 0, topK: 0 }, r));
    expect([...seen].sort()).toEqual([1, 2]);
  });
});

describe('kept set (top_p, top_k)', () => {
  test('top_p on a hand-computed distribution, ties at the cutoff survive', () => {
    const kept = (topP: number, topK = 0) => ids(keptIds(L5, { topP, topK }));
    expect(kept(0)).toEqual([1]);
    expect(kept(0.3)).toEqual([1]); // 0.4 ≥ 0.3 at the first index
    expect(kept(0.39)).toEqual([1]);
    expect(kept(0.41)).toEqual([1, 2, 3]); // cumsum 0.6 at id 2 ⇒ cutoff 0.2 ⇒ its tie id 3 survives
    expect(kept(0.5)).toEqual([1, 2, 3]);
    expect(kept(0.65)).toEqual([1, 2, 3]); // cumsum 0.8 at id 3
    expect(kept(0.85)).toEqual([0, 1, 2, 3, 4]); // cumsum 0.9 at id 0 ⇒ cutoff 0.1 ⇒ tie id 4 survives
    expect(kept(1)).toEqual([0, 1, 2, 3, 4]);
  });

  test('top_k after top_p, by sort order (prob desc, then lower id)', () => {
    const kept = (topP: number, topK: number) => ids(keptIds(L5, { topP, topK }));
    expect(kept(1, 1)).toEqual([1]);
    expect(kept(1, 2)).toEqual([1, 2]); // ids 2 and 3 tie; the lower id wins the last slot
    expect(kept(1, 4)).toEqual([0, 1, 2, 3]);
    expect(kept(0.5, 2)).toEqual([1, 2]);
    expect(kept(0.3, 3)).toEqual([1]);
    expect(kept(0.85, 3)).toEqual([1, 2, 3]);
    expect(kept(1, 5)).toEqual([0, 1, 2, 3, 4]); // top_k ≥ V: off
    expect(kept(1, 0)).toEqual([0, 1, 2, 3, 4]);
  });

  test('masked ids and −∞ logits are never kept', () => {
    expect(ids(keptIds(L5, { topP: 1, topK: 0, maskIds: [1, 99] }))).toEqual([0, 2, 3, 4]);
    expect(ids(keptIds(L5, { topP: 0.3, topK: 0, maskIds: [1] }))).toEqual([2, 3]); // renormalised: 0.333 each
    expect(ids(keptIds(f32([0, -Infinity, 0]), { topP: 1, topK: 0 }))).toEqual([0, 2]);
    expect(() => keptIds(f32([0, Infinity]), { topP: 1, topK: 0 })).toThrow(InvalidArgumentError);
    expect(() => keptIds(L5, { topP: NaN, topK: 0 })).toThrow(InvalidArgumentError);
    expect(() => keptIds(L5, { topP: 1, topK: 1.5 })).toThrow(InvalidArgumentError);
  });

  test('V = 65536: bucketed selection equals a full-sort port of the official code', () => {
    const V = 65536;
    const r = createRng(11);
    const dists: [string, Float32Array][] = [
      ['normal×3', Float32Array.from({ length: V }, () => 3 * normal(r))],
      ['normal×0.3 (flat)', Float32Array.from({ length: V }, () => 0.3 * normal(r))],
      ['integer ties', Float32Array.from({ length: V }, () => Math.round(4 * normal(r)))],
      ['peaked', Float32Array.from({ length: V }, (_, i) => (i === 777 ? 30 : i % 97 === 0 ? 25 : normal(r)))],
      ['all equal', new Float32Array(V)],
    ];
    const mask = [65530, 65531, 65532, 65533, 65534, 65535];
    for (const [name, l] of dists) {
      const ref = naiveSorted(l);
      for (const topP of [0, 0.1, 0.3, 0.5, 0.85, 0.99, 1]) {
        for (const topK of [0, 1, 5, 40, 1000]) {
          expect(ids(keptIds(l, { topP, topK })), `${name} p=${topP} k=${topK}`).toEqual(naiveKept(ref, topP, topK));
        }
      }
      l[65533] = 40; // a masked id with the largest logit must not matter
      expect(ids(keptIds(l, { topP: 0.3, topK: 0, maskIds: mask })), name).toEqual(naiveKept(naiveSorted(l, mask), 0.3, 0));
    }
  });
});

describe('sampling frequencies (seeded, chi-square at α = 0.001)', () => {
  const N = 100_000;
  const cases: { name: string; T: number; topP: number; topK: number; expected: number[] }[] = [];
  const norm = (w: number[]) => w.map((x) => x / w.reduce((a, b) => a + b, 0));
  // T = 0.5, top_p 0.85 keeps all five: weights p^2
  cases.push({ name: 'T=0.5 p=0.85', T: 0.5, topP: 0.85, topK: 0, expected: norm(P5.map((p) => p ** 2)) });
  // T = 2, top_p 0.5 keeps {1,2,3}: weights p^0.5
  cases.push({ name: 'T=2 p=0.5', T: 2, topP: 0.5, topK: 0, expected: norm(P5.map((p, i) => ([1, 2, 3].includes(i) ? Math.sqrt(p) : 0))) });
  // T = 1, top_k 2 keeps {1,2}: 2/3, 1/3
  cases.push({ name: 'T=1 k=2', T: 1, topP: 1, topK: 2, expected: [0, 2 / 3, 1 / 3, 0, 0] });
  // T = 1, no truncation: the softmax itself
  cases.push({ name: 'T=1 full', T: 1, topP: 1, topK: 0, expected: P5 });

  for (const c of cases) {
    test(c.name, () => {
      const rng = createRng(1234);
      const counts = [0, 0, 0, 0, 0];
      for (let i = 0; i < N; i++) counts[sample(L5, { temperature: c.T, topP: c.topP, topK: c.topK }, rng)]++;
      for (let i = 0; i < 5; i++) if (c.expected[i] === 0) expect(counts[i], `id ${i} is outside the kept set`).toBe(0);
      const df = c.expected.filter((e) => e > 0).length - 1;
      const x2 = chiSquare(counts, c.expected, N);
      expect(x2, `counts ${counts} expected ${c.expected.map((e) => (e * N).toFixed(0))}`).toBeLessThan(CHI2_CRIT_0_001[df]);
    });
  }

  test('same seed ⇒ same token sequence', () => {
    const draw = (seed: number) => {
      const r = createRng(seed);
      return Array.from({ length: 50 }, () => sample(L5, { temperature: 1, topP: 1, topK: 0 }, r));
    };
    expect(draw(5)).toEqual(draw(5));
    expect(draw(5)).not.toEqual(draw(6));
  });
});

describe('penalties (official app loop)', () => {
  test('three steps by hand: subtract, sample, decay all, add 1', () => {
    const opts = { alphaPresence: 0.5, alphaFrequency: 1.0, penaltyDecay: 0.996 };
    const s = new Sampler({ ...GREEDY, ...opts, stopIds: [] });
    const logits = f32([3, 2.5, 0, 0]);
    // step 1: no penalty → 0; occ {0: 1}
    expect(s.next(logits)).toEqual({ id: 0, stop: false });
    expect(s.penalties.occurrence(0)).toBe(1);
    // step 2: l0 = 3 − (0.5 + 1) = 1.5 < 2.5 → 1; occ {0: 0.996, 1: 1}
    expect(s.next(logits)).toEqual({ id: 1, stop: false });
    expect(s.penalties.occurrence(0)).toBeCloseTo(0.996, 15);
    expect(s.penalties.occurrence(1)).toBe(1);
    // step 3: l0 = 3 − (0.5 + 0.996) = 1.504, l1 = 2.5 − 1.5 = 1.0 → 0; occ {0: 0.996² + 1, 1: 0.996}
    const pen = f32([3, 2.5, 0, 0]);
    s.penalties.apply(pen);
    expect(pen[0]).toBeCloseTo(1.504, 6);
    expect(pen[1]).toBeCloseTo(1.0, 6);
    expect(Math.abs(pen[0] - 1.504)).toBeLessThan(PENALTY_TOL);
    expect(s.next(logits)).toEqual({ id: 0, stop: false });
    expect(s.penalties.occurrence(0)).toBeCloseTo(1.992016, 15);
    expect(s.penalties.occurrence(1)).toBeCloseTo(0.996, 15);
    // step 4: l0 = 3 − (0.5 + 1.992016) = 0.507984, l1 = 2.5 − (0.5 + 0.996) = 1.004 → 1
    const pen4 = f32([3, 2.5, 0, 0]);
    s.penalties.apply(pen4);
    expect(Math.abs(pen4[0] - 0.507984)).toBeLessThan(PENALTY_TOL);
    expect(Math.abs(pen4[1] - 1.004)).toBeLessThan(PENALTY_TOL);
    expect(s.next(logits)).toEqual({ id: 1, stop: false });
    expect(Array.from(logits)).toEqual([3, 2.5, 0, 0]); // the caller's logits are untouched
  });

  test('a stop id ends the step without decaying or counting', () => {
    const s = new Sampler({ ...GREEDY, alphaPresence: 0, alphaFrequency: 1, penaltyDecay: 0.996, stopIds: [1] });
    const logits = f32([3, 2.5, 0]);
    expect(s.next(logits)).toEqual({ id: 0, stop: false });
    expect(s.next(logits)).toEqual({ id: 1, stop: true }); // 3 − 1 = 2 < 2.5
    expect(s.penalties.occurrence(0)).toBe(1);
    expect(s.penalties.occurrence(1)).toBe(0);
    s.reset();
    expect(s.penalties.size).toBe(0);
    expect(new Sampler({ temperature: undefined, topP: 0.5 }).opts).toMatchObject({ temperature: 0.2, topP: 0.5 });
  });

  test('Penalties alone; defaults match the spec tables', () => {
    const p = new Penalties({ alphaPresence: 0.2, alphaFrequency: 0.5, penaltyDecay: 0.5 });
    p.accept(2);
    p.accept(2);
    p.accept(0); // occ: 2 → (1·0.5 + 1)·0.5 = 0.75, 0 → 1
    expect(p.occurrence(2)).toBe(0.75);
    const l = f32([0, 0, 0]);
    p.apply(l);
    expect(Array.from(l)).toEqual([-0.7, 0, -(0.2 + 0.375)].map(Math.fround));
    expect(APP_DEFAULTS).toMatchObject({ temperature: 0.2, topP: 0.3, topK: 0, alphaPresence: 0, alphaFrequency: 1 });
    expect(APP_DEFAULTS.penaltyDecay).toBe(0.996);
    expect(APP_DEFAULTS.stopIds).toEqual([0, 261]);
    expect(GREEDY).toMatchObject({ temperature: 0, alphaPresence: 0, alphaFrequency: 0, stopIds: [261] });
    expect(appTemperature(0)).toBe(0.2);
    expect(appTemperature(1.3)).toBe(1.3);
  });
});

describe('speed at V = 65536', () => {
  test(`one draw < ${SAMPLE_MAX_MS} ms (app defaults; peaked and flat logits)`, () => {
    const V = 65536;
    const r = createRng(9);
    const peaked = Float32Array.from({ length: V }, () => 2 * normal(r));
    const flat = Float32Array.from({ length: V }, () => 0.05 * normal(r));
    const opts = { ...APP_DEFAULTS, maskIds: [65530, 65531, 65532, 65533, 65534, 65535] };
    for (const [name, l] of [['peaked', peaked], ['flat', flat]] as const) {
      sample(l, opts, r); // warm-up (JIT)
      const reps = 20;
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) expect(opts.maskIds).not.toContain(sample(l, opts, r));
      const ms = (performance.now() - t0) / reps;
      console.log(`sample(V=65536, T=0.2, top_p=0.3) ${name}: ${ms.toFixed(2)} ms`);
      expect(ms).toBeLessThan(SAMPLE_MAX_MS);
    }
  });
});
