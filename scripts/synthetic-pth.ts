/**
 * A full-size synthetic VisualRWKV checkpoint (RWKV-6 or RWKV-7) written STREAMING to disk as a PyTorch `.pth`
 * (spec §2.2–§2.5): a zip of stored members — `<top>/data.pkl` (state-dict pickle, protocol 2, BFloat16Storage),
 * `<top>/byteorder`, one `<top>/data/<n>` per tensor, `<top>/version` — with torch's 64-byte data alignment and zip64
 * records wherever an offset or size passes 4 GiB (so 7B-shaped files of ~16 GB work too).
 *
 * RWKV-6 (`--arch rwkv6`, the default): `rwkv.*` (RWKV-6 LM, spec §2.3), `vit.*` (an HF CLIPVisionModel
 * ViT-L/14-336 key set, spec §2.5; ~303 M parameters the engine must skip) and `proj.weight` [C, 1024]. Values:
 * `rwkv.*` come from bench/synthetic.ts (seeded per tensor name, numerically sane), so they are byte-identical to
 * `syntheticRwkv6Checkpoint({ ...shapes, seed, prefix: 'rwkv.' })`; `vit.*` / `proj.weight` are seeded the same way.
 *
 * RWKV-7 (`--arch rwkv7`): the LM of tests/helpers/synthetic7.ts (spec §2.4; same generator, same per-name seeding,
 * so the tensors are byte-identical to `syntheticRwkv7Tensors({ ...shapes, seed }, layout)`) in one of two layouts:
 *  - 'visualrwkv' (VisualRWKV-7.00): `rwkv.` + LM keys in module-registration order, then (--vit on, default) an
 *    approximation of the SAM + DINOv2 + SigLIP tower's keys (`vit.dino_featurizer.*`, `vit.siglip_featurizer.*`,
 *    `vit.sam_featurizer.*`, shapes of spec §2.5; ~0.8 B parameters the engine must skip), then the v7 projector
 *    `proj.gate.weight` [D, D], `proj.o_proj.weight` [C, D], `proj.ln_v.*` [C] (D = 3200 = 1024 + 1152 + 1024);
 *  - 'released' (a bare BlinkDL RWKV-7 World base model): no prefix, the released attention key order, the unused
 *    `blocks.0.att.v0/v1/v2` present, no vision keys.
 *
 * Memory: only one tensor at a time is held (the largest, emb/head, is V·C·2 bytes: 256 MiB at 1B6, 512 MiB at 7B);
 * tests/helpers/zip.ts's ZipBuilder gives its local header (CRC-32 computed) and it is written with its data. The
 * central directory (~100 B per member) is the only thing kept until the end.
 *
 * Usage (built to dist/tools by `npm run build:tools`):
 *   node scripts/tool.mjs synthetic-pth --out /tmp/big/visualrwkv6-1b6.pth [--preset 1b6|3b|7b]
 *        [--L N] [--C N] [--V N] [--F N] [--H N] [--R_m N] [--R_d N] [--seed N] [--vit on|off] [--top NAME]
 *   node scripts/tool.mjs synthetic-pth --arch rwkv7 --out /tmp/big/visualrwkv7-1b5.pth
 *        [--preset 0b1|0b4|1b5|rwkv7-world-0b1|rwkv7-world-0b4|rwkv7-world-1b5] [--layout visualrwkv|released]
 *        [--L N] [--C N] [--V N] [--F N] [--H N] [--R_w N] [--R_a N] [--R_v N] [--R_g N] [--D N] [--seed N]
 *        [--vit on|off] [--top NAME]
 * A preset gives the released model's shapes (spec §2.6); explicit flags override it. An RWKV-7 preset implies
 * --arch rwkv7. Without a preset, --L, --C and --V are required; RWKV-6: F = ⌊3.5·C/32⌋·32, H = C/64,
 * R_m/R_d = 32/64, or 64/128 when C ≥ 4096; RWKV-7: F = 4C, H = C/64, LoRA ranks from the official "suggestion"
 * formulas (rwkv7LoraRanks), layout 'visualrwkv', D = 3200.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { generateBf16, rwkv6Shapes, rwkv6TensorSpecs, type Init, type Rwkv6Shapes, type SyntheticTensorSpec } from '../bench/synthetic';
import { projectorV7Specs, rwkv7Shapes, rwkv7TensorSpecs, type Rwkv7Layout, type Rwkv7Shapes } from '../tests/helpers/synthetic7';
import { contiguousSpec, stateDictPickle, type TensorSpec } from '../tests/helpers/pickle';
import { ZipBuilder, type SparseFile } from '../tests/helpers/zip';

// ---------------------------------------------------------------------------------------------------------------
// Tensor list

/** One tensor of the file: its full key and how to generate it (`spec.name` seeds its RNG stream). */
export interface PthTensor {
  key: string;
  spec: SyntheticTensorSpec;
}

