/**
 * PNG decoder: every colour type × bit depth, Adam7, every filter type, tRNS/PLTE, split IDAT, Pillow's conversions
 * to 8-bit RGB (values recorded with Pillow 9.4), and typed errors for corrupt, truncated and oversized files.
 * Test files come from tests/helpers/png-encode.ts (node:zlib), written independently of the decoder.
 */
import { describe, expect, it } from 'vitest';
import { ImageDecodeError, VisualRwkvError } from '../../src/errors';
import { decodePng, isPng, readPngHeader, type PngDecodeOptions } from '../../src/vision/png';
import { concatBytes, encodePng, pngChunk, type PngEncodeOptions } from '../helpers/png-encode';

type Ct = PngEncodeOptions['colorType'];
type Depth = PngEncodeOptions['bitDepth'];

const COMBOS: [Ct, Depth][] = [
  [0, 1], [0, 2], [0, 4], [0, 8], [0, 16],
  [2, 8], [2, 16],
  [3, 1], [3, 2], [3, 4], [3, 8],
  [4, 8], [4, 16],
  [6, 8], [6, 16],
];
const CHANNELS: Record<Ct, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Sizes: Adam7 passes partly empty (1×1, 3×2), odd widths that leave sub-byte padding (13×11), a wide row. */
const SIZES: [number, number][] = [[1, 1], [3, 2], [13, 11], [67, 5]];

/** Mulberry32: a small seeded PRNG so failures reproduce. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random image of the given type with PLTE/tRNS where meaningful. */
function makeCase(ct: Ct, depth: Depth, width: number, height: number, seed: number, withTrns: boolean): PngEncodeOptions {
  const r = rng(seed);
  const max = 2 ** depth - 1;
  const ch = CHANNELS[ct];
  const samples = Array.from({ length: width * height * ch }, () => {
    // Bias 16-bit gray towards values below 256, where Pillow's clamp does not saturate.
    if (ct === 0 && depth === 16 && r() < 0.5) return Math.floor(r() * 300);
    return Math.floor(r() * (max + 1));
  });
  const o: PngEncodeOptions = { width, height, colorType: ct, bitDepth: depth, samples };
  if (ct === 3) {
    // Fewer entries than indices, so some indices fall past the palette.
    const entries = Math.max(1, Math.min(256, max));
    o.palette = Uint8Array.from({ length: entries * 3 }, () => Math.floor(r() * 256));
    if (withTrns) o.trns = Uint8Array.from({ length: Math.max(1, entries >> 1) }, () => Math.floor(r() * 256));
  } else if (withTrns && ct === 0) {
    o.trns = Uint8Array.of(samples[0]! >> 8, samples[0]! & 255);
  } else if (withTrns && ct === 2) {
    const [a, b, c] = [samples[0]!, samples[1]!, samples[2]!];
    o.trns = Uint8Array.of(a >> 8, a & 255, b >> 8, b & 255, c >> 8, c & 255);
  }
  return o;
}

/** What Pillow's `convert('RGB')` (and PNG tRNS semantics for alpha) give, written from the rules, not the decoder. */
function expected(o: PngEncodeOptions, channels: 3 | 4): Uint8Array {
  const { width, height, colorType: ct, bitDepth: d, samples } = o;
  const ch = CHANNELS[ct];
  const out = new Uint8Array(width * height * channels);
  const to8 = (v: number) => (d === 16 ? v >> 8 : v);
  for (let p = 0; p < width * height; p++) {
    const s = (k: number) => samples[p * ch + k]!;
    let rgb: number[];
    let a = 255;
    if (ct === 0) {
      const v = s(0);
      const g = d === 16 ? Math.min(v, 255) : d === 8 ? v : Math.round((v * 255) / (2 ** d - 1));
      rgb = [g, g, g];
      if (o.trns && v === ((o.trns[0]! << 8) | o.trns[1]!)) a = 0;
    } else if (ct === 3) {
      const i = s(0);
      const pal = o.palette!;
      rgb = 3 * i < pal.length ? [pal[3 * i]!, pal[3 * i + 1]!, pal[3 * i + 2]!] : [i, i, i];
      if (o.trns && i < o.trns.length) a = o.trns[i]!;
    } else if (ct === 2) {
      rgb = [to8(s(0)), to8(s(1)), to8(s(2))];
      const t = o.trns;
      if (t && s(0) === ((t[0]! << 8) | t[1]!) && s(1) === ((t[2]! << 8) | t[3]!) && s(2) === ((t[4]! << 8) | t[5]!)) a = 0;
    } else if (ct === 4) {
      rgb = [to8(s(0)), to8(s(0)), to8(s(0))];
      a = to8(s(1));
    } else {
      rgb = [to8(s(0)), to8(s(1)), to8(s(2))];
      a = to8(s(3));
    }
    out.set(channels === 4 ? [...rgb, a] : rgb, p * channels);
  }
  return out;
}

