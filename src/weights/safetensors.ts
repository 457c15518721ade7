/**
 * safetensors: 8-byte LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets}}, then raw data.
 * This file holds the in-memory parser and writer; streaming reads of big files go through `source.ts`.
 */
import { WeightsFormatError } from '../errors';
import { DTYPE_BYTES, numel, type DType, type HostTensor } from './dtype';

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offsets in the file (header included). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataStart: number;
}

const MAX_HEADER = 100 << 20;

/** Read the header length from the first 8 bytes. */
export function safetensorsHeaderLength(first8: Uint8Array, fileSize: number, file = 'file'): number {
  if (first8.byteLength < 8 || fileSize < 8) throw new WeightsFormatError(`${file}: too short to be safetensors (${fileSize} bytes)`);
  const n = Number(new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true));
  if (n <= 1 || n > MAX_HEADER || 8 + n > fileSize) {
    throw new WeightsFormatError(`${file}: safetensors header length ${n} is invalid for a ${fileSize}-byte file`);
  }
  return n;
}

/** Parse the JSON header (bytes 8..8+N) and validate offsets against the file size. */
export function parseSafetensorsHeader(json: Uint8Array, fileSize: number, file = 'file'): SafetensorsHeader {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new WeightsFormatError(`${file}: safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new WeightsFormatError(`${file}: safetensors header is not an object`);
  const dataStart = 8 + json.byteLength;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(obj)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = e?.dtype as DType;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw new WeightsFormatError(`${file}: tensor '${name}' has unknown dtype ${JSON.stringify(e?.dtype)}`);
    }
    const shape = e.shape;
    const off = e.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new WeightsFormatError(`${file}: tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new WeightsFormatError(`${file}: tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [b, en] = off as [number, number];
    const want = numel(shape as number[]) * DTYPE_BYTES[dtype];
    if (en - b !== want) {
      throw new WeightsFormatError(`${file}: tensor '${name}' ${dtype}[${shape}] needs ${want} bytes, offsets give ${en - b}`);
    }
    if (dataStart + en > fileSize) {
      throw new WeightsFormatError(`${file}: tensor '${name}' ends at byte ${dataStart + en}, past the end of the file (${fileSize}); the file is truncated`);
    }
    entries.push({ name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + en });
  }
  return { entries, metadata, dataStart };
}

/** Parse a whole safetensors file held in memory (small files: fixtures, image rows). */
export function parseSafetensors(bytes: Uint8Array, file = 'file'): Map<string, HostTensor> {
  const n = safetensorsHeaderLength(bytes.subarray(0, 8), bytes.byteLength, file);
  const h = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.byteLength, file);
  const out = new Map<string, HostTensor>();
  for (const e of h.entries) out.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: bytes.subarray(e.begin, e.end) });
  return out;
}

/** Serialise tensors to safetensors bytes (header padded with spaces to a multiple of 8). */
export function writeSafetensors(tensors: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }>): Uint8Array {
  const header: Record<string, unknown> = {};
  let off = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes.byteLength] };
    off += bytes.byteLength;
    parts.push(bytes);
  }
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8 !== 0) json += ' ';
  const jb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jb.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(jb.byteLength), true);
  out.set(jb, 8);
  let p = 8 + jb.byteLength;
  for (const b of parts) {
    out.set(b, p);
    p += b.byteLength;
  }
  return out;
}
