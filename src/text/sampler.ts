/**
 * Token sampling with the official semantics (spec §9): `PIPELINE.sample_logits` (temperature, top-p, top-k) and the
 * official app's presence/frequency penalties with per-token decay, plus a seeded, platform-independent RNG.
 *
 * @example
 * const sampler = new Sampler(APP_DEFAULTS, createRng(42));
 * const { id, stop } = sampler.next(logits); // penalties → sample → stop check → decay → count
 */
import { InvalidArgumentError } from '../errors';

/** A uniform random number generator on [0, 1). `Math.random` works; `createRng(seed)` is reproducible. */
export type Rng = () => number;

/** Sampling and penalty settings. Fields map to the official names given in brackets. */
export interface SamplerOptions {
  /** [temperature] 0 ⇒ greedy (argmax, first max on ties). Otherwise probs ∝ softmax(logits/T) on the kept set. */
  temperature: number;
  /** [top_p] Keep ids whose prob ≥ the prob where the descending cumsum first reaches top_p (ties survive). ≥ 1: off. */
  topP: number;
  /** [top_k] If 0 < topK < V, keep at most the topK most probable of those (prob desc, then lower id). 0: off. */
  topK: number;
  /** [alpha_presence] Subtracted from the logit of every id generated so far. */
  alphaPresence: number;
  /** [alpha_frequency] Times the decayed occurrence count, subtracted from the logit. */
  alphaFrequency: number;
  /** [penalty_decay] Every occurrence count is multiplied by this once per generated token. */
  penaltyDecay: number;
  /** [token_stop] Sampling one of these ends generation; it is not counted for penalties. */
  stopIds: readonly number[];
  /** Ids whose logits are treated as −∞ (e.g. `tokenizer.missingIds(65536)` = 65530…65535). Default none. */
  maskIds?: readonly number[];
}

/**
 * The official VisualRWKV app (spec §9.2): T = max(0.2, T_user) with default 0.2, top_p 0.3, alpha_frequency 1.0,
 * alpha_presence 0, decay 0.996, stop on 0 or 261 ("\n\n"). The GPU app also stops once the text contains "\n\n".
 */
export const APP_DEFAULTS: Readonly<SamplerOptions> = Object.freeze({
  temperature: 0.2,
  topP: 0.3,
  topK: 0,
  alphaPresence: 0,
  alphaFrequency: 1.0,
  penaltyDecay: 0.996,
  stopIds: Object.freeze([0, 261]),
});

/** The official evaluation (spec §9.1): greedy argmax, no penalties, stop on 261 (the stop id is still returned). */
export const GREEDY: Readonly<SamplerOptions> = Object.freeze({
  temperature: 0,
  topP: 0,
  topK: 0,
  alphaPresence: 0,
  alphaFrequency: 0,
  penaltyDecay: 1,
  stopIds: Object.freeze([261]),
});

/** The official app clamps the user's temperature: max(0.2, T). */
export function appTemperature(t: number): number {
  return Math.max(0.2, t);
}

/**
 * Seeded xoshiro128** (state from splitmix32 of `seed`), 53-bit doubles in [0, 1). Integer-only arithmetic, so the
 * sequence is identical on every platform.
 * @example const rng = createRng(1); rng(); // 0 ≤ x < 1, same value everywhere
 */
export function createRng(seed: number): Rng {
  let x = seed >>> 0;
  const splitmix = (): number => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  const next = xoshiro128ss([splitmix(), splitmix(), splitmix(), splitmix()]);
  return () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
}

/**
 * The xoshiro128** 1.1 generator (Blackman & Vigna) from a 4×u32 state (not all zero): returns u32 outputs.
 * @example xoshiro128ss([1, 2, 3, 4])() // 11520
 */
export function xoshiro128ss(state: readonly [number, number, number, number]): () => number {
  let [a, b, c, d] = state.map((v) => v >>> 0);
  if ((a | b | c | d) === 0) a = 1;
  return () => {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return r;
  };
}

function rotl(v: number, k: number): number {
  return (v << k) | (v >>> (32 - k));
}

/** Index of the largest value; the first one on ties (as `torch.argmax`). NaN entries are ignored; −1 if none. */
export function argmax(values: ArrayLike<number>): number {
  let best = -1;
  let bestV = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v > bestV || (best < 0 && v === -Infinity)) {
      best = i;
      bestV = v;
    }
  }
  return best;
}