function firstDiff(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `byte ${i}: ${a[i]} vs ${b[i]}`;
  return '';
}

async function decodeError(bytes: Uint8Array, opts?: PngDecodeOptions): Promise<ImageDecodeError> {
  try {
    await decodePng(bytes, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ImageDecodeError);
    expect(e).toBeInstanceOf(VisualRwkvError);
    expect((e as Error).name).toBe('ImageDecodeError');
    return e as ImageDecodeError;
  }
  throw new Error('expected decodePng to throw');
}

const rgbOf = async (o: PngEncodeOptions) => Array.from((await decodePng(encodePng(o))).data);
const rgbaOf = async (o: PngEncodeOptions) => Array.from((await decodePng(encodePng(o), { channels: 4 })).data);

describe('decodePng: colour types, bit depths, interlacing, filters', () => {
  for (const [ct, depth] of COMBOS) {
    it(`colour type ${ct}, ${depth}-bit: RGB and RGBA, plain and Adam7, all sizes`, async () => {
      let seed = ct * 100 + depth;
      for (const [w, h] of SIZES) {
        for (const interlaced of [false, true]) {
          for (const withTrns of [false, true]) {
            const o = { ...makeCase(ct, depth, w, h, seed++, withTrns), interlaced, idatChunks: 3 };
            const bytes = encodePng(o);
            const tag = `${w}×${h} interlaced=${interlaced} trns=${withTrns}`;
            const rgb = await decodePng(bytes);
            expect([rgb.width, rgb.height, rgb.channels], tag).toEqual([w, h, 3]);
            expect(rgb.header).toEqual({ width: w, height: h, bitDepth: depth, colorType: ct, interlaced });
            expect(firstDiff(rgb.data, expected(o, 3)), tag).toBe('');
            const rgba = await decodePng(bytes, { channels: 4 });
            expect(firstDiff(rgba.data, expected(o, 4)), tag).toBe('');
          }
        }
      }
    });
  }

  for (const filter of [0, 1, 2, 3, 4] as const) {
    it(`filter type ${filter} on every row (incl. the first row of each pass), 8- and 16-bit RGBA and 2-bit gray`, async () => {
      for (const [ct, depth] of [[6, 8], [6, 16], [0, 2]] as [Ct, Depth][]) {
        for (const interlaced of [false, true]) {
          const o = { ...makeCase(ct, depth, 21, 17, 7 + filter, false), interlaced, filter };
          const got = await decodePng(encodePng(o), { channels: 4 });
          expect(firstDiff(got.data, expected(o, 4)), `${ct}/${depth} interlaced=${interlaced}`).toBe('');
        }
      }
    });
  }

  it('decodes an IDAT stream split into 1-byte chunks and ignores ancillary chunks (gAMA, iCCP, cHRM, sRGB, tEXt)', async () => {
    const o = makeCase(2, 8, 9, 7, 99, false);
    const junk = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 37) & 255);
    const bytes = encodePng({
      ...o,
      idatChunks: 10_000,
      extraChunks: [
        { type: 'gAMA', data: Uint8Array.of(0, 0, 0x7a, 0x12) },
        { type: 'iCCP', data: junk(40) },
        { type: 'cHRM', data: junk(32) },
        { type: 'sRGB', data: Uint8Array.of(0) },
        { type: 'tEXt', data: new TextEncoder().encode('Comment\0hello') },
      ],
    });
    expect(firstDiff((await decodePng(bytes)).data, expected(o, 3))).toBe('');
  });
});