/** Released VisualRWKV-6 LM shapes (spec §2.6). */
export const PRESETS: Record<string, { L: number; C: number; V: number; F: number; R_m: number; R_d: number }> = {
  '1b6': { L: 24, C: 2048, V: 65536, F: 7168, R_m: 32, R_d: 64 },
  '3b': { L: 32, C: 2560, V: 65536, F: 8960, R_m: 32, R_d: 64 },
  '7b': { L: 32, C: 4096, V: 65536, F: 14336, R_m: 64, R_d: 128 },
};

/** CLIP ViT-L/14-336 as HF CLIPVisionModel names it (spec §2.5): width 1024, MLP 4096, 24 layers, 577 positions. */
export function clipVitL336Specs(): SyntheticTensorSpec[] {
  const D = 1024;
  const I = 4096;
  const out: SyntheticTensorSpec[] = [];
  const w: Init = { kind: 'normal', std: 0.02 };
  const lnW: Init = { kind: 'uniform', lo: 0.8, hi: 1.2 };
  const bias: Init = { kind: 'uniform', lo: -0.02, hi: 0.02 };
  const add = (name: string, shape: number[], init: Init) => out.push({ name: `vision_model.${name}`, shape, init });
  add('embeddings.class_embedding', [D], w);
  add('embeddings.patch_embedding.weight', [D, 3, 14, 14], w); // no bias
  add('embeddings.position_embedding.weight', [577, D], w); // (336/14)² + 1; no position_ids buffer (spec §2.2)
  add('pre_layrnorm.weight', [D], lnW); // sic: HF's spelling
  add('pre_layrnorm.bias', [D], bias);
  for (let i = 0; i < 24; i++) {
    const l = `encoder.layers.${i}.`;
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) {
      add(`${l}self_attn.${p}.weight`, [D, D], w);
      add(`${l}self_attn.${p}.bias`, [D], bias);
    }
    add(`${l}layer_norm1.weight`, [D], lnW);
    add(`${l}layer_norm1.bias`, [D], bias);
    add(`${l}mlp.fc1.weight`, [I, D], w);
    add(`${l}mlp.fc1.bias`, [I], bias);
    add(`${l}mlp.fc2.weight`, [D, I], w);
    add(`${l}mlp.fc2.bias`, [D], bias);
    add(`${l}layer_norm2.weight`, [D], lnW);
    add(`${l}layer_norm2.bias`, [D], bias);
  }
  add('post_layernorm.weight', [D], lnW);
  add('post_layernorm.bias', [D], bias);
  return out;
}

/** Every tensor of a full VisualRWKV-6 checkpoint, in module order: rwkv.*, vit.* (optional), proj.weight. */
export function visualRwkv6Tensors(s: Rwkv6Shapes, vit: boolean): PthTensor[] {
  const out: PthTensor[] = rwkv6TensorSpecs(s).map((spec) => ({ key: `rwkv.${spec.name}`, spec }));
  if (vit) for (const spec of clipVitL336Specs()) out.push({ key: `vit.${spec.name}`, spec: { ...spec, name: `vit.${spec.name}` } });
  out.push({ key: 'proj.weight', spec: { name: 'proj.weight', shape: [s.C, 1024], init: { kind: 'normal', std: 1 / 32 } } });
  return out;
}

