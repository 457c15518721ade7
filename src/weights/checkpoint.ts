/**
 * Open a checkpoint of either supported container — PyTorch `.pth` (zip + pickle) or `.safetensors` — detected by
 * its magic bytes, never by its name. Opening reads only the directory/header; tensors are read one at a time.
 */
import { WeightsFormatError } from '../errors';
import { DTYPE_BYTES, numel, type DType, type HostTensor } from './dtype';
import { openPth } from './pth';
import { parseSafetensorsHeader, safetensorsHeaderLength } from './safetensors';
import type { ByteSource } from './source';

/** One tensor of a checkpoint, not yet read. */
export interface TensorInfo {
  /** Full key as in the file (e.g. `rwkv.blocks.0.att.key.weight`). */
  name: string;
  dtype: DType;
  shape: number[];
  /** numel(shape) × dtype size: the size of `read()`'s bytes. */
  byteLength: number;
  /** The tensor as contiguous C-order little-endian bytes (views and strides already gathered). */
  read(): Promise<HostTensor>;
}

/** An opened checkpoint: tensor metadata by key, in file order. */
export interface Checkpoint {
  /** The source's name (file name or URL), used in error messages. */
  name: string;
  format: 'pth' | 'safetensors';
  tensors: Map<string, TensorInfo>;
  /** safetensors `__metadata__` (e.g. a GPU-ready copy's, see src/model/gpu-ready.ts); absent for .pth. */
  metadata?: Record<string, string>;
}

/** Which container a file is, from its first bytes. */
export function sniffFormat(head: Uint8Array, size: number): 'pth' | 'safetensors' | 'legacy-pth' | 'unknown' {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5) && head[3] === head[2] + 1) return 'pth';
  if (head.length >= 9 && head[8] === 0x7b /* { */) {
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n >= 2n && n + 8n <= BigInt(size)) return 'safetensors';
  }
  // Pre-1.6 torch.save: a bare pickle (PROTO 2) starting with the magic number 0x1950a86a20f9469cfc6c.
  if (head.length >= 2 && head[0] === 0x80 && head[1] <= 5) return 'legacy-pth';
  // Older still: a tar archive ("ustar" at 257) — not reachable with a 16-byte head, so only the pickle form is named.
  return 'unknown';
}

/**
 * Open a `.pth` or `.safetensors` checkpoint. Throws WeightsFormatError (naming the file and offset/key) for
 * truncated or corrupt files, UnsafePickleError for pickles that reference anything beyond a state dict.
 *
 * @example
 * const ckpt = await openCheckpoint(await nodeFileSource('model.pth'));
 * const emb = await ckpt.tensors.get('rwkv.emb.weight')!.read();
 */
export async function openCheckpoint(source: ByteSource): Promise<Checkpoint> {
  if (source.size < 8) throw new WeightsFormatError(`${source.name}: ${source.size} bytes is too short to be a checkpoint`);
  const head = await source.read(0, Math.min(16, source.size));
  switch (sniffFormat(head, source.size)) {
    case 'pth':
      return openPth(source);
    case 'safetensors':
      return openSafetensors(source);
    case 'legacy-pth':
      throw new WeightsFormatError(
        `${source.name}: this is the legacy (pre-PyTorch-1.6, non-zip) torch.save format, which is not supported; ` +
          `re-save it with a current PyTorch (torch.save(torch.load(f), g)) or convert it to .safetensors`,
      );
    default:
      throw new WeightsFormatError(
        `${source.name}: not a PyTorch .pth (zip) nor a .safetensors file (first bytes ${[...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`,
      );
  }
}

/** Open a safetensors file: reads the 8-byte length and the JSON header, validates offsets against the size. */
export async function openSafetensors(source: ByteSource): Promise<Checkpoint> {
  const file = source.name;
  const n = safetensorsHeaderLength(await source.read(0, 8), source.size, file);
  const h = parseSafetensorsHeader(await source.read(8, n), source.size, file);
  const tensors = new Map<string, TensorInfo>();
  for (const e of h.entries) {
    const byteLength = e.end - e.begin;
    if (byteLength !== numel(e.shape) * DTYPE_BYTES[e.dtype]) {
      throw new WeightsFormatError(`${file}: tensor '${e.name}' size mismatch`);
    }
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      byteLength,
      read: async () => ({ dtype: e.dtype, shape: [...e.shape], bytes: await source.read(e.begin, byteLength) }),
    });
  }
  return { name: file, format: 'safetensors', tensors, metadata: h.metadata };
}