describe('decodePng: the fallback inflater (used when DecompressionStream fails, e.g. Chromium on trailing bytes)', () => {
  it('decodes every colour type identically with DecompressionStream unavailable, and tolerates bytes after the zlib stream', async () => {
    const saved = globalThis.DecompressionStream;
    try {
      (globalThis as { DecompressionStream?: unknown }).DecompressionStream = undefined;
      for (const [ct, depth] of COMBOS) {
        const o = { ...makeCase(ct, depth, 13, 11, 500 + ct * 20 + depth, true), interlaced: depth % 2 === 0, idatChunks: 4 };
        expect(firstDiff((await decodePng(encodePng(o), { channels: 4 })).data, expected(o, 4)), `${ct}/${depth}`).toBe('');
      }
      const base = makeCase(2, 8, 30, 20, 77, false);
      const junk = encodePng(base); // then rebuilt below with junk after the zlib stream, inside the IDAT
      const idatLen = new DataView(junk.buffer).getUint32(33);
      const idatData = junk.subarray(41, 41 + idatLen);
      const withJunk = concatBytes([junk.subarray(0, 33), pngChunk('IDAT', concatBytes([idatData, new Uint8Array(9).fill(0x55)])), junk.subarray(41 + idatLen + 4)]);
      expect(firstDiff((await decodePng(withJunk)).data, expected(base, 3))).toBe('');
      const halfStream = concatBytes([junk.subarray(0, 33), pngChunk('IDAT', idatData.subarray(0, idatLen >> 1)), pngChunk('IEND', new Uint8Array(0))]);
      expect((await decodeError(halfStream)).message).toMatch(/incomplete.*ends early/);
    } finally {
      globalThis.DecompressionStream = saved;
    }
  });
});

describe("decodePng: Pillow's conversions (values recorded from Pillow 9.4 convert('RGB') / convert('RGBA'))", () => {
  const one = (ct: Ct, depth: Depth, samples: number[], extra: Partial<PngEncodeOptions> = {}) => ({
    width: samples.length / CHANNELS[ct],
    height: 1,
    colorType: ct,
    bitDepth: depth,
    samples,
    filter: 0 as const,
    ...extra,
  });

  it('16-bit RGB / RGBA / gray+alpha keep the high byte', async () => {
    expect(await rgbOf(one(2, 16, [0x0000, 0x00ff, 0x0180, 0x7fff, 0x80ff, 0xffff]))).toEqual([0, 0, 1, 127, 128, 255]);
    expect(await rgbaOf(one(6, 16, [0x1280, 0x34ff, 0x5600, 0x7801]))).toEqual([18, 52, 86, 120]);
    const ga = one(4, 16, [0x0000, 0x00ff, 0x0180, 0x7fff, 0x80ff, 0xffff]);
    expect(await rgbOf(ga)).toEqual([0, 0, 0, 1, 1, 1, 128, 128, 128]);
    expect(await rgbaOf(ga)).toEqual([0, 0, 0, 0, 1, 1, 1, 127, 128, 128, 128, 255]);
  });

  it('16-bit gray is clamped to 255 (Pillow mode I → RGB), not scaled', async () => {
    const g = await rgbOf(one(0, 16, [0x0000, 0x00ff, 0x0180, 0x7fff, 0x80ff, 0xffff, 0x0007]));
    expect(g).toEqual([0, 0, 0, ...Array(15).fill(255), 7, 7, 7]);
  });

  it('low-depth gray is scaled; palette indices past PLTE give (i, i, i); tRNS only affects RGBA', async () => {
    expect(await rgbOf(one(0, 4, [0, 1, 9, 15]))).toEqual([0, 0, 0, 17, 17, 17, 153, 153, 153, 255, 255, 255]);
    expect(await rgbOf(one(0, 2, [0, 1, 2, 3]))).toEqual([0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]);
    expect((await rgbOf(one(0, 1, [1, 0, 1, 1, 0, 0, 0, 0]))).filter((_, i) => i % 3 === 0)).toEqual([255, 0, 255, 255, 0, 0, 0, 0]);
    const pal = one(3, 8, [0, 1, 5], { palette: Uint8Array.of(10, 20, 30, 40, 50, 60), trns: Uint8Array.of(7) });
    expect(await rgbOf(pal)).toEqual([10, 20, 30, 40, 50, 60, 5, 5, 5]);
    expect(await rgbaOf(pal)).toEqual([10, 20, 30, 7, 40, 50, 60, 255, 5, 5, 5, 255]);
    const gt = one(0, 8, [0, 7, 255], { trns: Uint8Array.of(0, 7) });
    expect(await rgbOf(gt)).toEqual([0, 0, 0, 7, 7, 7, 255, 255, 255]);
    expect(await rgbaOf(gt)).toEqual([0, 0, 0, 255, 7, 7, 7, 0, 255, 255, 255, 255]);
    const rt = one(2, 8, [1, 2, 3, 4, 5, 6], { trns: Uint8Array.of(0, 1, 0, 2, 0, 3) });
    expect(await rgbOf(rt)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await rgbaOf(rt)).toEqual([1, 2, 3, 0, 4, 5, 6, 255]);
    expect(await rgbOf(one(0, 16, [0x1234, 7], { trns: Uint8Array.of(0x12, 0x34) }))).toEqual([255, 255, 255, 7, 7, 7]);
  });
});