/**
 * RWKV-7 LoRA ranks of the official `RWKV_Tmix_x070.__init__` "suggestion" formulas that the released x070 World
 * models (and so VisualRWKV-7.00, which loads them strictly) were trained with (spec §2.6):
 * R_w = R_a = max(32, round(1.8·√C / 32)·32), R_v = max(32, round(1.3·√C / 32)·32),
 * R_g = max(32, round(0.6·C^0.8 / 32)·32) (Python's round; no ties occur for multiples of 64).
 * C = 768 → 64/64/32/128, 1024 → 64/64/32/160, 2048 → 96/96/64/256.
 */
export function rwkv7LoraRanks(C: number): { R_w: number; R_a: number; R_v: number; R_g: number } {
  const r = (x: number) => Math.max(32, Math.round(x / 32) * 32);
  return { R_w: r(1.8 * Math.sqrt(C)), R_a: r(1.8 * Math.sqrt(C)), R_v: r(1.3 * Math.sqrt(C)), R_g: r(0.6 * C ** 0.8) };
}

/** Shapes of an RWKV-7 preset (F = 4C, H = C/64 as released). */
export interface Rwkv7Preset {
  layout: Rwkv7Layout;
  L: number;
  C: number;
  V: number;
  F: number;
  R_w: number;
  R_a: number;
  R_v: number;
  R_g: number;
}

const v7 = (layout: Rwkv7Layout, L: number, C: number, R_w: number, R_a: number, R_v: number, R_g: number): Rwkv7Preset => ({
  layout, L, C, V: 65536, F: 4 * C, R_w, R_a, R_v, R_g,
});

/**
 * The released RWKV-7 line (spec §2.1, §2.6): VisualRWKV-7.00 0B1 / 0B4 / 1B5 (`rwkv.` + SamDinoSigLIP tower +
 * v7 projector) and their RWKV-7 World base models (bare, released key order). Ranks = rwkv7LoraRanks(C): the
 * spec's table, where the 0B4 gate rank 160 is marked "formula; verify".
 */
export const PRESETS7: Record<string, Rwkv7Preset> = {
  '0b1': v7('visualrwkv', 12, 768, 64, 64, 32, 128),
  '0b4': v7('visualrwkv', 24, 1024, 64, 64, 32, 160),
  '1b5': v7('visualrwkv', 24, 2048, 96, 96, 64, 256),
  'rwkv7-world-0b1': v7('released', 12, 768, 64, 64, 32, 128),
  'rwkv7-world-0b4': v7('released', 24, 1024, 64, 64, 32, 160),
  'rwkv7-world-1b5': v7('released', 24, 2048, 96, 96, 64, 256),
};

/** The v7.00 projector's input width: DINOv2-L (1024) | SigLIP-SO400M (1152) | SAM-B after space-to-depth (1024). */
export const V7_VISION_DIM = 3200;

/**
 * An approximation of the VisualRWKV-7.00 SAM + DINOv2 + SigLIP tower's state dict (spec §2.5): the timm
 * DINOv2-L/14-reg4 at 448 (`dino_featurizer`), timm SigLIP-SO400M/14 at 448 with its unused MAP head
 * (`siglip_featurizer`) and the SAM ViT-B image encoder with its neck (`sam_featurizer`), in module order.
 * Names are without the `vit.` prefix. The engine ignores all of it; it is here for the file's size and key set.
 */
