/**
 * A tiny zip writer for loader tests: stored members (CRC-32), optional 64-byte data alignment like torch.save,
 * optional zip64 records, and "sparse" archives with gaps of zeros (to test offsets past 4 GB without allocating them).
 */
import { WeightsFormatError } from '../../src/errors';
import { checkRange, type ByteSource } from '../../src/weights/source';

export interface ZipInput {
  name: string;
  data: Uint8Array;
  /** Method written in the headers (data is written as given; 8 = "deflate" to test refusal). Default 0. */
  method?: number;
  /** Virtual zero bytes before this member's local header (sparse archives only). */
  gapBefore?: number;
}

export interface ZipOptions {
  /** 'auto': zip64 only where needed; 'eocd': also zip64 end records (as torch writes); 'full': every field via zip64. */
  zip64?: 'auto' | 'eocd' | 'full';
  /** Align member data to this many bytes with a padding extra field, as torch.save does (64). 0 = off. */
  align?: number;
  comment?: string;
}

/** A file as non-overlapping segments; everything else is zero. */
export interface SparseFile {
  size: number;
  segments: { offset: number; bytes: Uint8Array }[];
}

const CRC = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (independent of src/weights/zip.ts on purpose). */
export function crc32Ref(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

class Bytes {
  parts: number[] = [];
  u8(v: number) { this.parts.push(v & 0xff); return this; }
  u16(v: number) { return this.u8(v).u8(v >>> 8); }
  u32(v: number) { return this.u16(v & 0xffff).u16(Math.floor(v / 0x10000)); }
  u64(v: number) { return this.u32(v % 0x100000000).u32(Math.floor(v / 0x100000000)); }
  raw(b: Uint8Array) { for (const x of b) this.parts.push(x); return this; }
  get length() { return this.parts.length; }
  done() { return Uint8Array.from(this.parts); }
}

const MAX32 = 0xffffffff;

/**
 * Builds a zip member by member: `add` returns the member's segments (local header, then its data) at increasing
 * offsets, `finish` the central directory and end records. writeZipSparse collects them; a caller that writes them
 * to a file as they come holds only one member in memory (scripts/synthetic-pth.ts).
 */
export class ZipBuilder {
  private readonly mode: NonNullable<ZipOptions['zip64']>;
  private readonly align: number;
  private readonly enc = new TextEncoder();
  private readonly central = new Bytes();
  private count = 0;
  /** Bytes so far (the offset of what comes next, before any gap). */
  size = 0;

  constructor(private readonly opts: ZipOptions = {}) {
    this.mode = opts.zip64 ?? 'eocd';
    this.align = opts.align ?? 64;
  }

  add(m: ZipInput): SparseFile['segments'] {
    const { mode, align } = this;
    this.size += m.gapBefore ?? 0;
    const name = this.enc.encode(m.name);
    const crc = crc32Ref(m.data);
    const lho = this.size;
    const big = mode === 'full' || m.data.length >= MAX32 || lho >= MAX32;
    // local header; torch writes sizes in a data descriptor (flag bit 3) and zeros here — we write them directly
    let pad = 0;
    if (align) {
      const base = lho + 30 + name.length;
      const minExtra = 4;
      pad = (align - ((base + minExtra) % align)) % align;
    }
    const local = new Bytes()
      .u32(0x04034b50).u16(45).u16(0x0800).u16(m.method ?? 0).u16(0).u16(0)
      .u32(crc).u32(m.data.length).u32(m.data.length).u16(name.length).u16(align ? 4 + pad : 0)
      .raw(name);
    if (align) local.u16(0x4246).u16(pad).raw(new Uint8Array(pad).fill(0x5a));
    const lb = local.done();
    const segments = [{ offset: lho, bytes: lb }, { offset: lho + lb.length, bytes: m.data }];
    this.size = lho + lb.length + m.data.length;

    const extra = new Bytes();
    if (big) extra.u16(0x0001).u16(24).u64(m.data.length).u64(m.data.length).u64(lho);
    this.central
      .u32(0x02014b50).u16(45).u16(45).u16(0x0800).u16(m.method ?? 0).u16(0).u16(0)
      .u32(crc).u32(big ? MAX32 : m.data.length).u32(big ? MAX32 : m.data.length)
      .u16(name.length).u16(extra.length).u16(0).u16(0).u16(0).u32(0).u32(big ? MAX32 : lho)
      .raw(name).raw(extra.done());
    this.count++;
    return segments;
  }

  finish(): SparseFile['segments'] {
    const { mode } = this;
    const cdOffset = this.size;
    const cd = this.central.done();
    const n = this.count;
    const need64 = mode !== 'auto' || cdOffset >= MAX32 || n >= 0xffff;
    const tail = new Bytes();
    if (need64) {
      const z64At = cdOffset + cd.length;
      tail.u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0).u64(n).u64(n).u64(cd.length).u64(cdOffset);
      tail.u32(0x07064b50).u32(0).u64(z64At).u32(1);
    }
    const sat = mode === 'full' || cdOffset >= MAX32;
    const comment = this.enc.encode(this.opts.comment ?? '');
    tail
      .u32(0x06054b50).u16(0).u16(0).u16(mode === 'full' ? 0xffff : n).u16(mode === 'full' ? 0xffff : n)
      .u32(cd.length).u32(sat ? MAX32 : cdOffset).u16(comment.length).raw(comment);
    const tb = tail.done();
    this.size = cdOffset + cd.length + tb.length;
    return [{ offset: cdOffset, bytes: cd }, { offset: cdOffset + cd.length, bytes: tb }];
  }
}

/** Build a (possibly sparse) zip. */
export function writeZipSparse(members: ZipInput[], opts: ZipOptions = {}): SparseFile {
  const zip = new ZipBuilder(opts);
  const segments = members.flatMap((m) => zip.add(m));
  segments.push(...zip.finish());
  return { size: zip.size, segments };
}

/** Build a contiguous zip in memory (no gaps). */
export function writeZip(members: ZipInput[], opts: ZipOptions = {}): Uint8Array {
  const f = writeZipSparse(members, opts);
  const out = new Uint8Array(f.size);
  for (const s of f.segments) out.set(s.bytes, s.offset);
  return out;
}

/** A ByteSource over a sparse file: gaps read as zeros. Counts reads (for tests of read patterns). */
export function sparseSource(f: SparseFile, name = 'sparse.pth'): ByteSource & { reads: number } {
  const src = {
    name,
    size: f.size,
    reads: 0,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkRange(src, offset, length);
      if (length > 1 << 30) throw new WeightsFormatError('sparseSource: refusing a read over 1 GiB');
      src.reads++;
      const out = new Uint8Array(length);
      for (const s of f.segments) {
        const a = Math.max(offset, s.offset);
        const b = Math.min(offset + length, s.offset + s.bytes.length);
        if (a < b) out.set(s.bytes.subarray(a - s.offset, b - s.offset), a - offset);
      }
      return out;
    },
  };
  return src;
}
