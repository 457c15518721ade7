/**
 * PNG decoder, pure TypeScript, for Node ≥ 18 and browsers alike: every colour type, bit depths 1–16, PLTE + tRNS,
 * Adam7 interlacing, the five filter types, CRC checks. zlib data is inflated with the platform's
 * `DecompressionStream('deflate')` (Node ≥ 18 and browsers; Node's is zlib underneath), falling back to our own
 * inflater (inflate.ts) when that stream fails (see `inflate` below).
 *
 * The output is 8-bit RGB (default) or RGBA with the pixel values Pillow gives for `Image.open(f).convert('RGB')`
 * (checked against Pillow 9.4 on hand-made files; see tests/unit/png.test.ts):
 * - no colour management: gAMA, cHRM, sRGB, iCCP are ignored;
 * - gray at 1/2/4 bits is scaled to 0–255 (×255, ×85, ×17); palette indices beyond the palette give (i, i, i)
 *   (Pillow's palette starts as a gray ramp);
 * - 16-bit RGB, RGBA and gray+alpha keep the **high byte** of each sample (Pillow's `RGB;16B`-style unpackers);
 * - 16-bit **gray** is opened by Pillow as a 32-bit integer image and `convert('RGB')` **clamps** it to 255 — so
 *   a sample ≥ 255 becomes white. This is what the official pipeline sees, so we do the same.
 * - RGB output drops alpha without compositing (like `convert('RGB')`); RGBA output takes alpha from the alpha
 *   channel or tRNS (tRNS compares full-precision samples, as the PNG spec says).
 *
 * Errors (not a PNG, truncated, corrupt zlib data, bad CRC in a critical chunk, invalid header, image above the
 * size limits) throw ImageDecodeError. Like libpng, a bad CRC in an ancillary chunk just drops that chunk. Like
 * Pillow, only the first run of consecutive IDAT chunks is image data, a missing IEND is tolerated and bytes after
 * the complete image data are ignored.
 *
 * @example
 * const { width, height, data } = await decodePng(bytes); // data: RGB8, row-major
 */
import { ImageDecodeError } from '../errors';
import { checkImageSize, DEFAULT_IMAGE_LIMITS, type ImageLimits } from './image';
import { inflateZlib } from './inflate';

export const PNG_SIGNATURE: Readonly<Uint8Array> = Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10);

/** The IHDR fields that matter for decoding. */
export interface PngHeader {
  width: number;
  height: number;
  bitDepth: 1 | 2 | 4 | 8 | 16;
  /** 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA. */
  colorType: 0 | 2 | 3 | 4 | 6;
  interlaced: boolean;
}

export interface PngDecodeOptions {
  /** 3 → RGB8 (default), 4 → RGBA8. */
  channels?: 3 | 4;
  /** Verify chunk CRCs (default true). */
  checkCrc?: boolean;
  /** Size limits (defaults: DEFAULT_IMAGE_LIMITS). */
  limits?: Partial<ImageLimits>;
}

export interface PngImage {
  width: number;
  height: number;
  channels: 3 | 4;
  /** `width * height * channels` bytes, row-major. */
  data: Uint8Array;
  header: PngHeader;
}

/** Allowed bit depths per colour type (PNG spec table 11.1). */
const DEPTHS: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
/** Samples per pixel per colour type. */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7 passes: [x0, y0, dx, dy]. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** True if `bytes` starts with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== PNG_SIGNATURE[i]) return false;
  return true;
}

/** Parse and validate the signature and IHDR only (cheap: for size checks before decoding). */
export function readPngHeader(bytes: Uint8Array): PngHeader {
  if (!isPng(bytes)) throw new ImageDecodeError('not a PNG file (bad signature)');
  if (bytes.length < 8 + 8 + 13 + 4) throw new ImageDecodeError('PNG truncated inside its IHDR chunk');
  if (u32(bytes, 8) !== 13 || chunkType(bytes, 12) !== 'IHDR') throw new ImageDecodeError('PNG does not start with a 13-byte IHDR chunk');
  return parseIhdr(bytes.subarray(16, 29));
}