export function samDinoSiglipSpecs(): SyntheticTensorSpec[] {
  const out: SyntheticTensorSpec[] = [];
  const w: Init = { kind: 'normal', std: 0.02 };
  const lnW: Init = { kind: 'uniform', lo: 0.8, hi: 1.2 };
  const bias: Init = { kind: 'uniform', lo: -0.02, hi: 0.02 };
  const gamma: Init = { kind: 'uniform', lo: 0.05, hi: 0.15 };
  const add = (name: string, shape: number[], init: Init) => out.push({ name, shape, init });
  const linear = (p: string, o: number, i: number) => {
    add(`${p}.weight`, [o, i], w);
    add(`${p}.bias`, [o], bias);
  };
  const norm = (p: string, D: number) => {
    add(`${p}.weight`, [D], lnW);
    add(`${p}.bias`, [D], bias);
  };
  /** A timm pre-norm ViT block (norm1, attn.qkv, attn.proj, [ls1], norm2, mlp.fc1, mlp.fc2, [ls2]). */
  const timmBlock = (p: string, D: number, I: number, layerScale: boolean) => {
    norm(`${p}.norm1`, D);
    linear(`${p}.attn.qkv`, 3 * D, D);
    linear(`${p}.attn.proj`, D, D);
    if (layerScale) add(`${p}.ls1.gamma`, [D], gamma);
    norm(`${p}.norm2`, D);
    linear(`${p}.mlp.fc1`, I, D);
    linear(`${p}.mlp.fc2`, D, I);
    if (layerScale) add(`${p}.ls2.gamma`, [D], gamma);
  };
  // DINOv2-L/14 with 4 registers at 448: 32×32 patches, patch-only position embedding
  const dino = 'dino_featurizer';
  add(`${dino}.cls_token`, [1, 1, 1024], w);
  add(`${dino}.reg_token`, [1, 4, 1024], w);
  add(`${dino}.pos_embed`, [1, 1024, 1024], w);
  add(`${dino}.patch_embed.proj.weight`, [1024, 3, 14, 14], w);
  add(`${dino}.patch_embed.proj.bias`, [1024], bias);
  for (let i = 0; i < 24; i++) timmBlock(`${dino}.blocks.${i}`, 1024, 4096, true);
  norm(`${dino}.norm`, 1024);
  // SigLIP-SO400M/14 at 448: no class token, 27 blocks of width 1152, MLP 4304, MAP head (attn_pool)
  const sig = 'siglip_featurizer';
  add(`${sig}.pos_embed`, [1, 1024, 1152], w);
  add(`${sig}.patch_embed.proj.weight`, [1152, 3, 14, 14], w);
  add(`${sig}.patch_embed.proj.bias`, [1152], bias);
  for (let i = 0; i < 27; i++) timmBlock(`${sig}.blocks.${i}`, 1152, 4304, false);
  norm(`${sig}.norm`, 1152);
  add(`${sig}.attn_pool.latent`, [1, 1, 1152], w);
  linear(`${sig}.attn_pool.q`, 1152, 1152);
  linear(`${sig}.attn_pool.kv`, 2 * 1152, 1152);
  linear(`${sig}.attn_pool.proj`, 1152, 1152);
  norm(`${sig}.attn_pool.norm`, 1152);
  linear(`${sig}.attn_pool.mlp.fc1`, 4304, 1152);
  linear(`${sig}.attn_pool.mlp.fc2`, 1152, 4304);
  // SAM ViT-B image encoder: 64×64 patches of 16, windowed blocks (rel-pos 27) except global 2, 5, 8, 11 (127)
  const sam = 'sam_featurizer';
  add(`${sam}.pos_embed`, [1, 64, 64, 768], w);
  add(`${sam}.patch_embed.proj.weight`, [768, 3, 16, 16], w);
  add(`${sam}.patch_embed.proj.bias`, [768], bias);
  for (let i = 0; i < 12; i++) {
    const p = `${sam}.blocks.${i}`;
    const rel = i % 3 === 2 ? 127 : 27;
    norm(`${p}.norm1`, 768);
    add(`${p}.attn.rel_pos_h`, [rel, 64], w);
    add(`${p}.attn.rel_pos_w`, [rel, 64], w);
    linear(`${p}.attn.qkv`, 3 * 768, 768);
    linear(`${p}.attn.proj`, 768, 768);
    norm(`${p}.norm2`, 768);
    linear(`${p}.mlp.lin1`, 3072, 768);
    linear(`${p}.mlp.lin2`, 768, 3072);
  }
  add(`${sam}.neck.0.weight`, [256, 768, 1, 1], w);
  norm(`${sam}.neck.1`, 256);
  add(`${sam}.neck.2.weight`, [256, 256, 3, 3], w);
  norm(`${sam}.neck.3`, 256);
  return out;
}

