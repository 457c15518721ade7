/** Greedy generation and prompt splicing shared by the CLI, the API and the tests. */
import { InvalidArgumentError, ShapeError } from '../errors';
import type { BidirectionalSpan, InputRow, RwkvModel } from './model';

/** The v6.0 image placeholder id in prompts (spec §7.1). */
export const IMAGE_PLACEHOLDER_V6 = -200;

export interface SplicedInputs {
  inputs: InputRow[];
  /** Where the image rows went, if any. */
  image?: { start: number; rows: number };
}

/**
 * Replace the single placeholder id with `imageRows` (n rows of length C, before ln0).
 * Throws if the placeholder and the rows do not come together.
 */
export function spliceImage(ids: readonly number[], imageRows: Float32Array[] | null, placeholder = IMAGE_PLACEHOLDER_V6): SplicedInputs {
  const at = ids.flatMap((id, i) => (id === placeholder ? [i] : []));
  if (at.length > 1) throw new InvalidArgumentError(`the ids hold ${at.length} image placeholders (${placeholder}); one image per prompt is supported`);
  if (at.length === 1 && !imageRows) throw new InvalidArgumentError(`the ids hold an image placeholder (${placeholder}) but no image rows were given`);
  if (at.length === 0 && imageRows) throw new InvalidArgumentError(`image rows were given but the ids hold no image placeholder (${placeholder})`);
  for (const id of ids) if (id < 0 && id !== placeholder) throw new InvalidArgumentError(`negative id ${id} is not a known placeholder`);
  if (at.length === 0) return { inputs: [...ids] };
  const p = at[0]!;
  if (imageRows!.length === 0) throw new ShapeError('the image has no rows');
  return {
    inputs: [...ids.slice(0, p), ...imageRows!, ...ids.slice(p + 1)],
    image: { start: p, rows: imageRows!.length },
  };
}

/** The v7.00 placeholder id: one per image row, each replaced by the next row (spec §7.4). */
export const IMAGE_PLACEHOLDER_V7 = 65535;

/**
 * Splice image rows into ids: one -200 (v6.0: all rows go there) or, failing that, exactly one 65535 per row
 * (v7.00 layout: each placeholder takes the next row).
 */
export function spliceImageAuto(ids: readonly number[], imageRows: Float32Array[] | null): SplicedInputs {
  if (!imageRows || ids.includes(IMAGE_PLACEHOLDER_V6)) return spliceImage(ids, imageRows);
  const at = ids.flatMap((id, i) => (id === IMAGE_PLACEHOLDER_V7 ? [i] : []));
  if (at.length !== imageRows.length) {
    throw new InvalidArgumentError(
      `${imageRows.length} image rows were given but the ids hold ${at.length} v7 placeholders (${IMAGE_PLACEHOLDER_V7}) and no v6 placeholder (${IMAGE_PLACEHOLDER_V6})`,
    );
  }
  if (at.some((p, k) => p !== at[0]! + k)) throw new InvalidArgumentError('the v7 image placeholders must be consecutive');
  const inputs: (number | Float32Array)[] = [...ids];
  at.forEach((p, k) => (inputs[p] = imageRows[k]!));
  return { inputs, image: { start: at[0]!, rows: at.length } };
}

/** The v6.0 flip span for an image of n rows starting at `start`: all rows but the last (CLS). */
export function bidirectionalSpan(image: { start: number; rows: number }): BidirectionalSpan {
  return { start: image.start, count: image.rows - 1 };
}

/** Index of the first maximum (torch.argmax tie rule). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

export interface GreedyResult {
  prefillLogits: Float32Array;
  ids: number[];
  /** logits[i] is the distribution ids[i] was chosen from; logits[0] = prefillLogits. */
  logits: Float32Array[];
}

/** Prefill `inputs` from the model's current state, then greedy-decode up to maxTokens ids (stop id included). */
export async function generateGreedy(
  model: RwkvModel,
  inputs: readonly InputRow[],
  opts: { bidirectional?: BidirectionalSpan; maxTokens: number; stopIds?: readonly number[]; checkAbort?: () => void },
): Promise<GreedyResult> {
  const prefillLogits = (await model.prefill(inputs, { bidirectional: opts.bidirectional, checkAbort: opts.checkAbort }))!;
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  let cur = prefillLogits;
  for (let n = 0; n < opts.maxTokens; n++) {
    const id = argmax(cur);
    ids.push(id);
    logits.push(cur);
    if (opts.stopIds?.includes(id) || n === opts.maxTokens - 1) break;
    opts.checkAbort?.();
    cur = await model.decode(id);
  }
  return { prefillLogits, ids, logits };
}
