/**
 * A full-size synthetic VisualRWKV-6 checkpoint written STREAMING to disk as a PyTorch `.pth` (spec §2.2–§2.5):
 * a zip of stored members — `<top>/data.pkl` (state-dict pickle, protocol 2, BFloat16Storage), `<top>/byteorder`,
 * one `<top>/data/<n>` per tensor, `<top>/version` — with torch's 64-byte data alignment and zip64 records wherever
 * an offset or size passes 4 GiB (so 7B-shaped files of ~16 GB work too).
 *
 * Keys: `rwkv.*` (RWKV-6 LM, spec §2.3), `vit.*` (an HF CLIPVisionModel ViT-L/14-336 key set, spec §2.5; ~303 M
 * parameters the engine must skip) and `proj.weight` [C, 1024]. Values: `rwkv.*` come from bench/synthetic.ts
 * (seeded per tensor name, numerically sane), so they are byte-identical to
 * `syntheticRwkv6Checkpoint({ ...shapes, seed, prefix: 'rwkv.' })`; `vit.*` / `proj.weight` are seeded the same way.
 *
 * Memory: only one tensor at a time is held (the largest, emb/head, is V·C·2 bytes: 256 MiB at 1B6, 512 MiB at 7B);
 * its CRC-32 is computed, then its local header and data are written. The central directory (~100 B per member) is
 * the only thing kept until the end.
 *
 * Usage (built to dist/tools by `npm run build:tools`):
 *   node scripts/tool.mjs synthetic-pth --out /tmp/big/visualrwkv6-1b6.pth [--preset 1b6|3b|7b]
 *        [--L N] [--C N] [--V N] [--F N] [--H N] [--R_m N] [--R_d N] [--seed N] [--vit on|off] [--top NAME]
 * A preset gives the released model's shapes (spec §2.6); explicit flags override it. Without a preset, --L, --C
 * and --V are required (F = ⌊3.5·C/32⌋·32, H = C/64, R_m/R_d = 32/64, or 64/128 when C ≥ 4096).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { generateBf16, rwkv6Shapes, rwkv6TensorSpecs, type Init, type Rwkv6Shapes, type SyntheticTensorSpec } from '../bench/synthetic';
import { stateDictPickle, type TensorSpec } from '../tests/helpers/pickle';
import { crc32 } from '../src/weights/zip';

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

const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** C-order strides of a shape (what torch.save records for contiguous tensors). */
function contiguousStride(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i]!;
  }
  return st;
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming zip writer (stored members only)

const MAX32 = 0xffffffff;
/** torch.save aligns member data to 64 bytes with a padding extra field ('FB'). */
const ALIGN = 64;
const PAD_EXTRA_ID = 0x4246;

/** Little-endian record builder for headers (small, fixed-size). */
class Rec {
  private b: number[] = [];
  u16(v: number): this {
    this.b.push(v & 0xff, (v >>> 8) & 0xff);
    return this;
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(Math.floor(v / 0x10000) & 0xffff);
  }
  u64(v: number): this {
    return this.u32(v % 0x100000000).u32(Math.floor(v / 0x100000000));
  }
  raw(x: Uint8Array): this {
    for (const c of x) this.b.push(c);
    return this;
  }
  get length(): number {
    return this.b.length;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.b);
  }
}

/**
 * Appends stored members to a file one at a time and writes the central directory at the end. Offsets and sizes
 * ≥ 4 GiB go into zip64 extra fields (only the saturated ones, in APPNOTE order: size, compressed size, offset);
 * the zip64 end record and locator are always written, as torch does.
 */
export class StreamingZipWriter {
  private pos = 0;
  private readonly central: Uint8Array[] = [];
  private count = 0;
  private readonly enc = new TextEncoder();
  constructor(private readonly fh: FileHandle) {}

  /** Bytes written so far. */
  get size(): number {
    return this.pos;
  }

  private async write(b: Uint8Array): Promise<void> {
    let off = 0;
    while (off < b.length) {
      const { bytesWritten } = await this.fh.write(b, off, b.length - off);
      if (bytesWritten <= 0) throw new Error('synthetic-pth: write made no progress');
      off += bytesWritten;
    }
    this.pos += b.length;
  }