/** Decode a PNG file to RGB8 or RGBA8. */
export async function decodePng(bytes: Uint8Array, options: PngDecodeOptions = {}): Promise<PngImage> {
  const channels = options.channels ?? 3;
  const limits = { ...DEFAULT_IMAGE_LIMITS, ...options.limits };
  const png = parseChunks(bytes, options.checkCrc ?? true);
  const { width, height, colorType, bitDepth, interlaced } = png.header;
  checkImageSize(width, height, limits, 'PNG');
  if (colorType === 3 && !png.palette) throw new ImageDecodeError('PNG: palette image without a PLTE chunk');
  if (png.idat.length === 0) throw new ImageDecodeError('PNG has no image data (no IDAT chunk)');

  const bitsPerPixel = SAMPLES[colorType]! * bitDepth;
  const bpp = Math.max(1, bitsPerPixel >> 3); // filter unit: bytes per complete pixel, at least 1
  const strideOf = (w: number) => Math.ceil((w * bitsPerPixel) / 8);
  const passes = interlaced
    ? ADAM7.map(([x0, y0, dx, dy]) => ({
        x0, y0, dx, dy,
        w: width > x0 ? Math.ceil((width - x0) / dx) : 0,
        h: height > y0 ? Math.ceil((height - y0) / dy) : 0,
      })).filter((p) => p.w > 0 && p.h > 0)
    : [{ x0: 0, y0: 0, dx: 1, dy: 1, w: width, h: height }];
  const expected = passes.reduce((n, p) => n + p.h * (1 + strideOf(p.w)), 0);

  const raw = await inflate(png.idat, expected);
  const out = new Uint8Array(width * height * channels);
  const emit = rowEmitter(png, channels);
  let pos = 0;
  for (const p of passes) {
    const stride = strideOf(p.w);
    unfilter(raw, pos, p.h, stride, bpp);
    for (let j = 0; j < p.h; j++) {
      const rowStart = pos + j * (1 + stride) + 1;
      emit(raw, rowStart, p.w, out, ((p.y0 + j * p.dy) * width + p.x0) * channels, p.dx * channels);
    }
    pos += p.h * (1 + stride);
  }
  return { width, height, channels, data: out, header: png.header };
}

// ---------------------------------------------------------------------------------------------------------------
// Chunks

interface ParsedPng {
  header: PngHeader;
  /** RGB triples. */
  palette?: Uint8Array;
  /** Raw tRNS payload (alpha per palette entry, or one 16-bit gray / three 16-bit RGB sample values). */
  trns?: Uint8Array;
  idat: Uint8Array[];
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function chunkType(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
}

function parseIhdr(d: Uint8Array): PngHeader {
  const width = u32(d, 0);
  const height = u32(d, 4);
  const [bitDepth, colorType, compression, filter, interlace] = [d[8]!, d[9]!, d[10]!, d[11]!, d[12]!];
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new ImageDecodeError(`PNG: invalid size ${width}×${height} in IHDR`);
  }
  if (!DEPTHS[colorType]?.includes(bitDepth)) {
    throw new ImageDecodeError(`PNG: invalid colour type ${colorType} with bit depth ${bitDepth}`);
  }
  if (compression !== 0 || filter !== 0 || interlace > 1) {
    throw new ImageDecodeError(`PNG: unknown compression/filter/interlace method (${compression}/${filter}/${interlace})`);
  }
  return {
    width,
    height,
    bitDepth: bitDepth as PngHeader['bitDepth'],
    colorType: colorType as PngHeader['colorType'],
    interlaced: interlace === 1,
  };
}

function parseChunks(bytes: Uint8Array, checkCrc: boolean): ParsedPng {
  const header = readPngHeader(bytes);
  const png: ParsedPng = { header, idat: [] };
  let state: 'before' | 'idat' | 'after' = 'before'; // relative to the first run of IDAT chunks
  let pos = 8;
  for (;;) {
    if (pos === bytes.length) break; // no IEND: tolerated (Pillow does); missing data is caught by inflate
    if (pos + 12 > bytes.length || pos + 12 + u32(bytes, pos) > bytes.length) {
      if (state === 'before') throw new ImageDecodeError(`PNG truncated at byte ${pos} (before the image data)`);
      break; // a truncated IDAT leaves the image data short: inflate reports it
    }
    const length = u32(bytes, pos);
    if (length > 0x7fffffff) throw new ImageDecodeError(`PNG: chunk length ${length} at byte ${pos} is invalid`);
    const type = chunkType(bytes, pos + 4);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new ImageDecodeError(`PNG: invalid chunk type at byte ${pos + 4} (corrupt file?)`);
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    const critical = type.charCodeAt(0) < 97; // uppercase first letter
    const crcOk = !checkCrc || crc32(bytes, pos + 4, length + 4) === u32(bytes, pos + 8 + length);
    pos += 12 + length;
    if (!crcOk) {
      if (critical) throw new ImageDecodeError(`PNG: CRC mismatch in the ${type} chunk (corrupt file)`);
      continue; // libpng drops ancillary chunks with a bad CRC
    }
    if (type === 'IDAT') {
      if (state === 'after') continue; // Pillow reads only the first run of IDAT chunks
      state = 'idat';
      png.idat.push(data);
      continue;
    }
    if (state === 'idat') state = 'after';
    if (type === 'IEND') break;
    if (type === 'IHDR') {
      if (pos - 12 - length !== 8) throw new ImageDecodeError('PNG: more than one IHDR chunk');
    } else if (type === 'PLTE' && state === 'before') {
      if (length % 3 !== 0 || length === 0 || length > 768) throw new ImageDecodeError(`PNG: invalid PLTE length ${length}`);
      png.palette = data;
    } else if (type === 'tRNS' && state === 'before') {
      png.trns = data;
    }
    // Everything else (gAMA, cHRM, sRGB, iCCP, text, APNG chunks, ...) is ignored: no colour management, as PIL.
  }
  return png;
}

