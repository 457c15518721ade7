/**
 * A random but numerically sane RWKV-6 language-model checkpoint for benchmarks (keys and shapes of spec §2.3,
 * every tensor BF16 like the released VisualRWKV files).
 *
 * Values are scaled like a real model so a forward pass stays finite: LayerNorm weights ≈ 1, biases ≈ 0, Linear
 * weights ≈ N(0, 1/√in) (Irwin–Hall), LoRA "up" matrices smaller, time_decay ramps −6…−1 over the channels (the training init),
 * time_faaaa small, time_maa_* in [0, 1].
 *
 * Each tensor is generated from its own seeded stream (seed + key), so its values do not depend on read order and a
 * tensor can be produced on demand. Two storages:
 *  - 'safetensors': the whole file is written in memory (writeSafetensors) and opened with openCheckpoint — the
 *    real loading path, for small models;
 *  - 'lazy': a Checkpoint whose TensorInfo.read() generates the tensor's bytes when asked (the real-shape model is
 *    ≈ 390 MB of BF16; this never holds more than one tensor).
 * Both give identical bytes for the same options.
 */
import { openCheckpoint, type Checkpoint, type TensorInfo } from '../src/weights/checkpoint';
import { bytesSource } from '../src/weights/source';
import { writeSafetensors } from '../src/weights/safetensors';
import type { HostTensor } from '../src/weights/dtype';

export interface SyntheticRwkv6Options {
  /** Layers. */
  L: number;
  /** Width n_embd; must be a multiple of 64 unless H is given. */
  C: number;
  /** Heads (default C / 64). */
  H?: number;
  /** Channel-mix width (default ⌊3.5·C/32⌋·32). */
  F?: number;
  /** Vocabulary size. */
  V: number;
  /** Mix-LoRA rank (default 32). */
  R_m?: number;
  /** Decay-LoRA rank (default 64). */
  R_d?: number;
  /** RNG seed (default 1). */
  seed?: number;
  /** Key prefix: '' (bare LM, default) or 'rwkv.' (full VisualRWKV layout). */
  prefix?: string;
  /** 'auto' (default): 'safetensors' up to 64 MiB of weights, 'lazy' beyond. */
  storage?: 'auto' | 'lazy' | 'safetensors';
  /** Checkpoint name for error messages. */
  name?: string;
}

/** Resolved sizes in the spec's letters. */
export interface Rwkv6Shapes {
  L: number;
  C: number;
  H: number;
  N: number;
  F: number;
  V: number;
  R_m: number;
  R_d: number;
}

/** How a tensor's values are drawn. */
export type Init =
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; lo: number; hi: number }
  /** time_decay of layer `layer`: −6 + 5·(n/(C−1))^(0.7 + 1.3·layer/(L−1)). */
  | { kind: 'decay'; layer: number; L: number }
  /** time_faaaa: 0.5·(1 − n/(C−1)) + ((n+1) mod 3 − 1)·0.1 — the training init, in [−0.1, 0.6]. */
  | { kind: 'faaaa' };

export interface SyntheticTensorSpec {
  /** Key without prefix, e.g. `blocks.0.att.key.weight`. */
  name: string;
  shape: number[];
  init: Init;
}

const SAFETENSORS_AUTO_LIMIT = 64 << 20;

export function rwkv6Shapes(o: SyntheticRwkv6Options): Rwkv6Shapes {
  const { L, C, V } = o;
  const H = o.H ?? C / 64;
  const F = o.F ?? Math.floor((3.5 * C) / 32) * 32;
  const R_m = o.R_m ?? 32;
  const R_d = o.R_d ?? 64;
  for (const [k, v] of Object.entries({ L, C, H, F, V, R_m, R_d })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`synthetic RWKV-6: ${k} must be a positive integer, got ${v}`);
  }
  if (C % H !== 0) throw new RangeError(`synthetic RWKV-6: C = ${C} is not a multiple of H = ${H}`);
  return { L, C, H, N: C / H, F, V, R_m, R_d };
}

