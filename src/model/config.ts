/**
 * Model hyper-parameters read from tensor shapes (spec §2.3–2.6), and a check that every tensor the language model
 * needs is present with its exact shape, before any weight is read.
 *
 * Three layouts are accepted: a full VisualRWKV checkpoint (`rwkv.*` + `vit.*`/`proj.*`), a split `_rwkv.pth`
 * (LM keys without prefix) and a bare RWKV LM checkpoint (same keys, no vision).
 */
import { UnsupportedDtypeError, WeightsFormatError } from '../errors';
import type { DType } from '../weights/dtype';
import type { Checkpoint } from '../weights/checkpoint';

/** The projector from vision features to LM rows. */
export type ProjectorConfig =
  /** v6.0: `proj.weight` [C, inDim], y = x·Wᵀ, no bias. */
  | { kind: 'linear'; inDim: number }
  /** v7.00 MLP with context gating: `proj.gate.weight` [inDim, inDim], `proj.o_proj.weight` [C, inDim], `proj.ln_v.*` [C]. */
  | { kind: 'gated_v7'; inDim: number }
  /** No projector in this file (bare LM or split `_rwkv.pth`). */
  | { kind: 'none' };

/** Sizes of a VisualRWKV / RWKV model, in the spec's letters. */
export interface ModelConfig {
  /** RWKV-6 "Finch" (x060) or RWKV-7 "Goose" (x070). */
  arch: 'rwkv6' | 'rwkv7';
  /** Prefix of the LM keys in the file: 'rwkv.' (full VisualRWKV checkpoint) or '' (split or bare LM). */
  prefix: string;
  /** Number of layers (blocks). */
  L: number;
  /** Embedding width n_embd (= dim_att = H·N). */
  C: number;
  /** Number of heads. */
  H: number;
  /** Head size. */
  N: number;
  /** Channel-mix hidden width dim_ffn (v6: ⌊3.5C/32⌋·32, v7: 4C in released models; read from shapes). */
  F: number;
  /** Vocabulary size (65536 for the World tokenizer). */
  V: number;
  /** R_m, v6 data-dependent token-shift (time_maa) LoRA rank; 0 for v7. */
  loraMix: number;
  /** R_d, v6 decay (time_decay) LoRA rank; 0 for v7. */
  loraDecay: number;
  /** R_w, v7 decay LoRA rank (w1/w2); 0 for v6. */
  loraW: number;
  /** R_a, v7 in-context learning-rate LoRA rank (a1/a2); 0 for v6. */
  loraA: number;
  /** R_v, v7 value-residual LoRA rank (v1/v2, layers ≥ 1); 0 for v6 or when L = 1. */
  loraV: number;
  /** R_g, v7 output-gate LoRA rank (g1/g2); 0 for v6. */
  loraG: number;
  /** Vision tower present in the file: CLIP (`vit.vision_model.*`), SAM+DINOv2+SigLIP (`vit.dino_featurizer.*`) or none. */
  vision: 'clip' | 'samdinosiglip' | 'none';
  projector: ProjectorConfig;
  /** Dtype of the LM weights on disk (that of `emb.weight`). */
  weightDtype: DType;
}

/** The checkpoint key of an LM tensor: `lmTensorName(cfg, 'emb.weight')` → 'rwkv.emb.weight' in a full file. */
export function lmTensorName(cfg: Pick<ModelConfig, 'prefix'>, key: string): string {
  return cfg.prefix + key;
}

/**
 * Every LM tensor the model reads, with its exact shape, names without prefix, in the spec's order (§2.3/§2.4).
 * RWKV-7 layer 0 has no v0/v1/v2 (released files may still carry them; they are ignored).
 */
