/**
 * A random but numerically sane RWKV-7 VisualRWKV checkpoint with the real 65536-token vocabulary, generated at
 * test time (no large binaries in the repo). Keys and shapes of spec §2.4 / §2.5, every tensor BF16 like the
 * released files. Values come from bench/synthetic.ts's seeded per-tensor streams (seed + key without prefix), so
 * the same LM weights appear in every layout.
 *
 * Scales follow the rwkv7_tiny fixture (MANIFEST §7, measured from its tensors): Linear ≈ N(0, s/√in) with
 * s = 1 (receptance, value, ffn key), 0.5 (key), 2 (output, ffn value), 3 (head); LoRA down 0.5/√C, up 0.25/√R
 * (g2: 2/√R); w0 ∈ [−7.2, −0.9] so decays exp(−e^{−½}σ(w0)) span ≈ 0.85 … 0.9995; a0 ∈ [−0.8, 0.4];
 * v0 ∈ [0.4, 1.05]; k_k ∈ [0.6, 0.87]; k_a ∈ [0.87, 1.15]; r_k ≈ N(0, 0.1); ln_x weight ∈ [0.55, 0.95];
 * token-shift mixes ∈ [0, 1]; LayerNorm weights ∈ [0.75, 1.25], biases ∈ [−0.1, 0.1].
 *
 * Two layouts:
 *  - 'visualrwkv': the VisualRWKV-v7.00 trainer's state dict — `rwkv.` + LM keys in its module-registration order,
 *    then the v7 projector `proj.gate.weight` [D, D], `proj.o_proj.weight` [C, D], `proj.ln_v.{weight,bias}` [C];
 *  - 'released': a bare BlinkDL RWKV-7 LM — no prefix, the released attention key order
 *    (w0, r_k, w1, w2, a1, a2, a0, g1, g2, v2, v1, v0, …) and the unused `blocks.0.att.v0/v1/v2` present
 *    (random, non-zero: a loader that used them would change the logits).
 *
 * @example
 * const files = writeSyntheticRwkv7(mkdtempSync(join(tmpdir(), 'rwkv7-')), { L: 2, C: 64, H: 2, V: 65536, D: 48 });
 * const engine = await VisualRwkvEngine.create({ model: files.pth, tokensPerImage: 16 });
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateBf16, type Init, type SyntheticTensorSpec } from '../../bench/synthetic';
import { writeSafetensors } from '../../src/weights/safetensors';
import type { HostTensor } from '../../src/weights/dtype';
import { buildPth, contiguousSpec, type TensorSpec } from './pickle';

export interface SyntheticRwkv7Options {
  /** Layers (≥ 2 so that the value residual is exercised). */
  L: number;
  /** Width n_embd. */
  C: number;
  /** Heads (default C / 64). */
  H?: number;
  /** Channel-mix width (default 4C, as released). */
  F?: number;
  /** Vocabulary size (65536 for the World tokenizer). */
  V: number;
  /** LoRA ranks (defaults 16 / 16 / 8 / 16). */
  R_w?: number;
  R_a?: number;
  R_v?: number;
  R_g?: number;
  /** Projector input width D (vision features); default 48. */
  D?: number;
  /** RNG seed (default 7). */
  seed?: number;
}

export interface Rwkv7Shapes {
  L: number;
  C: number;
  H: number;
  N: number;
  F: number;
  V: number;
  R_w: number;
  R_a: number;
  R_v: number;
  R_g: number;
  D: number;
}

export type Rwkv7Layout = 'visualrwkv' | 'released';

export function rwkv7Shapes(o: SyntheticRwkv7Options): Rwkv7Shapes {
  const H = o.H ?? o.C / 64;
  const s: Rwkv7Shapes = {
    L: o.L, C: o.C, H, N: o.C / H, F: o.F ?? 4 * o.C, V: o.V,
    R_w: o.R_w ?? 16, R_a: o.R_a ?? 16, R_v: o.R_v ?? 8, R_g: o.R_g ?? 16, D: o.D ?? 48,
  };
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`synthetic RWKV-7: ${k} must be a positive integer, got ${v}`);
  }
  return s;
}