  /** One stored member: local header (+ zip64 sizes if ≥ 4 GiB, + alignment padding), then the data. */
  async add(name: string, data: Uint8Array): Promise<void> {
    const nameBytes = this.enc.encode(name);
    const size = data.length;
    const crc = crc32(data);
    const lho = this.pos;
    const bigSize = size >= MAX32;
    const z64Local = bigSize ? new Rec().u16(0x0001).u16(16).u64(size).u64(size).done() : new Uint8Array(0);
    // padding field (4-byte header + pad) so that the data starts at a multiple of ALIGN
    const base = lho + 30 + nameBytes.length + z64Local.length + 4;
    const pad = (ALIGN - (base % ALIGN)) % ALIGN;
    const localExtra = new Rec().raw(z64Local).u16(PAD_EXTRA_ID).u16(pad).raw(new Uint8Array(pad).fill(0x5a)).done();
    const version = bigSize || lho >= MAX32 ? 45 : 20;
    const local = new Rec()
      .u32(0x04034b50).u16(version).u16(0).u16(0 /* stored */).u16(0).u16(0x21 /* 1980-01-01 */)
      .u32(crc).u32(bigSize ? MAX32 : size).u32(bigSize ? MAX32 : size)
      .u16(nameBytes.length).u16(localExtra.length).raw(nameBytes).raw(localExtra)
      .done();
    await this.write(local);
    if (this.pos % ALIGN !== 0) throw new Error(`synthetic-pth: misaligned data for ${name}`);
    await this.write(data);

    const z64 = new Rec();
    if (bigSize) z64.u64(size).u64(size);
    if (lho >= MAX32) z64.u64(lho);
    const cExtra = z64.length ? new Rec().u16(0x0001).u16(z64.length).raw(z64.done()).done() : new Uint8Array(0);
    this.central.push(
      new Rec()
        .u32(0x02014b50).u16(version).u16(version).u16(0).u16(0).u16(0).u16(0x21)
        .u32(crc).u32(bigSize ? MAX32 : size).u32(bigSize ? MAX32 : size)
        .u16(nameBytes.length).u16(cExtra.length).u16(0).u16(0).u16(0).u32(0).u32(lho >= MAX32 ? MAX32 : lho)
        .raw(nameBytes).raw(cExtra)
        .done(),
    );
    this.count++;
  }