export function expectedLmTensors(cfg: ModelConfig): { name: string; shape: number[] }[] {
  const { C, H, N, F, V, L } = cfg;
  const out: { name: string; shape: number[] }[] = [{ name: 'emb.weight', shape: [V, C] }];
  const add = (name: string, shape: number[]) => out.push({ name, shape });
  const vec = [1, 1, C];
  for (let i = 0; i < L; i++) {
    const b = `blocks.${i}.`;
    if (i === 0) for (const p of ['weight', 'bias']) add(`${b}ln0.${p}`, [C]);
    for (const ln of ['ln1', 'ln2']) for (const p of ['weight', 'bias']) add(`${b}${ln}.${p}`, [C]);
    if (cfg.arch === 'rwkv6') {
      const Rm = cfg.loraMix;
      const Rd = cfg.loraDecay;
      for (const x of ['x', 'w', 'k', 'v', 'r', 'g']) add(`${b}att.time_maa_${x}`, vec);
      add(`${b}att.time_maa_w1`, [C, 5 * Rm]);
      add(`${b}att.time_maa_w2`, [5, Rm, C]);
      add(`${b}att.time_decay`, vec);
      add(`${b}att.time_decay_w1`, [C, Rd]);
      add(`${b}att.time_decay_w2`, [Rd, C]);
      add(`${b}att.time_faaaa`, [H, N]);
      for (const m of ['receptance', 'key', 'value', 'gate', 'output']) add(`${b}att.${m}.weight`, [C, C]);
      for (const p of ['weight', 'bias']) add(`${b}att.ln_x.${p}`, [C]);
      add(`${b}ffn.time_maa_k`, vec);
      add(`${b}ffn.time_maa_r`, vec);
      add(`${b}ffn.key.weight`, [F, C]);
      add(`${b}ffn.receptance.weight`, [C, C]);
      add(`${b}ffn.value.weight`, [C, F]);
    } else {
      for (const x of ['r', 'w', 'k', 'v', 'a', 'g']) add(`${b}att.x_${x}`, vec);
      const lora: [string, number][] = [['w', cfg.loraW], ['a', cfg.loraA], ['v', cfg.loraV], ['g', cfg.loraG]];
      for (const [x, R] of lora) {
        if (x === 'v' && i === 0) continue;
        if (x !== 'g') add(`${b}att.${x}0`, vec);
        add(`${b}att.${x}1`, [C, R]);
        add(`${b}att.${x}2`, [R, C]);
      }
      add(`${b}att.k_k`, vec);
      add(`${b}att.k_a`, vec);
      add(`${b}att.r_k`, [H, N]);
      for (const m of ['receptance', 'key', 'value', 'output']) add(`${b}att.${m}.weight`, [C, C]);
      for (const p of ['weight', 'bias']) add(`${b}att.ln_x.${p}`, [C]);
      add(`${b}ffn.x_k`, vec);
      add(`${b}ffn.key.weight`, [F, C]);
      add(`${b}ffn.value.weight`, [C, F]);
    }
  }
  for (const p of ['weight', 'bias']) add(`ln_out.${p}`, [C]);
  add('head.weight', [V, C]);
  return out;
}

const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(['BF16', 'F16', 'F32']);

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Read the model's sizes from tensor shapes and validate every LM tensor (and the projector, if present).
 * Throws WeightsFormatError naming the key, the expected shape and what was found; UnsupportedDtypeError for
 * non-float LM weights.
 *
 * @example
 * const cfg = readModelConfig(await openCheckpoint(src));  // { arch: 'rwkv6', prefix: 'rwkv.', L: 24, C: 2048, ... }
 */