/** Every LM tensor of an RWKV-6 checkpoint (spec §2.3), in VisualRWKV's module-registration order. */
export function rwkv6TensorSpecs(s: Rwkv6Shapes): SyntheticTensorSpec[] {
  const { L, C, H, N, F, V, R_m, R_d } = s;
  const out: SyntheticTensorSpec[] = [];
  const add = (name: string, shape: number[], init: Init) => out.push({ name, shape, init });
  const linear = (inDim: number, scale = 1): Init => ({ kind: 'normal', std: scale / Math.sqrt(inDim) });
  const lnW: Init = { kind: 'uniform', lo: 0.8, hi: 1.2 };
  const lnB: Init = { kind: 'uniform', lo: -0.05, hi: 0.05 };
  const mix: Init = { kind: 'uniform', lo: 0, hi: 1 };
  const vec = [1, 1, C];
  add('emb.weight', [V, C], { kind: 'normal', std: 1 });
  for (let i = 0; i < L; i++) {
    const b = `blocks.${i}.`;
    add(`${b}ln1.weight`, [C], lnW);
    add(`${b}ln1.bias`, [C], lnB);
    add(`${b}ln2.weight`, [C], lnW);
    add(`${b}ln2.bias`, [C], lnB);
    if (i === 0) {
      add(`${b}ln0.weight`, [C], lnW);
      add(`${b}ln0.bias`, [C], lnB);
    }
    for (const x of ['x', 'w', 'k', 'v', 'r', 'g']) add(`${b}att.time_maa_${x}`, vec, mix);
    add(`${b}att.time_maa_w1`, [C, 5 * R_m], linear(C));
    add(`${b}att.time_maa_w2`, [5, R_m, C], linear(R_m, 0.5));
    add(`${b}att.time_decay`, vec, { kind: 'decay', layer: i, L });
    add(`${b}att.time_decay_w1`, [C, R_d], linear(C));
    add(`${b}att.time_decay_w2`, [R_d, C], linear(R_d, 0.5));
    add(`${b}att.time_faaaa`, [H, N], { kind: 'faaaa' });
    for (const m of ['receptance', 'key', 'value', 'output', 'gate']) add(`${b}att.${m}.weight`, [C, C], linear(C));
    add(`${b}att.ln_x.weight`, [C], lnW);
    add(`${b}att.ln_x.bias`, [C], lnB);
    add(`${b}ffn.time_maa_k`, vec, mix);
    add(`${b}ffn.time_maa_r`, vec, mix);
    add(`${b}ffn.key.weight`, [F, C], linear(C));
    add(`${b}ffn.receptance.weight`, [C, C], linear(C));
    add(`${b}ffn.value.weight`, [C, F], linear(F));
  }
  add('ln_out.weight', [C], lnW);
  add('ln_out.bias', [C], lnB);
  add('head.weight', [V, C], linear(C));
  return out;
}

/**
 * Bytes of 16-bit matrices streamed per decoded token: every layer's Linear and LoRA matrices plus the head.
 * The embedding (one row per token) and the f32 vectors are left out.
 */
export function rwkv6MatrixBytesPerToken(s: Rwkv6Shapes): number {
  const { L, C, F, V, R_m, R_d } = s;
  const perLayer =
    6 * C * C + // att r, k, v, g, o + ffn receptance
    2 * C * F + // ffn key, value
    2 * 5 * R_m * C + // time_maa_w1, time_maa_w2
    2 * R_d * C; // time_decay_w1, time_decay_w2
  return 2 * (L * perLayer + V * C);
}

/** FNV-1a of a string, mixed with the seed: the stream id of one tensor. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b1);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** xorshift128 seeded through splitmix32; next() gives a uniform in [0, 1). */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const split = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split() | 1;
    this.b = split();
    this.c = split();
    this.d = split();
  }
  nextU32(): number {
    let t = this.d;
    const s = this.a;
    this.d = this.c;
    this.c = this.b;
    this.b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.a = t ^ s ^ (s >>> 19);
    return this.a >>> 0;
  }
  next(): number {
    return this.nextU32() / 4294967296;
  }
}

/**
 * Fill `out` with values start … start+out.length−1 of the tensor, continuing `rng`'s stream.
 * `n` is the tensor's element count.
 */