/** Reusable scratch arrays (sampling is synchronous, so one set per length suffices). */
let scratchLen = -1;
let probs = new Float32Array(0); // (V) f32 softmax, as the official `F.softmax(logits.float())`
let probBits = new Uint32Array(0); // (V) view of `probs`: for p ≥ 0 the bit pattern orders like the value
let cand = new Int32Array(0); // (V) candidate ids
let keys = new Float64Array(0); // (V) sort keys bits·V + (V−1−id): ascending key = ascending (prob, −id)
const HISTOGRAM_MIN_V = 4096;
const BUCKETS = 1 << 15; // f32 exponent + top 7 mantissa bits: buckets 1/128 of an octave wide
const bucketMass = new Float64Array(BUCKETS);
const bucketCount = new Uint32Array(BUCKETS);
function scratch(v: number): void {
  if (v === scratchLen) return;
  scratchLen = v;
  probs = new Float32Array(v);
  probBits = new Uint32Array(probs.buffer);
  cand = new Int32Array(v);
  keys = new Float64Array(v);
}

/**
 * The kept set of `PIPELINE.sample_logits` (spec §9.3 steps 2–4) for temperature > 0, in ascending id order.
 * Exposed for tests and for UIs that show the candidates.
 *
 * Instead of sorting all V probabilities, ids are bucketed by the top 16 bits of their f32 probability; only the
 * buckets needed to reach top_p (or top_k ids) are sorted, which gives the same prefix of the descending order as
 * a full sort. Deviations from the official code, all at rounding level: the cumsum is in f64 (official: f32), and
 * when rounding keeps the cumsum from ever reaching top_p all ids are kept (official: only the max). Ties at the
 * top_k boundary go to the lower id (official: argsort order, unspecified).
 */
export function keptIds(logits: Float32Array, opts: Pick<SamplerOptions, 'topP' | 'topK' | 'maskIds'>): Int32Array {
  const V = logits.length;
  if (!(opts.topP >= 0)) throw new InvalidArgumentError(`topP must be ≥ 0, got ${opts.topP}`);
  if (!(opts.topK >= 0) || !Number.isInteger(opts.topK)) {
    throw new InvalidArgumentError(`topK must be an integer ≥ 0, got ${opts.topK}`);
  }
  scratch(V);
  // Softmax (f64 sum, f32 probabilities); masked ids get probability 0.
  const masked = maskFlags(opts.maskIds, V);
  let max = -Infinity;
  for (let i = 0; i < V; i++) {
    const l = logits[i];
    if (l !== l || l === Infinity) throw new InvalidArgumentError(`logit ${i} is ${l}`);
    if (l > max && (masked === undefined || masked[i] === 0)) max = l;
  }
  if (max === -Infinity) throw new InvalidArgumentError('every logit is −∞ (or masked): nothing to sample');
  for (let i = 0; i < V; i++) probs[i] = Math.exp(logits[i] - max);
  if (masked) for (const i of opts.maskIds!) if (i >= 0 && i < V) probs[i] = 0;
  let sum = 0;
  for (let i = 0; i < V; i++) sum += probs[i];
  const inv = 1 / sum;
  for (let i = 0; i < V; i++) probs[i] *= inv;

  const truncP = opts.topP < 1;
  const truncK = opts.topK > 0 && opts.topK < V;
  if (!truncP && !truncK) return idsWhere((i) => probs[i] > 0, V);

  // Histogram of mass and count per bucket, then the highest bucket boundary that already holds top_p (or top_k).
  // Small V: sorting everything is cheaper than the 2^15-bucket histogram.
  if (V < HISTOGRAM_MIN_V) return finishKept(sortedPrefix(0, V, opts.topP, truncP, truncK ? opts.topK : V), V, opts);
  bucketMass.fill(0);
  bucketCount.fill(0);
  for (let i = 0; i < V; i++) {
    const k = probBits[i] >>> 16;
    bucketMass[k] += probs[i];
    bucketCount[k]++;
  }
  let bStar = 0;
  for (let k = BUCKETS - 1, m = 0, c = 0; k > 0; k--) {
    m += bucketMass[k];
    c += bucketCount[k];
    if ((truncP && m >= opts.topP) || (truncK && c >= opts.topK)) {
      bStar = k;
      break;
    }
  }
  const topK = truncK ? opts.topK : V;
  let kept = sortedPrefix(bStar, V, opts.topP, truncP, topK);
  if (kept < 0) kept = sortedPrefix(0, V, opts.topP, truncP, topK); // rounding: the buckets fell short of top_p
  return finishKept(kept, V, opts);
}

