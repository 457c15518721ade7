/**
 * Zip reader for PyTorch `.pth` archives over a ByteSource: reads the end-of-central-directory record (zip64
 * included — released checkpoints are 3.8–16 GB), the central directory, and then only the local headers of the
 * members actually read. Members must be STORED (method 0), which is what `torch.save` writes; nothing is inflated.
 *
 * Layout reminder (all little-endian): [local header 30 B + name + extra][data] ... [central directory entries
 * 46 B + name + extra + comment] [zip64 EOCD 56 B] [zip64 locator 20 B] [EOCD 22 B + comment].
 */
import { WeightsFormatError } from '../errors';
import type { ByteSource } from './source';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_LEN = 22;
const LOCATOR_LEN = 20;
const ZIP64_EOCD_LEN = 56;
const MAX_COMMENT = 0xffff;
/** Refuse central directories above this (a 16 GB checkpoint has ~1000 members, well under 1 MB). */
const MAX_CENTRAL_DIR = 256 << 20;
/** Bytes read past the name when fetching a local header together with data (torch pads extra to 64 B alignment). */
const LOCAL_EXTRA_SLACK = 256;
/** Up to this many bytes, a member read fetches its local header in the same request (then copies the slice). */
const COMBINED_READ_MAX = 1 << 20;

/** One member as described by the central directory. */
export interface ZipEntry {
  name: string;
  /** 0 = stored; anything else is refused when the member is read. */
  method: number;
  /** General-purpose flags (bit 0 = encrypted). */
  flags: number;
  crc32: number;
  compressedSize: number;
  /** Uncompressed size = data size for stored members. */
  size: number;
  localHeaderOffset: number;
}

/** A STORED member's bytes: absolute offset in the file and length. */
export interface ZipDataRange {
  offset: number;
  size: number;
}

export interface ZipArchive {
  source: ByteSource;
  /** Members by name, in central-directory order. */
  entries: Map<string, ZipEntry>;
  /** Absolute data offset/size of a stored member (reads its local header once, then cached). */
  dataRange(name: string): Promise<ZipDataRange>;
  /** `length` bytes at `offset` within a stored member's data (one read when the local header is not yet cached). */
  readMember(name: string, offset?: number, length?: number): Promise<Uint8Array>;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as in zip). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(dv: DataView, at: number, file: string, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new WeightsFormatError(`${file}: zip ${what} ${v} is out of range`);
  return Number(v);
}

/** Find the EOCD in the tail: the last signature whose comment length reaches exactly the end of the file. */
function findEocd(tail: Uint8Array): number {
  const dv = view(tail);
  for (let p = tail.length - EOCD_LEN; p >= 0; p--) {
    if (dv.getUint32(p, true) === SIG_EOCD && p + EOCD_LEN + dv.getUint16(p + 20, true) === tail.length) return p;
  }
  return -1;
}

/**
 * Read a zip's directory from a ByteSource. Throws WeightsFormatError (naming the file and offset) if there is no
 * end-of-central-directory record (truncated or not a zip), or if any directory field points outside the file.
 *
 * @example
 * const zip = await openZip(src);
 * const pkl = await zip.readMember('archive/data.pkl');
 */