const normal = (std: number): Init => ({ kind: 'normal', std });
const uniform = (lo: number, hi: number): Init => ({ kind: 'uniform', lo, hi });
const LN_W = uniform(0.75, 1.25);
const LN_B = uniform(-0.1, 0.1);
const MIX = uniform(0, 1);

/** Every LM tensor (names without prefix) in the given layout's key order. */
export function rwkv7TensorSpecs(s: Rwkv7Shapes, layout: Rwkv7Layout): SyntheticTensorSpec[] {
  const { L, C, H, N, F, V, R_w, R_a, R_v, R_g } = s;
  const out: SyntheticTensorSpec[] = [];
  const add = (name: string, shape: number[], init: Init) => out.push({ name, shape, init });
  const vec = [1, 1, C];
  add('emb.weight', [V, C], normal(0.5));
  for (let i = 0; i < L; i++) {
    const b = `blocks.${i}.`;
    const a = `${b}att.`;
    if (i === 0) {
      add(`${b}ln0.weight`, [C], LN_W);
      add(`${b}ln0.bias`, [C], LN_B);
    }
    add(`${b}ln1.weight`, [C], LN_W);
    add(`${b}ln1.bias`, [C], LN_B);
    add(`${b}ln2.weight`, [C], LN_W);
    add(`${b}ln2.bias`, [C], LN_B);
    for (const x of ['r', 'w', 'k', 'v', 'a', 'g']) add(`${a}x_${x}`, vec, MIX);
    const down = (x: string, R: number) => add(`${a}${x}1`, [C, R], normal(0.5 / Math.sqrt(C)));
    const up = (x: string, R: number, scale = 0.25) => add(`${a}${x}2`, [R, C], normal(scale / Math.sqrt(R)));
    const w0 = () => add(`${a}w0`, vec, uniform(-7.2, -0.9));
    const a0 = () => add(`${a}a0`, vec, uniform(-0.8, 0.4));
    const v0 = () => add(`${a}v0`, vec, uniform(0.4, 1.05));
    const rk = () => add(`${a}r_k`, [H, N], normal(0.1));
    const hasV = i > 0 || layout === 'released';
    if (layout === 'released') {
      // BlinkDL release order: w0, r_k, w1, w2, a1, a2, a0, g1, g2, v2, v1, v0 (layer 0 too, unused)
      w0(); rk(); down('w', R_w); up('w', R_w); down('a', R_a); up('a', R_a); a0();
      down('g', R_g); up('g', R_g, 2); up('v', R_v); down('v', R_v); v0();
    } else {
      // VisualRWKV-v7 order: w1, w2, w0, a1, a2, a0, v1, v2, v0 (layers ≥ 1), g1, g2, …, r_k
      down('w', R_w); up('w', R_w); w0(); down('a', R_a); up('a', R_a); a0();
      if (hasV) {
        down('v', R_v); up('v', R_v); v0();
      }
      down('g', R_g); up('g', R_g, 2);
    }
    add(`${a}k_k`, vec, uniform(0.6, 0.87));
    add(`${a}k_a`, vec, uniform(0.87, 1.15));
    if (layout === 'visualrwkv') rk();
    add(`${a}receptance.weight`, [C, C], normal(1 / Math.sqrt(C)));
    add(`${a}key.weight`, [C, C], normal(0.5 / Math.sqrt(C)));
    add(`${a}value.weight`, [C, C], normal(1 / Math.sqrt(C)));
    add(`${a}output.weight`, [C, C], normal(2 / Math.sqrt(C)));
    add(`${a}ln_x.weight`, [C], uniform(0.55, 0.95));
    add(`${a}ln_x.bias`, [C], LN_B);
    add(`${b}ffn.x_k`, vec, MIX);
    add(`${b}ffn.key.weight`, [F, C], normal(1 / Math.sqrt(C)));
    add(`${b}ffn.value.weight`, [C, F], normal(2 / Math.sqrt(F)));
  }
  add('ln_out.weight', [C], LN_W);
  add('ln_out.bias', [C], LN_B);
  add('head.weight', [V, C], normal(3 / Math.sqrt(C)));
  return out;
}

