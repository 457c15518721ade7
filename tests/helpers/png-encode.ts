/**
 * A tiny PNG encoder for tests (node:zlib): any colour type / bit depth, optional Adam7, a chosen filter type per row
 * (to exercise every unfilter path), IDAT split into several chunks, extra chunks. Independent of src/vision/png.ts.
 *
 * @example
 * const bytes = encodePng({ width: 2, height: 1, colorType: 2, bitDepth: 8, samples: [255, 0, 0, 0, 0, 255] });
 */
import { crc32, deflateSync } from 'node:zlib';

export interface PngEncodeOptions {
  width: number;
  height: number;
  colorType: 0 | 2 | 3 | 4 | 6;
  bitDepth: 1 | 2 | 4 | 8 | 16;
  /** Raw sample values (at the given bit depth), row-major, samples of a pixel consecutive. */
  samples: ArrayLike<number>;
  interlaced?: boolean;
  /** RGB triples. */
  palette?: Uint8Array;
  trns?: Uint8Array;
  /** Filter type for every row, or 'cycle' (row r of each pass uses type r mod 5). Default 'cycle'. */
  filter?: 0 | 1 | 2 | 3 | 4 | 'cycle';
  /** Split the zlib stream into this many IDAT chunks (default 1). */
  idatChunks?: number;
  /** Chunks inserted right before the first IDAT. */
  extraChunks?: { type: string; data: Uint8Array }[];
  /** Replace the raw (filtered, uncompressed) data before compression, e.g. to corrupt a filter byte. */
  editRaw?: (raw: Uint8Array) => Uint8Array;
}

const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as const;
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** One chunk: length, type, data, CRC. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Pack `w` pixels (samples from `get(x, s)`) of one row into bytes at `bitDepth`. */
function packRow(w: number, ch: number, bitDepth: number, get: (x: number, s: number) => number): Uint8Array {
  const row = new Uint8Array(Math.ceil((w * ch * bitDepth) / 8));
  let bit = 0;
  for (let x = 0; x < w; x++) {
    for (let s = 0; s < ch; s++) {
      const v = get(x, s);
      if (bitDepth === 16) {
        row[bit >> 3] = v >> 8;
        row[(bit >> 3) + 1] = v & 255;
      } else if (bitDepth === 8) {
        row[bit >> 3] = v;
      } else {
        row[bit >> 3]! |= v << (8 - bitDepth - (bit & 7));
      }
      bit += bitDepth;
    }
  }
  return row;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Filter one row with type `t` given the previous raw row (null for the first row of a pass). */
function filterRow(t: number, row: Uint8Array, prev: Uint8Array | null, bpp: number): Uint8Array {
  const out = new Uint8Array(1 + row.length);
  out[0] = t;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp]! : 0;
    const b = prev ? prev[i]! : 0;
    const c = prev && i >= bpp ? prev[i - bpp]! : 0;
    const pred = t === 0 ? 0 : t === 1 ? a : t === 2 ? b : t === 3 ? (a + b) >> 1 : paeth(a, b, c);
    out[1 + i] = (row[i]! - pred) & 255;
  }
  return out;
}

/** The raw (filtered, uncompressed) image data. */
export function pngRawData(o: PngEncodeOptions): Uint8Array {
  const ch = CHANNELS[o.colorType];
  const bpp = Math.max(1, (ch * o.bitDepth) >> 3);
  const passes = o.interlaced ? ADAM7 : ([[0, 0, 1, 1]] as const);
  const rows: Uint8Array[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    const pw = o.width > x0 ? Math.ceil((o.width - x0) / dx) : 0;
    const ph = o.height > y0 ? Math.ceil((o.height - y0) / dy) : 0;
    if (pw === 0 || ph === 0) continue;
    let prev: Uint8Array | null = null;
    for (let j = 0; j < ph; j++) {
      const y = y0 + j * dy;
      const row = packRow(pw, ch, o.bitDepth, (i, s) => o.samples[((y * o.width) + x0 + i * dx) * ch + s]!);
      const t = o.filter === undefined || o.filter === 'cycle' ? j % 5 : o.filter;
      rows.push(filterRow(t, row, prev, bpp));
      prev = row;
    }
  }
  return concatBytes(rows);
}

export function encodePng(o: PngEncodeOptions): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, o.width);
  dv.setUint32(4, o.height);
  ihdr.set([o.bitDepth, o.colorType, 0, 0, o.interlaced ? 1 : 0], 8);
  const raw = pngRawData(o);
  const z = new Uint8Array(deflateSync(o.editRaw ? o.editRaw(raw) : raw));
  const n = Math.max(1, Math.min(o.idatChunks ?? 1, z.length));
  const idats: Uint8Array[] = [];
  for (let i = 0; i < n; i++) idats.push(pngChunk('IDAT', z.subarray(Math.floor((i * z.length) / n), Math.floor(((i + 1) * z.length) / n))));
  return concatBytes([
    Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10),
    pngChunk('IHDR', ihdr),
    ...(o.palette ? [pngChunk('PLTE', o.palette)] : []),
    ...(o.trns ? [pngChunk('tRNS', o.trns)] : []),
    ...(o.extraChunks ?? []).map((c) => pngChunk(c.type, c.data)),
    ...idats,
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}