  /** Central directory, zip64 end record + locator, end record. Returns the file size. */
  async finish(): Promise<number> {
    const cdOffset = this.pos;
    for (const c of this.central) await this.write(c);
    const cdSize = this.pos - cdOffset;
    const n = this.count;
    const z64At = this.pos;
    await this.write(new Rec().u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0).u64(n).u64(n).u64(cdSize).u64(cdOffset).done());
    await this.write(new Rec().u32(0x07064b50).u32(0).u64(z64At).u32(1).done());
    const sat = (v: number, max: number) => (v >= max ? max : v);
    await this.write(
      new Rec().u32(0x06054b50).u16(0).u16(0).u16(sat(n, 0xffff)).u16(sat(n, 0xffff)).u32(sat(cdSize, MAX32)).u32(sat(cdOffset, MAX32)).u16(0).done(),
    );
    return this.pos;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The checkpoint

export interface SyntheticPthOptions {
  L: number;
  C: number;
  V: number;
  F?: number;
  H?: number;
  R_m?: number;
  R_d?: number;
  seed?: number;
  /** Include the CLIP tower's vit.* tensors (default true, as in the released files). */
  vit?: boolean;
  out: string;
  /** Folder inside the zip (torch uses the file's stem). */
  top?: string;
  /** Called after each tensor is written. */
  onTensor?: (done: number, total: number, bytes: number, key: string) => void;
}

export interface SyntheticPthResult {
  shapes: Rwkv6Shapes;
  tensors: number;
  /** Tensor bytes (all members except data.pkl, byteorder, version). */
  tensorBytes: number;
  fileBytes: number;
}

/** Write the checkpoint, one tensor in memory at a time. */
export async function writeSyntheticPth(o: SyntheticPthOptions): Promise<SyntheticPthResult> {
  const shapes = rwkv6Shapes({
    L: o.L, C: o.C, V: o.V, F: o.F, H: o.H,
    R_m: o.R_m ?? (o.C >= 4096 ? 64 : 32),
    R_d: o.R_d ?? (o.C >= 4096 ? 128 : 64),
  });
  const seed = o.seed ?? 1;
  const list = visualRwkv6Tensors(shapes, o.vit ?? true);
  const top = o.top ?? (basename(o.out).replace(/\.[^.]*$/, '') || 'archive');
  // Storages are keyed '0', '1', ... in pickling order, one per tensor, each a whole contiguous BFloat16Storage.
  const entries: [string, TensorSpec][] = list.map((t, i) => {
    const n = numelOf(t.spec.shape);
    return [t.key, { storage: String(i), dtype: 'BF16', storageNumel: n, offset: 0, shape: [...t.spec.shape], stride: contiguousStride(t.spec.shape) }];
  });
  const fh = await open(o.out, 'w');
  try {
    const zip = new StreamingZipWriter(fh);
    const enc = new TextEncoder();
    await zip.add(`${top}/data.pkl`, stateDictPickle(entries, { protocol: 2 }));
    await zip.add(`${top}/byteorder`, enc.encode('little'));
    let tensorBytes = 0;
    for (let i = 0; i < list.length; i++) {
      const t = list[i]!;
      const v = generateBf16(t.spec, seed);
      await zip.add(`${top}/data/${i}`, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      tensorBytes += v.byteLength;
      o.onTensor?.(i + 1, list.length, tensorBytes, t.key);
    }
    await zip.add(`${top}/version`, enc.encode('3\n'));
    const fileBytes = await zip.finish();
    return { shapes, tensors: list.length, tensorBytes, fileBytes };
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Command line

const USAGE = `usage: node scripts/tool.mjs synthetic-pth --out <file.pth> [--preset 1b6|3b|7b] [--L N] [--C N] [--V N]
       [--F N] [--H N] [--R_m N] [--R_d N] [--seed N] [--vit on|off] [--top NAME]
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
    const a = parseOptions(argv, ['out', 'preset', 'L', 'C', 'V', 'F', 'H', 'R_m', 'R_d', 'seed', 'vit', 'top']);
    const out = a.get('out');
    if (!out) throw new Error('--out is required');
    const preset = a.has('preset') ? PRESETS[a.get('preset')!.toLowerCase()] : undefined;
    if (a.has('preset') && !preset) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(', ')}`);
    const int = (k: string): number | undefined => {
      const v = a.get(k);
      if (v === undefined) return preset?.[k as keyof typeof preset];
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive integer, got '${v}'`);
      return n;
    };
    const [L, C, V] = [int('L'), int('C'), int('V')];
    if (L === undefined || C === undefined || V === undefined) throw new Error('give --preset or all of --L, --C, --V');
    const vit = a.get('vit') ?? 'on';
    if (vit !== 'on' && vit !== 'off') throw new Error(`--vit must be on or off, got '${vit}'`);
    const t0 = performance.now();
    let lastReport = 0;
    const res = await writeSyntheticPth({
      L, C, V, F: int('F'), H: int('H'), R_m: int('R_m'), R_d: int('R_d'), seed: int('seed') ?? 1, vit: vit === 'on', out, top: a.get('top'),
      onTensor: (done, total, bytes, key) => {
        const now = performance.now();
        if (now - lastReport < 5000 && done < total) return;
        lastReport = now;
        const s = (now - t0) / 1000;
        process.stderr.write(`synthetic-pth: ${done}/${total} tensors, ${(bytes / 1e9).toFixed(2)} GB, ${s.toFixed(0)} s, ${(bytes / 1e6 / s).toFixed(0)} MB/s (${key})\n`);
      },
    });
    const s = (performance.now() - t0) / 1000;
    const { shapes } = res;
    process.stdout.write(
      JSON.stringify({
        out, ...shapes, vit: vit === 'on', tensors: res.tensors, tensor_bytes: res.tensorBytes, file_bytes: res.fileBytes,
        seconds: Number(s.toFixed(1)), peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
      }) + '\n',
    );
    return 0;
  } catch (e) {
    process.stderr.write(`synthetic-pth: ${(e as Error).message}\n${USAGE}`);
    return 1;
  }
}