/** The first `kept` sorted candidates (capped at top_k, zero probabilities dropped) in ascending id order. */
function finishKept(kept: number, V: number, opts: Pick<SamplerOptions, 'topK'>): Int32Array {
  if (kept < 0) return idsWhere((i) => probs[i] > 0, V); // the whole cumsum < top_p (rounding): keep all
  if (opts.topK > 0) kept = Math.min(kept, opts.topK);
  return Int32Array.from(cand.subarray(0, kept).filter((i) => probs[i] > 0)).sort();
}

/**
 * Sorts the ids in buckets ≥ bStar by (prob desc, id asc) into `cand` and returns how many of them the top-p rule
 * keeps (the cutoff index plus the ties after it), or all of them if !truncP. If the cumsum does not reach top_p
 * within them: `topK` when at least topK were sorted (the top-k rule decides), else −1 (sort more).
 */
function sortedPrefix(bStar: number, V: number, topP: number, truncP: boolean, topK: number): number {
  let n = 0;
  if (V <= 1 << 23) {
    // Native numeric sort of exact f64 keys (bits < 2^30, so bits·V + id < 2^53) instead of a comparator.
    for (let i = 0; i < V; i++) if (probBits[i] >>> 16 >= bStar) keys[n++] = probBits[i] * V + (V - 1 - i);
    const ks = keys.subarray(0, n).sort();
    for (let j = 0; j < n; j++) cand[j] = V - 1 - (ks[n - 1 - j] % V);
  } else {
    for (let i = 0; i < V; i++) if (probBits[i] >>> 16 >= bStar) cand[n++] = i;
    cand.subarray(0, n).sort((a, b) => probs[b] - probs[a] || a - b);
  }
  const c = cand.subarray(0, n);
  if (!truncP) return n;
  let cum = 0;
  for (let j = 0; j < n; j++) {
    cum += probs[c[j]];
    if (cum >= topP) {
      const cutoff = probs[c[j]];
      let k = j + 1;
      while (k < n && probs[c[k]] === cutoff) k++;
      return k;
    }
  }
  return n >= topK ? topK : -1;
}

function idsWhere(pred: (i: number) => boolean, V: number): Int32Array {
  let n = 0;
  for (let i = 0; i < V; i++) if (pred(i)) cand[n++] = i;
  return cand.slice(0, n);
}

let flags = new Uint8Array(0);
/** A (V) array with 1 at the masked ids, or undefined when nothing is masked. Valid until the next call. */
function maskFlags(ids: readonly number[] | undefined, V: number): Uint8Array | undefined {
  if (!ids || ids.length === 0) return undefined;
  if (flags.length !== V) flags = new Uint8Array(V);
  else flags.fill(0);
  for (const i of ids) if (i >= 0 && i < V) flags[i] = 1;
  return flags;
}

/**
 * Draws one token id (spec §9.3), without modifying `logits`.
 * temperature 0 ⇒ argmax (first max; the official `sample_logits` would pick uniformly among exact ties, the official
 * evaluation's `torch.argmax` picks the first). Otherwise: kept set (`keptIds`), weights exp((l − l_max)/T) ≡
 * probs^(1/T), and inverse-CDF sampling over the kept ids in ascending id order with one `rng()` draw.
 * @throws InvalidArgumentError if a logit is NaN or +∞, or every id is masked
 * @example sample(logits, { temperature: 1, topP: 0.85, topK: 0 }, createRng(7))
 */