export function readModelConfig(ckpt: Checkpoint): ModelConfig {
  const file = ckpt.name;
  const t = ckpt.tensors;
  let prefix: string;
  if (t.has('rwkv.emb.weight')) prefix = 'rwkv.';
  else if (t.has('emb.weight')) prefix = '';
  else {
    const visualOnly = [...t.keys()].some((k) => k.startsWith('vit.') || k.startsWith('proj.'));
    throw new WeightsFormatError(
      `${file}: missing 'rwkv.emb.weight' / 'emb.weight': not an RWKV checkpoint` +
        (visualOnly ? ' (it has vit.*/proj.* keys only — a split _visual.pth? load the matching _rwkv.pth)' : ''),
    );
  }
  /** Shape of a key used to read a size, with its rank checked. */
  const dims = (key: string, rank: number, why: string): number[] => {
    const info = t.get(prefix + key);
    if (!info) throw new WeightsFormatError(`${file}: missing '${prefix + key}' (needed to read ${why})`);
    if (info.shape.length !== rank) {
      throw new WeightsFormatError(`${file}: '${prefix + key}' has shape ${fmt(info.shape)}, expected ${rank} dims (it gives ${why})`);
    }
    return info.shape;
  };

  const [V, C] = dims('emb.weight', 2, 'V and C') as [number, number];
  const blockRe = new RegExp(`^${prefix.replace('.', '\\.')}blocks\\.(\\d+)\\.`);
  let L = 0;
  let v6 = false;
  let v7 = false;
  let v5 = false;
  for (const k of t.keys()) {
    const m = blockRe.exec(k);
    if (!m) continue;
    L = Math.max(L, Number(m[1]) + 1);
    const rest = k.slice(m[0].length);
    if (rest === 'att.time_maa_x') v6 = true;
    else if (rest === 'att.r_k' || rest === 'att.x_r') v7 = true;
    else if (rest === 'att.time_mix_k') v5 = true;
  }
  if (L === 0) throw new WeightsFormatError(`${file}: no '${prefix}blocks.<i>.*' keys`);
  if (v6 === v7) {
    throw new WeightsFormatError(
      v6
        ? `${file}: has both RWKV-6 (att.time_maa_x) and RWKV-7 (att.r_k/att.x_r) keys`
        : `${file}: cannot tell the architecture: no att.time_maa_x (RWKV-6) nor att.r_k/att.x_r (RWKV-7) keys` +
            (v5 ? ' (att.time_mix_k suggests RWKV-4/5, which is not supported)' : ''),
    );
  }
  const arch = v6 ? 'rwkv6' : 'rwkv7';
  const [H, N] = dims(v6 ? 'blocks.0.att.time_faaaa' : 'blocks.0.att.r_k', 2, 'H and N') as [number, number];
  if (H * N !== C) {
    throw new WeightsFormatError(`${file}: '${prefix}blocks.0.att.${v6 ? 'time_faaaa' : 'r_k'}' is [${H}, ${N}] but H·N must equal C = ${C}`);
  }
  const F = dims('blocks.0.ffn.key.weight', 2, 'F')[0]!;
  const cfg: ModelConfig = {
    arch, prefix, L, C, H, N, F, V,
    loraMix: v6 ? dims('blocks.0.att.time_maa_w2', 3, 'R_m')[1]! : 0,
    loraDecay: v6 ? dims('blocks.0.att.time_decay_w1', 2, 'R_d')[1]! : 0,
    loraW: v7 ? dims('blocks.0.att.w1', 2, 'R_w')[1]! : 0,
    loraA: v7 ? dims('blocks.0.att.a1', 2, 'R_a')[1]! : 0,
    loraV: v7 && L > 1 ? dims('blocks.1.att.v1', 2, 'R_v')[1]! : 0,
    loraG: v7 ? dims('blocks.0.att.g1', 2, 'R_g')[1]! : 0,
    vision: 'none',
    projector: { kind: 'none' },
    weightDtype: t.get(prefix + 'emb.weight')!.dtype,
  };

  const problems: string[] = [];
  const check = (key: string, shape: number[]) => {
    const info = t.get(key);
    if (!info) problems.push(`missing '${key}' (expected shape ${fmt(shape)})`);
    else if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      problems.push(`'${key}' has shape ${fmt(info.shape)}, expected ${fmt(shape)}`);
    }
  };
  for (const e of expectedLmTensors(cfg)) {
    const key = prefix + e.name;
    check(key, e.shape);
    const info = t.get(key);
    if (info && !FLOAT_DTYPES.has(info.dtype)) {
      throw new UnsupportedDtypeError(`${file}: '${key}' is ${info.dtype}; LM weights must be BF16, F16 or F32`);
    }
  }

  // Vision side (keys are never prefixed).
  const keys = [...t.keys()];
  if (keys.some((k) => k.startsWith('vit.vision_model.'))) cfg.vision = 'clip';
  else if (keys.some((k) => k.startsWith('vit.dino_featurizer.'))) cfg.vision = 'samdinosiglip';
  if (t.has('proj.proj.weight')) {
    throw new WeightsFormatError(`${file}: has 'proj.proj.weight': the VisualRWKV-v7 HD projector variant is not supported`);
  }
  if (t.has('proj.gate.weight') || t.has('proj.o_proj.weight')) {
    const D = t.get('proj.gate.weight')?.shape[1] ?? t.get('proj.o_proj.weight')!.shape[1] ?? 0;
    cfg.projector = { kind: 'gated_v7', inDim: D };
    check('proj.gate.weight', [D, D]);
    check('proj.o_proj.weight', [C, D]);
    check('proj.ln_v.weight', [C]);
    check('proj.ln_v.bias', [C]);
  } else if (t.has('proj.weight')) {
    const D = t.get('proj.weight')!.shape[1] ?? 0;
    cfg.projector = { kind: 'linear', inDim: D };
    check('proj.weight', [C, D]);
  }

  if (problems.length) {
    const more = problems.length > 8 ? `; … and ${problems.length - 8} more` : '';
    throw new WeightsFormatError(
      `${file}: not a valid ${arch === 'rwkv6' ? 'RWKV-6' : 'RWKV-7'} checkpoint (L=${L}, C=${C}, H=${H}, N=${N}, F=${F}, V=${V}): ${problems.slice(0, 8).join('; ')}${more}`,
    );
  }
  return cfg;
}