let CRC_TABLE: Uint32Array | undefined;

/** CRC-32 (ISO-HDLC, as PNG and zlib) of `len` bytes of `b` from `at`. */
export function crc32(b: Uint8Array, at = 0, len = b.length - at): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = at, end = at + len; i < end; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------------
// zlib

/**
 * Inflate the concatenated IDAT payloads (one zlib stream) into exactly `expected` bytes, with the platform's
 * DecompressionStream. Stops reading once the image data is complete (extra data is ignored, as Pillow does); never
 * holds more than `expected` output bytes (bomb-safe). If the stream fails first, the data goes through our own
 * inflater (inflate.ts), which stops at the end of the zlib stream: Chromium's DecompressionStream rejects trailing
 * bytes after the stream and drops output it already produced, while Pillow decodes such files. Fewer bytes than
 * expected from both is an ImageDecodeError.
 */
async function inflate(parts: Uint8Array[], expected: number): Promise<Uint8Array> {
  let failure: unknown;
  let filled = 0;
  if (typeof DecompressionStream !== 'undefined') {
    const out = new Uint8Array(expected);
    const ds = new DecompressionStream('deflate');
    const writer = ds.writable.getWriter();
    const reader = ds.readable.getReader();
    const writing = (async () => {
      for (const p of parts) await writer.write(p as Uint8Array<ArrayBuffer>);
      await writer.close();
    })();
    writing.catch(() => {}); // a write fails when the stream errors or we cancel it; the reader reports the cause
    try {
      while (filled < expected) {
        const { value, done } = await reader.read();
        if (done) break;
        const n = Math.min(value.length, expected - filled);
        out.set(n === value.length ? value : value.subarray(0, n), filled);
        filled += n;
      }
    } catch (e) {
      failure = e;
    }
    reader.cancel().catch(() => {});
    if (filled === expected) return out;
    if (!failure) throw incomplete(filled, expected, 'the compressed data ends early');
  }
  const all = parts.length === 1 ? parts[0]! : concat(parts);
  const r = inflateZlib(all, expected);
  if (r.error) throw incomplete(r.filled, expected, `corrupt compressed data (${r.error})`, failure);
  return r.data;
}