export async function openZip(source: ByteSource): Promise<ZipArchive> {
  const file = source.name;
  const size = source.size;
  if (size < EOCD_LEN) throw new WeightsFormatError(`${file}: ${size} bytes is too short to be a zip archive`);
  const tailLen = Math.min(size, EOCD_LEN + MAX_COMMENT + LOCATOR_LEN);
  const tailStart = size - tailLen;
  const tail = await source.read(tailStart, tailLen);
  const e = findEocd(tail);
  if (e < 0) {
    throw new WeightsFormatError(`${file}: no zip end-of-central-directory record in the last ${tailLen} bytes; the file is truncated or not a zip archive`);
  }
  const eocdAt = tailStart + e;
  const tv = view(tail);
  const disk = tv.getUint16(e + 4, true);
  const cdDisk = tv.getUint16(e + 6, true);
  let count = tv.getUint16(e + 10, true);
  let cdSize = tv.getUint32(e + 12, true);
  let cdOffset = tv.getUint32(e + 16, true);
  let cdLimit = eocdAt; // the central directory must end before this

  const locAt = e - LOCATOR_LEN;
  const hasLocator = locAt >= 0 && tv.getUint32(locAt, true) === SIG_ZIP64_LOCATOR;
  if (hasLocator) {
    const z64At = u64(tv, locAt + 8, file, 'zip64 EOCD offset');
    if (z64At + ZIP64_EOCD_LEN > eocdAt - LOCATOR_LEN) {
      throw new WeightsFormatError(`${file}: zip64 end-of-central-directory offset ${z64At} is past the locator at ${eocdAt - LOCATOR_LEN}`);
    }
    const z = view(await source.read(z64At, ZIP64_EOCD_LEN));
    if (z.getUint32(0, true) !== SIG_ZIP64_EOCD) {
      throw new WeightsFormatError(`${file}: no zip64 end-of-central-directory record at offset ${z64At}`);
    }
    if (z.getUint32(16, true) !== 0 || z.getUint32(20, true) !== 0) {
      throw new WeightsFormatError(`${file}: multi-disk zip archives are not supported`);
    }
    count = u64(z, 32, file, 'entry count');
    cdSize = u64(z, 40, file, 'central directory size');
    cdOffset = u64(z, 48, file, 'central directory offset');
    cdLimit = z64At;
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new WeightsFormatError(`${file}: zip needs zip64 records (fields are 0xFFFF…) but has no zip64 locator before offset ${eocdAt}`);
  }
  if (disk !== 0 || cdDisk !== 0) throw new WeightsFormatError(`${file}: multi-disk zip archives are not supported`);
  if (cdSize > MAX_CENTRAL_DIR) throw new WeightsFormatError(`${file}: zip central directory of ${cdSize} bytes is implausibly large`);
  if (cdOffset + cdSize > cdLimit) {
    throw new WeightsFormatError(`${file}: zip central directory (offset ${cdOffset}, ${cdSize} bytes) overlaps its end record at ${cdLimit}; the file is corrupt`);
  }
  if (count * 46 > cdSize) {
    throw new WeightsFormatError(`${file}: zip claims ${count} members but its central directory holds only ${cdSize} bytes`);
  }

  const cd = await source.read(cdOffset, cdSize);
  const dv = view(cd);
  const dec = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    const at = cdOffset + p;
    if (p + 46 > cd.length || dv.getUint32(p, true) !== SIG_CENTRAL) {
      throw new WeightsFormatError(`${file}: bad zip central directory entry #${i} at offset ${at}`);
    }
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let usize = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    const diskStart = dv.getUint16(p + 34, true);
    let lho = dv.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) throw new WeightsFormatError(`${file}: zip central directory entry #${i} at offset ${at} runs past the directory`);
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // zip64 extended information: only the fields whose 32-bit value is saturated, in this order.
    const need = [usize === 0xffffffff, compressedSize === 0xffffffff, lho === 0xffffffff];
    if (need.some(Boolean)) {
      let q = p + 46 + nameLen;
      const qEnd = q + extraLen;
      let found = false;
      while (q + 4 <= qEnd) {
        const id = dv.getUint16(q, true);
        const len = dv.getUint16(q + 2, true);
        if (q + 4 + len > qEnd) break;
        if (id === 0x0001) {
          let r = q + 4;
          const take = (what: string): number => {
            if (r + 8 > q + 4 + len) throw new WeightsFormatError(`${file}: zip64 extra field of '${name}' is too short for its ${what}`);
            const v = u64(dv, r, file, `${what} of '${name}'`);
            r += 8;
            return v;
          };
          if (need[0]) usize = take('size');
          if (need[1]) compressedSize = take('compressed size');
          if (need[2]) lho = take('local header offset');
          found = true;
          break;
        }
        q += 4 + len;
      }
      if (!found) throw new WeightsFormatError(`${file}: zip member '${name}' needs a zip64 extra field but has none`);
    }
    if (diskStart !== 0 && diskStart !== 0xffff) throw new WeightsFormatError(`${file}: multi-disk zip archives are not supported`);
    if (lho + 30 + nameLen > cdOffset) {
      throw new WeightsFormatError(`${file}: zip member '${name}' has local header offset ${lho}, past the start of the central directory (${cdOffset})`);
    }
    if (entries.has(name)) throw new WeightsFormatError(`${file}: zip member '${name}' appears twice`);
    entries.set(name, { name, method, flags, crc32: crc, compressedSize, size: usize, localHeaderOffset: lho });
    p = end;
  }

  const ranges = new Map<string, ZipDataRange>();
  // Each member's bytes must end before the next local header (or the central directory): catches corrupt
  // local extra lengths that would otherwise silently shift the data.
  const limits = new Map<string, number>();
  const byOffset = [...entries.values()].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  byOffset.forEach((ent, i) => limits.set(ent.name, byOffset[i + 1]?.localHeaderOffset ?? cdOffset));
  const enc = new TextEncoder();

  const entryOf = (name: string): ZipEntry => {
    const ent = entries.get(name);
    if (!ent) throw new WeightsFormatError(`${file}: zip member '${name}' is missing`);
    if (ent.flags & 1) throw new WeightsFormatError(`${file}: zip member '${name}' is encrypted`);
    if (ent.method !== 0) {
      throw new WeightsFormatError(`${file}: zip member '${name}' is compressed (method ${ent.method}); only stored (uncompressed) members are supported, as written by torch.save`);
    }
    if (ent.compressedSize !== ent.size) {
      throw new WeightsFormatError(`${file}: stored zip member '${name}' has compressed size ${ent.compressedSize} ≠ size ${ent.size}`);
    }
    return ent;
  };

  /** Parse a local header at the start of `buf` (read at ent.localHeaderOffset; holds at least header + name). */
  const parseLocal = (ent: ZipEntry, buf: Uint8Array): ZipDataRange => {
    const lv = view(buf);
    const at = ent.localHeaderOffset;
    if (buf.length < 30 || lv.getUint32(0, true) !== SIG_LOCAL) {
      throw new WeightsFormatError(`${file}: no zip local header for '${ent.name}' at offset ${at}`);
    }
    const n = lv.getUint16(26, true);
    const x = lv.getUint16(28, true);
    const want = enc.encode(ent.name);
    const got = buf.subarray(30, 30 + n);
    if (n !== want.length || got.length !== n || got.some((b, i) => b !== want[i])) {
      throw new WeightsFormatError(`${file}: zip local header at offset ${at} does not name '${ent.name}' (the directory and the file disagree)`);
    }
    const range = { offset: at + 30 + n + x, size: ent.size };
    const limit = limits.get(ent.name)!;
    if (range.offset + range.size > limit) {
      throw new WeightsFormatError(
        `${file}: zip member '${ent.name}' data (offset ${range.offset}, ${range.size} bytes) runs past the next header at ${limit}; the file is corrupt`,
      );
    }
    return range;
  };

  const dataRange = async (name: string): Promise<ZipDataRange> => {
    const cached = ranges.get(name);
    if (cached) return cached;
    const ent = entryOf(name);
    const r = parseLocal(ent, await source.read(ent.localHeaderOffset, 30 + enc.encode(name).length));
    ranges.set(name, r);
    return r;
  };

  const readMember = async (name: string, offset = 0, length?: number): Promise<Uint8Array> => {
    const ent = entryOf(name);
    const n = length ?? ent.size - offset;
    if (offset < 0 || n < 0 || offset + n > ent.size) {
      throw new WeightsFormatError(`${file}: read of ${n} bytes at ${offset} is outside zip member '${name}' (${ent.size} bytes)`);
    }
    const cached = ranges.get(name);
    if (cached) return source.read(cached.offset + offset, n);
    // Big reads: local header first, then exactly the data (no copy of a large buffer).
    if (offset + n > COMBINED_READ_MAX) return source.read((await dataRange(name)).offset + offset, n);
    // Small reads: local header and data in one request (saves a round trip per tensor over HTTP). torch's local
    // extra field is short (alignment padding), so read a little past the name and slice; a second read if longer.
    const guess = 30 + enc.encode(name).length + LOCAL_EXTRA_SLACK;
    const want = Math.min(guess + offset + n, cdOffset - ent.localHeaderOffset);
    const buf = await source.read(ent.localHeaderOffset, want);
    const r = parseLocal(ent, buf);
    ranges.set(name, r);
    const rel = r.offset - ent.localHeaderOffset + offset;
    if (rel + n <= buf.length) return buf.slice(rel, rel + n);
    return source.read(r.offset + offset, n);
  };

  return { source, entries, dataRange, readMember };
}