export function sample(
  logits: Float32Array,
  opts: Pick<SamplerOptions, 'temperature' | 'topP' | 'topK' | 'maskIds'>,
  rng: Rng,
): number {
  const T = opts.temperature;
  if (!(T >= 0)) throw new InvalidArgumentError(`temperature must be ≥ 0, got ${T}`);
  if (T === 0) {
    const masked = maskFlags(opts.maskIds, logits.length);
    let best = -1;
    let bestV = -Infinity;
    for (let i = 0; i < logits.length; i++) {
      const l = logits[i];
      if (l !== l) throw new InvalidArgumentError(`logit ${i} is NaN`);
      if (l > bestV && (masked === undefined || masked[i] === 0)) {
        best = i;
        bestV = l;
      }
    }
    if (best < 0) throw new InvalidArgumentError('every logit is −∞ (or masked): nothing to sample');
    return best;
  }
  const kept = keptIds(logits, opts);
  let lmax = -Infinity;
  for (const i of kept) lmax = Math.max(lmax, logits[i]);
  const w = new Float64Array(kept.length);
  let total = 0;
  for (let j = 0; j < kept.length; j++) total += w[j] = Math.exp((logits[kept[j]] - lmax) / T);
  let r = rng() * total;
  for (let j = 0; j < kept.length; j++) {
    r -= w[j];
    if (r < 0) return kept[j];
  }
  for (let j = kept.length - 1; j >= 0; j--) if (w[j] > 0) return kept[j]; // r ≈ total after rounding
  return kept[0];
}

/**
 * Presence / frequency penalties with decay, as the official app loop (spec §9.2):
 * `apply` before sampling: logits[n] −= alpha_presence + occ[n]·alpha_frequency for every n seen;
 * `accept(token)` after a non-stop token: every occ *= decay, then occ[token] += 1.
 * @example const pen = new Penalties(APP_DEFAULTS); pen.apply(logits); pen.accept(id);
 */
export class Penalties {
  private readonly occ = new Map<number, number>();

  constructor(readonly opts: Pick<SamplerOptions, 'alphaPresence' | 'alphaFrequency' | 'penaltyDecay'>) {}

  /** Subtracts the penalties from `logits` in place. */
  apply(logits: Float32Array): void {
    const { alphaPresence: ap, alphaFrequency: af } = this.opts;
    if (ap === 0 && af === 0) return;
    for (const [n, c] of this.occ) if (n < logits.length) logits[n] -= ap + c * af;
  }

  /** Records a generated (non-stop) token: decay all counts, then add 1 for `token`. */
  accept(token: number): void {
    const d = this.opts.penaltyDecay;
    if (d !== 1) for (const [n, c] of this.occ) this.occ.set(n, c * d);
    this.occ.set(token, (this.occ.get(token) ?? 0) + 1);
  }

  /** The decayed occurrence weight of `id` (0 if never generated). */
  occurrence(id: number): number {
    return this.occ.get(id) ?? 0;
  }

  /** Number of distinct ids seen. */
  get size(): number {
    return this.occ.size;
  }

  /** Forgets all occurrences (new conversation). */
  reset(): void {
    this.occ.clear();
  }
}

/** One generation step's result. */
export interface SampleStep {
  id: number;
  /** True when `id` is a stop id: end generation (the id is not added to the penalties). */
  stop: boolean;
}

/**
 * The official app's per-token loop: subtract penalties → sample → stop check → decay all → count the token.
 * `next` does not modify the caller's logits (penalties go to an internal copy).
 * @example
 * const s = new Sampler({ ...APP_DEFAULTS, maskIds: tok.missingIds(65536) }, createRng(seed));
 * for (;;) { const { id, stop } = s.next(await model.step(prev)); if (stop) break; prev = id; }
 */
export class Sampler {
  readonly opts: Readonly<SamplerOptions>;
  readonly penalties: Penalties;
  private work = new Float32Array(0);

  constructor(
    opts: Partial<SamplerOptions> = {},
    private readonly rng: Rng = createRng(0),
  ) {
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...APP_DEFAULTS, ...given };
    this.penalties = new Penalties(this.opts);
  }

  next(logits: Float32Array): SampleStep {
    let l = logits;
    if (this.penalties.size > 0 && (this.opts.alphaPresence !== 0 || this.opts.alphaFrequency !== 0)) {
      if (this.work.length !== logits.length) this.work = new Float32Array(logits.length);
      this.work.set(logits);
      this.penalties.apply(this.work);
      l = this.work;
    }
    const id = sample(l, this.opts, this.rng);
    if (this.opts.stopIds.includes(id)) return { id, stop: true };
    this.penalties.accept(id);
    return { id, stop: false };
  }

  /** Clears the penalties (the RNG continues). */
  reset(): void {
    this.penalties.reset();
  }
}