function incomplete(filled: number, expected: number, why: string, cause?: unknown): ImageDecodeError {
  return new ImageDecodeError(`PNG image data is incomplete: got ${filled} of ${expected} bytes; ${why}`, { cause });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Filters and pixels

/** Undo the per-row filters in place: `rows` rows of (1 filter byte + `stride` bytes) starting at `pos`. */
function unfilter(buf: Uint8Array, pos: number, rows: number, stride: number, bpp: number): void {
  let prev = -1; // start of the previous reconstructed row (none for the first row of a pass)
  for (let r = 0; r < rows; r++, pos += 1 + stride) {
    const ft = buf[pos]!;
    const cur = pos + 1;
    switch (ft) {
      case 0:
        break;
      case 1: // Sub
        for (let i = bpp; i < stride; i++) buf[cur + i] = buf[cur + i]! + buf[cur + i - bpp]!;
        break;
      case 2: // Up
        if (prev >= 0) for (let i = 0; i < stride; i++) buf[cur + i] = buf[cur + i]! + buf[prev + i]!;
        break;
      case 3: // Average
        for (let i = 0; i < stride; i++) {
          const left = i >= bpp ? buf[cur + i - bpp]! : 0;
          const up = prev >= 0 ? buf[prev + i]! : 0;
          buf[cur + i] = buf[cur + i]! + ((left + up) >> 1);
        }
        break;
      case 4: // Paeth
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? buf[cur + i - bpp]! : 0;
          const b = prev >= 0 ? buf[prev + i]! : 0;
          const c = i >= bpp && prev >= 0 ? buf[prev + i - bpp]! : 0;
          const pa = Math.abs(b - c);
          const pb = Math.abs(a - c);
          const pc = Math.abs(a + b - 2 * c);
          buf[cur + i] = buf[cur + i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        throw new ImageDecodeError(`PNG: invalid filter type ${ft} (corrupt image data)`);
    }
    prev = cur;
  }
}

/** Writes `n` pixels of one unfiltered row at `src[at..]` to `out[o]`, `out[o + step]`, ... */
type RowEmitter = (src: Uint8Array, at: number, n: number, out: Uint8Array, o: number, step: number) => void;

function rowEmitter(png: ParsedPng, channels: 3 | 4): RowEmitter {
  const { colorType, bitDepth } = png.header;
  const rgba = channels === 4;
  const trns = png.trns;
  const deep = bitDepth === 16;

  if (colorType === 0 || colorType === 3) {
    // One sample per pixel, possibly packed below a byte.
    const mask = (1 << bitDepth) - 1;
    const perByte = 8 / bitDepth;
    const sample = deep
      ? (src: Uint8Array, at: number, i: number) => (src[at + 2 * i]! << 8) | src[at + 2 * i + 1]!
      : bitDepth === 8
        ? (src: Uint8Array, at: number, i: number) => src[at + i]!
        : (src: Uint8Array, at: number, i: number) =>
            (src[at + Math.floor(i / perByte)]! >> (8 - bitDepth * (1 + (i % perByte)))) & mask;
    if (colorType === 0) {
      const scale = bitDepth < 8 ? 255 / mask : 1; // 1→255, 2→85, 4→17 (exact integers)
      const key = trns && trns.length >= 2 ? ((trns[0]! << 8) | trns[1]!) & (deep ? 0xffff : mask) : -1;
      return (src, at, n, out, o, step) => {
        for (let i = 0; i < n; i++, o += step) {
          const v = sample(src, at, i);
          const g = deep ? Math.min(v, 255) : v * scale; // 16-bit gray: Pillow clamps (mode I → RGB)
          out[o] = g;
          out[o + 1] = g;
          out[o + 2] = g;
          if (rgba) out[o + 3] = v === key ? 0 : 255;
        }
      };
    }
    // Palette: indices past the end of PLTE read Pillow's initial gray ramp (i, i, i).
    const pal = png.palette!;
    const entries = pal.length / 3;
    return (src, at, n, out, o, step) => {
      for (let i = 0; i < n; i++, o += step) {
        const v = sample(src, at, i);
        if (v < entries) {
          out[o] = pal[3 * v]!;
          out[o + 1] = pal[3 * v + 1]!;
          out[o + 2] = pal[3 * v + 2]!;
        } else {
          out[o] = v;
          out[o + 1] = v;
          out[o + 2] = v;
        }
        if (rgba) out[o + 3] = trns && v < trns.length ? trns[v]! : 255;
      }
    };
  }

  // 8- or 16-bit samples: keep the first (high) byte of each 16-bit sample.
  const bytesPerSample = deep ? 2 : 1;
  const spp = SAMPLES[colorType]!;
  const pixelBytes = spp * bytesPerSample;
  if (colorType === 2) {
    const key = trns && trns.length >= 6 ? [(trns[0]! << 8) | trns[1]!, (trns[2]! << 8) | trns[3]!, (trns[4]! << 8) | trns[5]!] : null;
    const s = (src: Uint8Array, p: number) => (deep ? (src[p]! << 8) | src[p + 1]! : src[p]!);
    return (src, at, n, out, o, step) => {
      for (let i = 0, p = at; i < n; i++, o += step, p += pixelBytes) {
        out[o] = src[p]!;
        out[o + 1] = src[p + bytesPerSample]!;
        out[o + 2] = src[p + 2 * bytesPerSample]!;
        if (rgba) {
          const transparent = key !== null && s(src, p) === key[0] && s(src, p + bytesPerSample) === key[1] && s(src, p + 2 * bytesPerSample) === key[2];
          out[o + 3] = transparent ? 0 : 255;
        }
      }
    };
  }
  if (colorType === 4) {
    return (src, at, n, out, o, step) => {
      for (let i = 0, p = at; i < n; i++, o += step, p += pixelBytes) {
        const g = src[p]!;
        out[o] = g;
        out[o + 1] = g;
        out[o + 2] = g;
        if (rgba) out[o + 3] = src[p + bytesPerSample]!;
      }
    };
  }
  // colorType 6
  return (src, at, n, out, o, step) => {
    for (let i = 0, p = at; i < n; i++, o += step, p += pixelBytes) {
      out[o] = src[p]!;
      out[o + 1] = src[p + bytesPerSample]!;
      out[o + 2] = src[p + 2 * bytesPerSample]!;
      if (rgba) out[o + 3] = src[p + 3 * bytesPerSample]!;
    }
  };
}
