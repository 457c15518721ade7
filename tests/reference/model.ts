/**
 * Whole-model float64 CPU reference (spec §3, §4, §8; MANIFEST §3–§4): the entry point for debugging the GPU
 * engine against plain math. Import everything from here.
 *
 * @example
 *   const m = loadReferenceModel('models/rwkv6_tiny');                // path relative to tests/fixtures
 *   const s = createRefState(m);
 *   const rows = refSpliceRows([729, 59, -200, 11], imageRows, 'v6'); // ids and raw image rows (before ln0)
 *   const [last] = refForward(m, s, rows, { bidirectional: { start: 2, count: imageRows.length - 1 }, logits: 'last' });
 *   const { ids } = refGenerate(m, rows, { steps: 8, stopId: 261 });
 */
import { argmaxFirst, layerNorm, matvec, type Vec } from './common';
import { block6 } from './rwkv6';
import { block7, type VFirstSlot } from './rwkv7';
import { cloneRefState, createRefState, type RefLayerState, type RefModel, type RefState } from './weights';

export { loadReferenceModel, createRefState, cloneRefState, loadRefTensors, refTensorsFrom, referenceModelFrom } from './weights';
export type { RefConfig, RefLayerState, RefModel, RefState, RefTensor } from './weights';
export { refProjectV6, refProjectV7, gridPoolV6, adaptivePool2d } from './projector';
export type { ProjectorOutput, ProjectorV7Weights } from './projector';
export { argmaxFirst, logSumExp } from './common';

/** An input row: a token id (looked up in `emb`) or a raw image row [C] (ln0 is applied by the model). */
export type RefRow = number | Float64Array;

/** Rows [start, start + count) of this call's input: the image rows except CLS (v6.0 flip span). */
export interface FlipSpan {
  start: number;
  count: number;
}

export interface RefForwardOptions {
  /** v6.0 bidirectional scan: on odd layers the span is processed in reverse order (MANIFEST §4). */
  bidirectional?: FlipSpan;
  /** Which positions get logits: every one (default), only the last, or none. */
  logits?: 'all' | 'last' | 'none';
}

/** v6.0 image placeholder (one per image, replaced by all its rows). */
export const V6_IMAGE_ID = -200;
/** v7.00 image placeholder (one per image row). */
export const V7_IMAGE_ID = 65535;

/**
 * Splices image rows into token ids (MANIFEST §4): layout 'v6' replaces the single -200 by all rows;
 * 'v7' replaces each 65535 by the next row.
 */
export function refSpliceRows(ids: ArrayLike<number>, image: Vec[], layout: 'v6' | 'v7'): RefRow[] {
  const out: RefRow[] = [];
  let next = 0;
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (layout === 'v6' && id === V6_IMAGE_ID) {
      if (next !== 0) throw new Error('refSpliceRows: more than one -200 placeholder');
      out.push(...image);
      next = image.length;
    } else if (layout === 'v7' && id === V7_IMAGE_ID) out.push(image[next++]!);
    else out.push(id);
  }
  if (next !== image.length) throw new Error(`refSpliceRows: used ${next} of ${image.length} image rows`);
  return out;
}

/** Block 0's ln0 on an input row: `LN_ln0(emb[id])` or `LN_ln0(row)`. */
export function embedRow(m: RefModel, row: RefRow): Vec {
  const { V, C } = m.config;
  if (typeof row !== 'number') {
    if (row.length !== C) throw new Error(`image row has ${row.length} values, expected C=${C}`);
    return layerNorm(row, m.norm('blocks.0.ln0'));
  }
  if (!(Number.isInteger(row) && row >= 0 && row < V)) throw new Error(`token id ${row} outside [0, ${V})`);
  return layerNorm(m.w('emb.weight').subarray(row * C, (row + 1) * C), m.norm('blocks.0.ln0'));
}

/** logits = head·LN_ln_out(x). */
export function headLogits(m: RefModel, x: Vec): Vec {
  return matvec(m.w('head.weight'), layerNorm(x, m.norm('ln_out')));
}

/** Positions in the order layer i processes them: natural, or with the flip span reversed on odd layers. */
export function processingOrder(T: number, layer: number, flip?: FlipSpan): number[] {
  const order = Array.from({ length: T }, (_, t) => t);
  if (!flip || layer % 2 === 0) return order;
  const { start, count } = flip;
  if (start < 0 || count < 0 || start + count > T) throw new Error(`flip span [${start}, ${start + count}) outside T=${T}`);
  for (let t = 0; t < count; t++) order[start + t] = start + count - 1 - t;
  return order;
}

/** Block i of either architecture on one row; `slot` is the row's v_first (RWKV-7 only). */
function block(m: RefModel, i: number, s: RefLayerState, x: Vec, slot: VFirstSlot): Vec {
  return m.config.arch === 6 ? block6(m, i, s, x) : block7(m, i, s, x, slot);
}

/**
 * Runs `rows` from `state` (mutated to the state after the last row), layer-major over the whole input:
 * ln0 on every row, then for each layer every row in that layer's processing order (token shift and WKV state
 * follow that order; rows are stored back at their natural positions; RWKV-7 v_first stays with its row).
 * Returns the logits of every position (`logits: 'all'`), of the last one only ('last'), or none.
 */
export function refForward(m: RefModel, state: RefState, rows: RefRow[], opts: RefForwardOptions = {}): Vec[] {
  const T = rows.length;
  const xs = rows.map((r) => embedRow(m, r));
  const vFirst: VFirstSlot[] = rows.map(() => ({}));
  for (let i = 0; i < m.config.L; i++) {
    for (const t of processingOrder(T, i, opts.bidirectional)) xs[t] = block(m, i, state.layers[i]!, xs[t]!, vFirst[t]!);
  }
  const mode = opts.logits ?? 'all';
  if (mode === 'none' || T === 0) return [];
  return mode === 'last' ? [headLogits(m, xs[T - 1]!)] : xs.map((x) => headLogits(m, x));
}

export interface RefGenerateOptions {
  bidirectional?: FlipSpan;
  /** Maximum number of ids to choose. */
  steps: number;
  /** Stop after choosing this id (it is emitted; VisualRWKV uses 261 = "\n\n"). */
  stopId?: number;
  /** Start state (default: zero state); it is not mutated. */
  state?: RefState;
}

export interface RefGenerateResult {
  /** Greedy ids (first maximum on ties). */
  ids: number[];
  /** logits[j] chose ids[j]: logits[0] = prefill last, logits[j > 0] = after feeding ids[j − 1]. */
  logits: Vec[];
  /** State after feeding ids[0 .. n−2] (the last chosen id is not fed). */
  state: RefState;
}

/** Greedy generation: prefill (with the flip if given), then plain RNN decode one id at a time (spec §8.2). */
export function refGenerate(m: RefModel, rows: RefRow[], opts: RefGenerateOptions): RefGenerateResult {
  const state = opts.state ? cloneRefState(opts.state) : createRefState(m);
  let last = refForward(m, state, rows, { bidirectional: opts.bidirectional, logits: 'last' })[0]!;
  const ids: number[] = [];
  const logits: Vec[] = [];
  for (;;) {
    const id = argmaxFirst(last);
    ids.push(id);
    logits.push(last);
    if (id === opts.stopId || ids.length >= opts.steps) break;
    last = refForward(m, state, [id], { logits: 'last' })[0]!;
  }
  return { ids, logits, state };
}