function fillF32(init: Init, rng: Rng, out: Float32Array, start: number, n: number): void {
  const m = out.length;
  switch (init.kind) {
    case 'normal': {
      // Irwin–Hall sum of four 16-bit uniforms (two u32 draws): mean 0, std 1 after scaling, tails cut at ±2√3σ.
      // Close enough to normal for a benchmark and ~4× faster than Box–Muller in JS.
      const mean = 4 * 32767.5;
      const scale = init.std / Math.sqrt((4 * (65536 * 65536 - 1)) / 12);
      for (let i = 0; i < m; i++) {
        const a = rng.nextU32();
        const b = rng.nextU32();
        out[i] = ((a & 0xffff) + (a >>> 16) + (b & 0xffff) + (b >>> 16) - mean) * scale;
      }
      return;
    }
    case 'uniform': {
      const w = init.hi - init.lo;
      for (let i = 0; i < m; i++) out[i] = init.lo + w * rng.next();
      return;
    }
    case 'decay': {
      const p = 0.7 + (1.3 * init.layer) / Math.max(1, init.L - 1);
      for (let i = 0; i < m; i++) out[i] = -6 + 5 * ((start + i) / Math.max(1, n - 1)) ** p;
      return;
    }
    case 'faaaa': {
      for (let i = 0; i < m; i++) {
        const j = start + i;
        out[i] = 0.5 * (1 - j / Math.max(1, n - 1)) + (((j + 1) % 3) - 1) * 0.1;
      }
      return;
    }
  }
}

/** Round finite f32 values to bf16 bits (nearest even) into `out`. */
function toBf16(f: Float32Array, out: Uint16Array): void {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
}

/** One tensor's BF16 values, deterministic in (seed, name); generated in 1 Mi-value chunks (peak ≈ 2 bytes/value). */
export function generateBf16(spec: SyntheticTensorSpec, seed: number): Uint16Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(streamSeed(seed, spec.name));
  const out = new Uint16Array(n);
  const CHUNK = 1 << 20;
  const f = new Float32Array(Math.min(n, CHUNK));
  for (let s = 0; s < n; s += CHUNK) {
    const m = Math.min(CHUNK, n - s);
    const part = m === f.length ? f : f.subarray(0, m);
    fillF32(spec.init, rng, part, s, n);
    toBf16(part, out.subarray(s, s + m));
  }
  return out;
}

/** Total BF16 bytes of the synthetic checkpoint. */
export function syntheticRwkv6Bytes(o: SyntheticRwkv6Options): number {
  return rwkv6TensorSpecs(rwkv6Shapes(o)).reduce((a, s) => a + 2 * s.shape.reduce((x, y) => x * y, 1), 0);
}

/** The whole checkpoint as safetensors bytes (small models only: it is one buffer). */
export function syntheticRwkv6Safetensors(o: SyntheticRwkv6Options): Uint8Array {
  const seed = o.seed ?? 1;
  const prefix = o.prefix ?? '';
  const tensors: Record<string, { dtype: 'BF16'; shape: number[]; data: Uint16Array }> = {};
  for (const spec of rwkv6TensorSpecs(rwkv6Shapes(o))) {
    tensors[prefix + spec.name] = { dtype: 'BF16', shape: spec.shape, data: generateBf16(spec, seed) };
  }
  return writeSafetensors(tensors);
}

/**
 * A synthetic RWKV-6 checkpoint ready for RwkvModel.load / readModelConfig.
 *
 * @example
 * const ckpt = await syntheticRwkv6Checkpoint({ L: 12, C: 768, V: 65536, seed: 1 });
 * const model = await RwkvModel.load(gpu, ckpt);
 */
export async function syntheticRwkv6Checkpoint(o: SyntheticRwkv6Options): Promise<Checkpoint> {
  const shapes = rwkv6Shapes(o);
  const name = o.name ?? `synthetic-rwkv6-L${shapes.L}-C${shapes.C}-V${shapes.V}`;
  let storage = o.storage ?? 'auto';
  if (storage === 'auto') storage = syntheticRwkv6Bytes(o) <= SAFETENSORS_AUTO_LIMIT ? 'safetensors' : 'lazy';
  if (storage === 'safetensors') return openCheckpoint(bytesSource(syntheticRwkv6Safetensors(o), name));

  const seed = o.seed ?? 1;
  const prefix = o.prefix ?? '';
  const tensors = new Map<string, TensorInfo>();
  for (const spec of rwkv6TensorSpecs(shapes)) {
    const key = prefix + spec.name;
    const shape = [...spec.shape];
    const byteLength = 2 * shape.reduce((a, b) => a * b, 1);
    tensors.set(key, {
      name: key,
      dtype: 'BF16',
      shape,
      byteLength,
      read: async (): Promise<HostTensor> => {
        const v = generateBf16(spec, seed);
        return { dtype: 'BF16', shape: [...shape], bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
      },
    });
  }
  return { name, format: 'safetensors', tensors };
}

/** A seeded uniform generator on [0, 1) (the same xorshift128 as the tensors), for benchmark inputs. */
export function seededUniform(seed: number): () => number {
  const r = new Rng(streamSeed(seed, 'inputs'));
  return () => r.next();
}