/** The v7.00 projector (MLPWithContextGating): gate [D, D], o_proj [C, D], ln_v [C]. */
export function projectorV7Specs(s: Rwkv7Shapes): SyntheticTensorSpec[] {
  const { C, D } = s;
  return [
    { name: 'proj.gate.weight', shape: [D, D], init: normal(1 / Math.sqrt(D)) },
    { name: 'proj.o_proj.weight', shape: [C, D], init: normal(1 / Math.sqrt(D)) },
    { name: 'proj.ln_v.weight', shape: [C], init: LN_W },
    { name: 'proj.ln_v.bias', shape: [C], init: LN_B },
  ];
}

/**
 * The checkpoint's tensors (checkpoint key → BF16 HostTensor) in file order: 'visualrwkv' = `rwkv.` LM + projector,
 * 'released' = bare LM only.
 */
export function syntheticRwkv7Tensors(o: SyntheticRwkv7Options, layout: Rwkv7Layout): Map<string, HostTensor> {
  const s = rwkv7Shapes(o);
  const seed = o.seed ?? 7;
  const out = new Map<string, HostTensor>();
  const put = (key: string, spec: SyntheticTensorSpec) => {
    const v = generateBf16(spec, seed);
    out.set(key, { dtype: 'BF16', shape: [...spec.shape], bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) });
  };
  const prefix = layout === 'visualrwkv' ? 'rwkv.' : '';
  for (const spec of rwkv7TensorSpecs(s, layout)) put(prefix + spec.name, spec);
  if (layout === 'visualrwkv') for (const spec of projectorV7Specs(s)) put(spec.name, spec);
  return out;
}

/** Safetensors bytes of a tensor map (keys in map order). */
export function tensorsToSafetensors(tensors: Map<string, HostTensor>): Uint8Array {
  const rec: Record<string, { dtype: HostTensor['dtype']; shape: number[]; data: Uint8Array }> = {};
  for (const [k, t] of tensors) rec[k] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
  return writeSafetensors(rec);
}

/** A torch.save-like `.pth` zip of a tensor map: one storage per tensor, contiguous strides, 64-byte aligned data. */
export function tensorsToPth(tensors: Map<string, HostTensor>, top = 'visualrwkv'): Uint8Array {
  const entries: [string, TensorSpec][] = [];
  const storages: Record<string, Uint8Array> = {};
  let n = 0;
  for (const [k, t] of tensors) {
    const key = String(n++);
    entries.push([k, contiguousSpec(key, t.dtype, t.shape)]);
    storages[key] = t.bytes;
  }
  return buildPth(entries, storages, { top });
}

export interface SyntheticRwkv7Files {
  shapes: Rwkv7Shapes;
  /** Full VisualRWKV-7 checkpoint (`rwkv.` + projector) as safetensors. */
  safetensors: string;
  /** The same tensors as a torch-style `.pth`. */
  pth: string;
  /** Bare LM, released key order, with the unused layer-0 v0/v1/v2, as `.pth`. */
  barePth: string;
}

/** Write the three files into `dir` (visualrwkv7.safetensors, visualrwkv7.pth, rwkv7_bare.pth). */
export function writeSyntheticRwkv7(dir: string, o: SyntheticRwkv7Options): SyntheticRwkv7Files {
  const full = syntheticRwkv7Tensors(o, 'visualrwkv');
  const bare = syntheticRwkv7Tensors(o, 'released');
  const files: SyntheticRwkv7Files = {
    shapes: rwkv7Shapes(o),
    safetensors: join(dir, 'visualrwkv7.safetensors'),
    pth: join(dir, 'visualrwkv7.pth'),
    barePth: join(dir, 'rwkv7_bare.pth'),
  };
  writeFileSync(files.safetensors, tensorsToSafetensors(full));
  writeFileSync(files.pth, tensorsToPth(full, 'visualrwkv7'));
  writeFileSync(files.barePth, tensorsToPth(bare, 'rwkv7_bare'));
  return files;
}

/** The options the RWKV-7 engine and e2e tests share: L=2, C=64, 2 heads of 32, F=256, real vocabulary, D=48. */
export const TEST_RWKV7: SyntheticRwkv7Options = Object.freeze({ L: 2, C: 64, H: 2, V: 65536, D: 48, seed: 7 });