describe('decodePng: errors and limits', () => {
  const good = () => encodePng({ ...makeCase(2, 8, 8, 8, 5, false), idatChunks: 2 });

  it('refuses non-PNG input', async () => {
    expect(isPng(good())).toBe(true);
    expect(isPng(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0))).toBe(false);
    expect((await decodeError(new Uint8Array(0))).message).toMatch(/not a PNG/);
    expect((await decodeError(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 16, 74, 70, 73, 70))).message).toMatch(/not a PNG/);
    expect((await decodeError(new TextEncoder().encode('<html>not an image</html>'))).message).toMatch(/not a PNG/);
    expect(() => readPngHeader(Uint8Array.of(1, 2, 3))).toThrow(ImageDecodeError);
  });

  it('refuses truncated files, but tolerates a missing IEND after complete image data', async () => {
    const bytes = good();
    for (const n of [8, 12, 20, 28, 33, 40, 60]) await decodeError(bytes.subarray(0, n));
    // Cut inside the last IDAT: the image data is incomplete.
    expect((await decodeError(bytes.subarray(0, bytes.length - 12 - 40))).message).toMatch(/incomplete|truncated/);
    // Without IEND the data is complete: Pillow decodes it, so do we.
    const noEnd = await decodePng(bytes.subarray(0, bytes.length - 12));
    expect(noEnd.data).toEqual((await decodePng(bytes)).data);
  });

  it('checks CRCs: critical chunks fail, ancillary chunks with a bad CRC are dropped; checkCrc: false skips the check', async () => {
    const bytes = good().slice();
    const idat = bytes.findIndex((_, i) => bytes[i] === 73 && bytes[i + 1] === 68 && bytes[i + 2] === 65 && bytes[i + 3] === 84);
    bytes[idat + 4 + 20] ^= 0x55; // a byte of compressed data
    expect((await decodeError(bytes)).message).toMatch(/CRC mismatch in the IDAT/);
    const z = good().slice();
    z[idat + 4] ^= 0xff; // zlib header (CMF) → the inflater fails
    expect((await decodeError(z)).message).toMatch(/CRC/);
    expect((await decodeError(z, { checkCrc: false })).message).toMatch(/incomplete.*corrupt compressed data/);

    const text = pngChunk('tEXt', new TextEncoder().encode('a\0b'));
    text[text.length - 1] ^= 1;
    const g = good();
    const withBadText = concatBytes([g.subarray(0, 33), text, g.subarray(33)]);
    expect((await decodePng(withBadText)).data).toEqual((await decodePng(g)).data);
  });

  it('refuses invalid headers, missing PLTE/IDAT, bad filter types and short image data', async () => {
    const base = makeCase(2, 8, 4, 4, 1, false);
    const ihdr = (w: number, h: number, depth: number, ct: number, interlace = 0) => {
      const d = new Uint8Array(13);
      new DataView(d.buffer).setUint32(0, w);
      new DataView(d.buffer).setUint32(4, h);
      d.set([depth, ct, 0, 0, interlace], 8);
      return d;
    };
    const file = (...chunks: Uint8Array[]) => concatBytes([Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10), ...chunks, pngChunk('IEND', new Uint8Array(0))]);
    const idatOf = (o: PngEncodeOptions) => {
      const b = encodePng({ ...o, palette: undefined, trns: undefined });
      return b.subarray(33, b.length - 12); // the IDAT chunk(s)
    };
    expect((await decodeError(file(pngChunk('IHDR', ihdr(4, 4, 4, 2)), idatOf(base)))).message).toMatch(/colour type 2 with bit depth 4/);
    expect((await decodeError(file(pngChunk('IHDR', ihdr(0, 4, 8, 2)), idatOf(base)))).message).toMatch(/invalid size/);
    expect((await decodeError(file(pngChunk('IHDR', ihdr(4, 4, 8, 2, 2)), idatOf(base)))).message).toMatch(/interlace/);
    expect((await decodeError(file(pngChunk('IHDR', ihdr(4, 4, 8, 2))))).message).toMatch(/no IDAT/);
    expect((await decodeError(file(pngChunk('gAMA', new Uint8Array(4)), pngChunk('IHDR', ihdr(4, 4, 8, 2))))).message).toMatch(/IHDR/);
    const pal = makeCase(3, 8, 4, 4, 1, false);
    expect((await decodeError(file(pngChunk('IHDR', ihdr(4, 4, 8, 3)), idatOf(pal)))).message).toMatch(/PLTE/);
    const badFilter = encodePng({ ...base, editRaw: (raw) => raw.map((v, i) => (i === 2 * (1 + 12) ? 5 : v)) });
    expect((await decodeError(badFilter)).message).toMatch(/filter type 5/);
    const short = encodePng({ ...base, editRaw: (raw) => raw.subarray(0, raw.length - 7) });
    expect((await decodeError(short)).message).toMatch(/incomplete: got 45 of 52 bytes/);
    // Extra data after the complete image is ignored (Pillow stops once the image is full).
    const long = encodePng({ ...base, editRaw: (raw) => concatBytes([raw, new Uint8Array(100)]) });
    expect(Array.from((await decodePng(long)).data)).toEqual(Array.from(expected(base, 3)));
  });

  it('refuses oversized images before inflating anything (decompression bombs)', async () => {
    const bomb = (w: number, h: number) => {
      const b = encodePng(makeCase(0, 8, 1, 1, 3, false));
      const ihdr = b.slice(16, 29);
      new DataView(ihdr.buffer).setUint32(0, w);
      new DataView(ihdr.buffer).setUint32(4, h);
      return concatBytes([b.subarray(0, 8), pngChunk('IHDR', ihdr), b.subarray(33)]);
    };
    const t0 = performance.now();
    expect((await decodeError(bomb(100_000, 100_000))).message).toMatch(/100000×100000.*above the limit/);
    expect((await decodeError(bomb(20_000, 1))).message).toMatch(/above the limit of 16384 px per side/);
    expect((await decodeError(bomb(12_000, 9_000))).message).toMatch(/108\.0 MP/);
    expect((await decodeError(encodePng(makeCase(0, 8, 40, 30, 3, false)), { limits: { maxPixels: 1000 } })).message).toMatch(/above the limit/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
