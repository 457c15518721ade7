/**
 * JPEG decoder vs Pillow: tests/data/jpeg holds files made by Pillow 9.4 and cjpeg (libjpeg-turbo 2.1.5) and the
 * sha256 of Pillow's `convert('RGB')` decode of each (tests/data/jpeg/make.py regenerates them). Every file must decode
 * to exactly Pillow's bytes. Plus truncation / corruption / limit errors.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ImageDecodeError } from '../../src/errors';
import { decodeJpeg, isJpeg, readJpegInfo } from '../../src/vision/jpeg';

const DIR = fileURLToPath(new URL('../data/jpeg/', import.meta.url));
const MANIFEST = JSON.parse(readFileSync(DIR + 'manifest.json', 'utf8')) as Record<string, { width: number; height: number; sha256: string; mode: string }>;
const file = (name: string) => new Uint8Array(readFileSync(DIR + name));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((o, p) => (out.set(p, o), o + p.length), 0);
  return out;
};
const EOI = Uint8Array.of(0xff, 0xd9);
/** Offset of the first marker `code` (e.g. 0xc0 for SOF0). */
const markerAt = (b: Uint8Array, code: number) => b.findIndex((v, i) => v === 0xff && b[i + 1] === code);

function expectDecodeError(bytes: Uint8Array, pattern: RegExp): void {
  let err: unknown;
  try {
    decodeJpeg(bytes);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected ImageDecodeError').toBeInstanceOf(ImageDecodeError);
  expect((err as Error).message).toMatch(pattern);
}

describe('decodeJpeg = Pillow (libjpeg-turbo ISLOW, fancy upsampling)', () => {
  const names = Object.keys(MANIFEST).filter((n) => n !== 'cj_arith.jpg');
  it.each(names)('%s', (name) => {
    const want = MANIFEST[name]!;
    const img = decodeJpeg(file(name));
    expect([img.width, img.height]).toEqual([want.width, want.height]);
    expect(img.data.length).toBe(want.width * want.height * 3);
    expect(sha256(img.data)).toBe(want.sha256);
  });

  it('covers the cases it claims to (progressive, restarts, sampling layouts, colour spaces)', () => {
    const info = (n: string) => readJpegInfo(file(n));
    expect(info('cj_prog_sa.jpg')).toMatchObject({ progressive: true, components: 3, colorSpace: 'ycbcr' });
    expect(info('pil_gray_q85.jpg')).toMatchObject({ progressive: false, components: 1, colorSpace: 'gray' });
    expect(info('cj_rgb.jpg').colorSpace).toBe('rgb'); // Adobe transform 0
    expect(info('pil_cmyk_q90.jpg')).toMatchObject({ components: 4, colorSpace: 'cmyk' });
    expect(info('photo_420_q85.jpg')).toMatchObject({ width: 512, height: 341 });
    // EXIF orientation 6 (rotate 90°) is ignored, as by Pillow's Image.open: the size is not swapped.
    expect(info('pil_exif_orient6.jpg')).toMatchObject({ width: 45, height: 29 });
    const restart = file('cj_restart_row.jpg');
    expect(markerAt(restart, 0xdd)).toBeGreaterThan(0); // DRI present
    expect(markerAt(restart, 0xd0)).toBeGreaterThan(0); // RST0 present
  });

  it('decodes a 512×341 baseline and a 300×451 progressive photo quickly', () => {
    for (const n of ['photo_420_q85.jpg', 'cj_prog_photo.jpg']) {
      const bytes = file(n);
      decodeJpeg(bytes); // warm-up
      const t0 = performance.now();
      decodeJpeg(bytes);
      const ms = performance.now() - t0;
      console.log(`[jpeg] ${n}: ${ms.toFixed(1)} ms`);
      expect(ms).toBeLessThan(2000);
    }
  });
});

describe('decodeJpeg: truncated and corrupt files', () => {
  it('refuses files that end inside the image data ("image file is truncated" in Pillow)', () => {
    const photo = file('photo_420_q85.jpg');
    for (const cut of [3, 100, 400, 5000, 20000, photo.length - 10]) expectDecodeError(photo.subarray(0, cut), /truncated/);
    expectDecodeError(file('cj_prog_photo.jpg').subarray(0, 30000), /truncated/);
  });

  it('decodes data cut short but closed by EOI the way libjpeg does (gray/zero fill), as Pillow', () => {
    // sha256 of Pillow's decode of file[:cut] + FF D9.
    const cases: [string, number, string][] = [
      ['photo_420_q85.jpg', 20000, 'f27de968ee98376c4c4ef232f54d265faf56b1668d577cad5f474d6ebebf7abc'],
      ['cj_restart_row.jpg', 799, '90164b78bef00f5379c828a64d578d31220ca8b2fc6b7b2567391154e25e4493'],
      ['pil_444_q95.jpg', 1800, '2cf1c91bf385dc4bc81e4e48cd9d3e0b5c7edfff3863354e468aa15bba03b1b5'],
      ['cj_prog_photo.jpg', 30000, '39f30bf3382e680480548ea2025c7b70398f8073ca33044dd7de034e05a063b8'],
    ];
    for (const [name, cut, hash] of cases) expect(sha256(decodeJpeg(concat(file(name).subarray(0, cut), EOI)).data), name).toBe(hash);
  });

  it('tolerates a missing EOI after complete data', () => {
    const b = file('pil_420_q90.jpg');
    expect(sha256(decodeJpeg(b.subarray(0, b.length - 2)).data)).toBe(MANIFEST['pil_420_q90.jpg']!.sha256);
  });

  it('refuses non-JPEG data and unsupported or invalid headers', () => {
    expect(isJpeg(file('pil_420_q90.jpg'))).toBe(true);
    expectDecodeError(new TextEncoder().encode('hello world'), /not a JPEG/);
    expectDecodeError(Uint8Array.of(0xff, 0xd8), /not a JPEG/);
    expectDecodeError(file('cj_arith.jpg'), /arithmetic coding/);
    const sof = (mutate: (b: Uint8Array, at: number) => void, src = 'pil_420_q90.jpg') => {
      const b = file(src).slice();
      mutate(b, markerAt(b, 0xc0));
      return b;
    };
    expectDecodeError(sof((b, at) => (b[at + 1] = 0xc3)), /lossless/);
    expectDecodeError(sof((b, at) => (b[at + 4] = 12)), /12-bit/);
    expectDecodeError(sof((b, at) => (b[at + 5] = b[at + 6] = 0)), /invalid image size/);
    expectDecodeError(sof((b, at) => (b[at + 11] = 0x35)), /bad sampling factors/); // V = 5
    expectDecodeError(sof((b, at) => ((b[at + 11] = 0x32), (b[at + 14] = 0x21))), /fractional sampling/); // Y 3×2, Cb 2×1
    expectDecodeError(sof((b, at) => (b[at + 9] = 2)), /number of components: 2/);
    // A scan before any frame header, and a DHT whose length runs past the end.
    const b = file('pil_420_q90.jpg');
    const sofAt = markerAt(b, 0xc0);
    const sofLen = (b[sofAt + 2]! << 8) | b[sofAt + 3]!;
    expectDecodeError(concat(b.subarray(0, sofAt), b.subarray(sofAt + 2 + sofLen)), /before the frame header/);
    const dht = markerAt(b, 0xc4);
    expectDecodeError(b.subarray(0, dht + 10), /truncated|corrupt/);
  });

  it('refuses images above the size limits from the header, without decoding', () => {
    const big = file('photo_420_q85.jpg').slice();
    const at = markerAt(big, 0xc0);
    big.set([0xea, 0x60, 0xea, 0x60], at + 5); // 60000 × 60000
    const t0 = performance.now();
    expectDecodeError(big, /60000×60000.*above the limit/);
    expect(performance.now() - t0).toBeLessThan(200);
    expect(() => decodeJpeg(file('pil_420_q90.jpg'), { limits: { maxPixels: 1000 } })).toThrow(/above the limit/);
    expect(readJpegInfo(big)).toMatchObject({ width: 60000, height: 60000 });
  });
});
