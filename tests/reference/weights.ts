/**
 * Fixture checkpoints as float64 tensors, the model config read from their shapes (spec §2.6), and the
 * per-layer recurrent state (spec §3.2 / §4.2).
 *
 * @example
 *   const m = loadReferenceModel('models/rwkv6_tiny');   // relative to tests/fixtures
 *   m.config;                                           // { arch: 6, L: 4, C: 128, H: 2, N: 64, V: 1024, F: 448 }
 *   m.w('blocks.0.att.key.weight');                     // Float64Array [C*C], PyTorch [out, in] layout
 *   const s = createRefState(m);                        // zeros
 */
import { loadTensors } from '../helpers/fixtures';
import { toF32, type HostTensor } from '../../src/weights/dtype';
import type { NormParams, Vec } from './common';

export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

/** Sizes in the spec's letters. */
export interface RefConfig {
  /** 6 = RWKV-6 "Finch" (x060), 7 = RWKV-7 "Goose" (x070); detected from `time_faaaa` vs `r_k`. */
  arch: 6 | 7;
  /** layers */
  L: number;
  /** n_embd */
  C: number;
  /** heads */
  H: number;
  /** head size */
  N: number;
  /** vocabulary */
  V: number;
  /** channel-mix hidden size (dim_ffn) */
  F: number;
}

export interface RefModel {
  config: RefConfig;
  /** All checkpoint tensors, the `rwkv.` prefix stripped (vision keys such as `proj.weight` kept as is). */
  tensors: Map<string, RefTensor>;
  /** Data of a tensor by its (prefix-stripped) checkpoint name; throws if absent. */
  w(name: string): Vec;
  /** Whether the checkpoint has that tensor. */
  has(name: string): boolean;
  /** {weight, bias} of a norm, e.g. `norm('blocks.0.ln0')`. */
  norm(prefix: string): NormParams;
}

/** One layer's recurrent state (the three ChatRWKV state entries 3i+0, 3i+1, 3i+2). */
export interface RefLayerState {
  /** [C] ln1 output of the last processed row (time-mix token shift). */
  att_x: Vec;
  /** [H*N*N] WKV state; v6: [head][key][value], v7: [head][value][key] (MANIFEST §3 orientation). */
  wkv: Vec;
  /** [C] ln2 output of the last processed row (channel-mix token shift). */
  ffn_x: Vec;
}

export interface RefState {
  layers: RefLayerState[];
}

/** Loads `<modelDir>/visualrwkv.safetensors` (path relative to tests/fixtures) as float64. */
export function loadRefTensors(modelDir: string): Map<string, RefTensor> {
  return refTensorsFrom(loadTensors(`${modelDir}/visualrwkv.safetensors`));
}

/** Checkpoint tensors (any source, e.g. a synthetic checkpoint) as float64, the `rwkv.` prefix stripped. */
export function refTensorsFrom(raw: Map<string, HostTensor>): Map<string, RefTensor> {
  const out = new Map<string, RefTensor>();
  for (const [name, t] of raw) {
    const key = name.startsWith('rwkv.') ? name.slice('rwkv.'.length) : name;
    out.set(key, { shape: t.shape, data: Float64Array.from(toF32(t)) }); // bf16 → f32 → f64 is exact
  }
  return out;
}

/** Config from tensor shapes (spec §2.6, MANIFEST §2). */
export function configFromShapes(t: Map<string, RefTensor>): RefConfig {
  const shape = (k: string): number[] => {
    const x = t.get(k);
    if (!x) throw new Error(`checkpoint has no ${k}`);
    return x.shape;
  };
  const arch = t.has('blocks.0.att.time_faaaa') ? 6 : t.has('blocks.0.att.r_k') ? 7 : 0;
  if (arch === 0) throw new Error('neither blocks.0.att.time_faaaa (v6) nor blocks.0.att.r_k (v7) found');
  const [H, N] = shape(arch === 6 ? 'blocks.0.att.time_faaaa' : 'blocks.0.att.r_k') as [number, number];
  const [V, C] = shape('emb.weight') as [number, number];
  let L = 0;
  while (t.has(`blocks.${L}.ln1.weight`)) L++;
  const F = shape('blocks.0.ffn.key.weight')[0]!;
  return { arch, L, C, H, N, V, F };
}

/** Loads a fixture model, e.g. `loadReferenceModel('models/rwkv7_tiny')`. */
export function loadReferenceModel(modelDir: string): RefModel {
  return referenceModelFrom(loadRefTensors(modelDir), modelDir);
}

/**
 * A reference model from float64 tensors (`refTensorsFrom`), e.g. of a checkpoint generated at test time.
 * @example const m = referenceModelFrom(refTensorsFrom(parseSafetensors(bytes)), 'synthetic');
 */
export function referenceModelFrom(tensors: Map<string, RefTensor>, name: string): RefModel {
  const config = configFromShapes(tensors);
  const w = (key: string): Vec => {
    const x = tensors.get(key);
    if (!x) throw new Error(`${name}: no tensor ${key}`);
    return x.data;
  };
  return {
    config,
    tensors,
    w,
    has: (name) => tensors.has(name),
    norm: (prefix) => ({ weight: w(`${prefix}.weight`), bias: w(`${prefix}.bias`) }),
  };
}

/** The zero state (start of a sequence). */
export function createRefState(model: RefModel): RefState {
  const { L, C, H, N } = model.config;
  return {
    layers: Array.from({ length: L }, () => ({
      att_x: new Float64Array(C),
      wkv: new Float64Array(H * N * N),
      ffn_x: new Float64Array(C),
    })),
  };
}

/** Deep copy (snapshot) of a state. */
export function cloneRefState(state: RefState): RefState {
  return {
    layers: state.layers.map((s) => ({ att_x: s.att_x.slice(), wkv: s.wkv.slice(), ffn_x: s.ffn_x.slice() })),
  };
}