/**
 * Every tensor of an RWKV-7 checkpoint in file order. 'visualrwkv': `rwkv.*`, vit.* (optional), proj.*;
 * 'released': the bare LM. LM and projector specs are synthetic7.ts's (names = keys without `rwkv.`).
 */
export function visualRwkv7Tensors(s: Rwkv7Shapes, layout: Rwkv7Layout, vit: boolean): PthTensor[] {
  const prefix = layout === 'visualrwkv' ? 'rwkv.' : '';
  const out: PthTensor[] = rwkv7TensorSpecs(s, layout).map((spec) => ({ key: prefix + spec.name, spec }));
  if (layout === 'released') return out;
  if (vit) for (const spec of samDinoSiglipSpecs()) out.push({ key: `vit.${spec.name}`, spec: { ...spec, name: `vit.${spec.name}` } });
  for (const spec of projectorV7Specs(s)) out.push({ key: spec.name, spec });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming: the zip of tests/helpers/zip.ts (stored members, torch's 64-byte alignment, zip64 records), member by
// member straight to the file

/** Write each segment at its offset (ZipBuilder's segments follow one another: the file is written in order). */
async function writeSegments(fh: FileHandle, segments: SparseFile['segments']): Promise<void> {
  for (const { offset, bytes } of segments) {
    for (let off = 0; off < bytes.length; ) {
      const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, offset + off);
      if (bytesWritten <= 0) throw new Error('synthetic-pth: write made no progress');
      off += bytesWritten;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The checkpoint

export interface SyntheticPthOptions {
  /** 'rwkv6' (default) or 'rwkv7'. */
  arch?: 'rwkv6' | 'rwkv7';
  L: number;
  C: number;
  V: number;
  F?: number;
  H?: number;
  /** RWKV-6 LoRA ranks. */
  R_m?: number;
  R_d?: number;
  /** RWKV-7 LoRA ranks (default rwkv7LoraRanks(C)). */
  R_w?: number;
  R_a?: number;
  R_v?: number;
  R_g?: number;
  /** RWKV-7 layout (default 'visualrwkv'). */
  layout?: Rwkv7Layout;
  /** RWKV-7 projector input width (default V7_VISION_DIM = 3200). */
  D?: number;
  seed?: number;
  /**
   * Include the vision tower's vit.* tensors (default true, as in the released files; for RWKV-7 the approximate
   * SamDinoSigLIP tower, 'visualrwkv' layout only).
   */
  vit?: boolean;
  out: string;
  /** Folder inside the zip (torch uses the file's stem). */
  top?: string;
  /** Called after each tensor is written. */
  onTensor?: (done: number, total: number, bytes: number, key: string) => void;
}

export interface SyntheticPthResult {
  arch: 'rwkv6' | 'rwkv7';
  shapes: Rwkv6Shapes | Rwkv7Shapes;
  /** RWKV-7 only. */
  layout?: Rwkv7Layout;
  tensors: number;
  /** Tensor bytes (all members except data.pkl, byteorder, version). */
  tensorBytes: number;
  fileBytes: number;
}

/** The shapes and tensor list of a checkpoint (no data). */
export function syntheticPthTensors(o: Omit<SyntheticPthOptions, 'out'>): Omit<SyntheticPthResult, 'tensors' | 'tensorBytes' | 'fileBytes'> & { list: PthTensor[] } {
  if ((o.arch ?? 'rwkv6') === 'rwkv6') {
    for (const k of ['R_w', 'R_a', 'R_v', 'R_g', 'D', 'layout'] as const) {
      if (o[k] !== undefined) throw new Error(`${k} is an RWKV-7 option (arch rwkv6)`);
    }
    const shapes = rwkv6Shapes({
      L: o.L, C: o.C, V: o.V, F: o.F, H: o.H,
      R_m: o.R_m ?? (o.C >= 4096 ? 64 : 32),
      R_d: o.R_d ?? (o.C >= 4096 ? 128 : 64),
    });
    return { arch: 'rwkv6', shapes, list: visualRwkv6Tensors(shapes, o.vit ?? true) };
  }
  if (o.R_m !== undefined || o.R_d !== undefined) throw new Error('R_m / R_d are RWKV-6 options (arch rwkv7)');
  const layout = o.layout ?? 'visualrwkv';
  if (layout === 'released' && o.vit) throw new Error("the 'released' RWKV-7 layout is a bare LM: it has no vit.* tensors");
  if (layout === 'released' && o.D !== undefined) throw new Error("the 'released' RWKV-7 layout is a bare LM: it has no projector (D)");
  const H = o.H ?? o.C / 64;
  if (!Number.isInteger(H) || o.C % H !== 0) throw new Error(`C = ${o.C} is not a multiple of H = ${H} (give --H)`);
  const ranks = rwkv7LoraRanks(o.C);
  const shapes = rwkv7Shapes({
    L: o.L, C: o.C, V: o.V, F: o.F, H,
    R_w: o.R_w ?? ranks.R_w, R_a: o.R_a ?? ranks.R_a, R_v: o.R_v ?? ranks.R_v, R_g: o.R_g ?? ranks.R_g,
    D: o.D ?? V7_VISION_DIM,
  });
  return { arch: 'rwkv7', layout, shapes, list: visualRwkv7Tensors(shapes, layout, layout === 'visualrwkv' && (o.vit ?? true)) };
}

/** Write the checkpoint, one tensor in memory at a time. */
export async function writeSyntheticPth(o: SyntheticPthOptions): Promise<SyntheticPthResult> {
  const { list, ...what } = syntheticPthTensors(o);
  const seed = o.seed ?? 1;
  const top = o.top ?? (basename(o.out).replace(/\.[^.]*$/, '') || 'archive');
  // Storages are keyed '0', '1', ... in pickling order, one per tensor, each a whole contiguous BFloat16Storage.
  const entries: [string, TensorSpec][] = list.map((t, i) => [t.key, contiguousSpec(String(i), 'BF16', t.spec.shape)]);
  const fh = await open(o.out, 'w');
  try {
    const zip = new ZipBuilder();
    const add = (name: string, data: Uint8Array) => writeSegments(fh, zip.add({ name, data }));
    const enc = new TextEncoder();
    await add(`${top}/data.pkl`, stateDictPickle(entries, { protocol: 2 }));
    await add(`${top}/byteorder`, enc.encode('little'));
    let tensorBytes = 0;
    for (let i = 0; i < list.length; i++) {
      const t = list[i]!;
      const v = generateBf16(t.spec, seed);
      await add(`${top}/data/${i}`, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      tensorBytes += v.byteLength;
      o.onTensor?.(i + 1, list.length, tensorBytes, t.key);
    }
    await add(`${top}/version`, enc.encode('3\n'));
    await writeSegments(fh, zip.finish());
    return { ...what, tensors: list.length, tensorBytes, fileBytes: zip.size };
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Command line

const USAGE = `usage: node scripts/tool.mjs synthetic-pth --out <file.pth> [--preset 1b6|3b|7b] [--L N] [--C N] [--V N]
       [--F N] [--H N] [--R_m N] [--R_d N] [--seed N] [--vit on|off] [--top NAME]
   or: node scripts/tool.mjs synthetic-pth --arch rwkv7 --out <file.pth>
       [--preset 0b1|0b4|1b5|rwkv7-world-0b1|rwkv7-world-0b4|rwkv7-world-1b5] [--layout visualrwkv|released]
       [--L N] [--C N] [--V N] [--F N] [--H N] [--R_w N] [--R_a N] [--R_v N] [--R_g N] [--D N] [--seed N]
       [--vit on|off] [--top NAME]
`;

/** `--name value` / `--name=value` pairs; every name must be in `allowed`. */
export function parseOptions(argv: readonly string[], allowed: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (!allowed.includes(name)) throw new Error(`unknown option --${name}`);
    if (value === undefined) throw new Error(`--${name} needs a value`);
    m.set(name, value);
  }
  return m;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const a = parseOptions(argv, [
      'out', 'arch', 'preset', 'layout', 'L', 'C', 'V', 'F', 'H', 'R_m', 'R_d', 'R_w', 'R_a', 'R_v', 'R_g', 'D', 'seed', 'vit', 'top',
    ]);
    const out = a.get('out');
    if (!out) throw new Error('--out is required');
    const presetName = a.get('preset')?.toLowerCase();
    const archOpt = a.get('arch');
    if (archOpt !== undefined && archOpt !== 'rwkv6' && archOpt !== 'rwkv7') throw new Error(`--arch must be rwkv6 or rwkv7, got '${archOpt}'`);
    // an RWKV-7-only preset name implies --arch rwkv7
    const arch = archOpt ?? (presetName !== undefined && presetName in PRESETS7 && !(presetName in PRESETS) ? 'rwkv7' : 'rwkv6');
    const presets: Record<string, object> = arch === 'rwkv6' ? PRESETS : PRESETS7;
    const preset = presetName !== undefined ? (presets[presetName] as Record<string, number | string> | undefined) : undefined;
    if (presetName !== undefined && !preset) throw new Error(`--preset for ${arch} must be one of ${Object.keys(presets).join(', ')}`);
    const int = (k: string): number | undefined => {
      const v = a.get(k);
      if (v === undefined) return preset?.[k] as number | undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive integer, got '${v}'`);
      return n;
    };
    const [L, C, V] = [int('L'), int('C'), int('V')];
    if (L === undefined || C === undefined || V === undefined) throw new Error('give --preset or all of --L, --C, --V');
    const layout = a.get('layout') ?? (preset?.layout as Rwkv7Layout | undefined);
    if (layout !== undefined && layout !== 'visualrwkv' && layout !== 'released') throw new Error(`--layout must be visualrwkv or released, got '${layout}'`);
    if (layout !== undefined && arch === 'rwkv6') throw new Error('--layout is an RWKV-7 option (give --arch rwkv7)');
    const vitOpt = a.get('vit');
    if (vitOpt !== undefined && vitOpt !== 'on' && vitOpt !== 'off') throw new Error(`--vit must be on or off, got '${vitOpt}'`);
    // released RWKV-7 files have no vision tower: --vit defaults to off there
    const vit = (vitOpt ?? (layout === 'released' ? 'off' : 'on')) === 'on';
    const t0 = performance.now();
    let lastReport = 0;
    const res = await writeSyntheticPth({
      arch, L, C, V, F: int('F'), H: int('H'), seed: int('seed') ?? 1, vit, out, top: a.get('top'),
      // options of the other architecture are passed on so that writeSyntheticPth rejects them
      R_m: int('R_m'), R_d: int('R_d'), R_w: int('R_w'), R_a: int('R_a'), R_v: int('R_v'), R_g: int('R_g'), D: int('D'), layout,
      onTensor: (done, total, bytes, key) => {
        const now = performance.now();
        if (now - lastReport < 5000 && done < total) return;
        lastReport = now;
        const s = (now - t0) / 1000;
        process.stderr.write(`synthetic-pth: ${done}/${total} tensors, ${(bytes / 1e9).toFixed(2)} GB, ${s.toFixed(0)} s, ${(bytes / 1e6 / s).toFixed(0)} MB/s (${key})\n`);
      },
    });
    const s = (performance.now() - t0) / 1000;
    // a bare RWKV-7 LM has no projector: no D
    const shapes: object = res.layout === 'released' ? Object.fromEntries(Object.entries(res.shapes).filter(([k]) => k !== 'D')) : res.shapes;
    process.stdout.write(
      JSON.stringify({
        out, ...(arch === 'rwkv7' ? { arch, layout: res.layout } : {}), ...shapes, vit, tensors: res.tensors, tensor_bytes: res.tensorBytes, file_bytes: res.fileBytes,
        seconds: Number(s.toFixed(1)), peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
      }) + '\n',
    );
    return 0;
  } catch (e) {
    process.stderr.write(`synthetic-pth: ${(e as Error).message}\n${USAGE}`);
    return 1;
  }
}
