/**
 * decodeImage: format detection from the bytes, dispatch to the PNG/JPEG decoders, clear ImageDecodeErrors for
 * non-images and for formats Node cannot decode, size limits. (Browser-decoded formats run in tests/e2e.)
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ImageDecodeError } from '../../src/errors';
import { decodeImage, probeImageSize, sniffImageFormat } from '../../src/vision/decode';
import { fixturePath } from '../helpers/fixtures';
import { encodePng } from '../helpers/png-encode';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const JPEG_DIR = fileURLToPath(new URL('../data/jpeg/', import.meta.url));
const jpegManifest = JSON.parse(readFileSync(JPEG_DIR + 'manifest.json', 'utf8')) as Record<string, { sha256: string }>;
const bytesOf = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Minimal headers (enough for sniffing and size probing; not decodable images). */
const GIF = bytesOf('GIF89a\x2c\x01\xc3\x01\x00\x00\x00');
const BMP = (() => {
  const b = new Uint8Array(54);
  const dv = new DataView(b.buffer);
  b.set(bytesOf('BM'));
  dv.setUint32(14, 40, true);
  dv.setInt32(18, 640, true);
  dv.setInt32(22, -480, true); // top-down
  return b;
})();
const WEBP_VP8X = (() => {
  const b = new Uint8Array(32);
  b.set(bytesOf('RIFF'));
  b.set(bytesOf('WEBPVP8X'), 8);
  const dv = new DataView(b.buffer);
  dv.setUint32(24, 1919, true); // width − 1 (24-bit)
  dv.setUint32(27, 1079, true); // height − 1 (24-bit, overlapping write is fine: little-endian low bytes first)
  return b;
})();

async function decodeError(bytes: Uint8Array, mime?: string, opts?: Parameters<typeof decodeImage>[2]): Promise<string> {
  try {
    await decodeImage(bytes, mime, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ImageDecodeError);
    return (e as Error).message;
  }
  throw new Error('expected decodeImage to throw');
}

describe('decodeImage', () => {
  it('decodes the PNG fixtures and JPEGs to RGB8 with Pillow-identical bytes, whatever the mime label says', async () => {
    const png = new Uint8Array(readFileSync(fixturePath('vision/image_0.png')));
    const img = await decodeImage(png, 'image/jpeg'); // wrong label: the bytes decide
    expect([img.width, img.height, img.data.length]).toEqual([512, 341, 512 * 341 * 3]);
    expect(sha256(img.data)).toBe('08844c24408ecb75363d6d034d27c7621218578b2e2dc96c6ddb399b44dd6649');
    for (const name of ['photo_420_q85.jpg', 'cj_prog_sa.jpg', 'pil_gray_q85.jpg', 'pil_cmyk_q90.jpg']) {
      const j = await decodeImage(new Uint8Array(readFileSync(JPEG_DIR + name)));
      expect(sha256(j.data), name).toBe(jpegManifest[name]!.sha256);
    }
  });

  it('drops alpha without compositing and replicates gray (RGBA and gray+alpha PNGs)', async () => {
    const rgba = encodePng({ width: 2, height: 1, colorType: 6, bitDepth: 8, samples: [10, 20, 30, 0, 40, 50, 60, 128] });
    expect(Array.from((await decodeImage(rgba)).data)).toEqual([10, 20, 30, 40, 50, 60]);
    const ga = encodePng({ width: 2, height: 1, colorType: 4, bitDepth: 8, samples: [7, 0, 200, 255] });
    expect(Array.from((await decodeImage(ga)).data)).toEqual([7, 7, 7, 200, 200, 200]);
  });

  it('sniffs formats from magic numbers and probes GIF/BMP/WebP sizes', () => {
    expect(sniffImageFormat(GIF)).toBe('gif');
    expect(sniffImageFormat(BMP)).toBe('bmp');
    expect(sniffImageFormat(WEBP_VP8X)).toBe('webp');
    expect(sniffImageFormat(bytesOf('\0\0\0\x1cftypavif\0\0\0\0'))).toBe('avif');
    expect(sniffImageFormat(bytesOf('\0\0\0\x18ftypheic\0\0\0\0'))).toBe('heic');
    expect(sniffImageFormat(bytesOf('II*\0\x08\0\0\0'))).toBe('tiff');
    expect(sniffImageFormat(bytesOf('  <svg xmlns="http://www.w3.org/2000/svg"/>'))).toBe('svg');
    expect(sniffImageFormat(bytesOf('<?xml version="1.0"?><svg/>'))).toBe('svg');
    expect(sniffImageFormat(bytesOf('<!doctype html><html>'))).toBeNull();
    expect(probeImageSize(GIF, 'gif')).toEqual({ width: 300, height: 451 });
    expect(probeImageSize(BMP, 'bmp')).toEqual({ width: 640, height: 480 });
    expect(probeImageSize(WEBP_VP8X, 'webp')).toEqual({ width: 1920, height: 1080 });
  });

  it('refuses non-images with a clear ImageDecodeError', async () => {
    expect(await decodeError(new Uint8Array(0), 'image/png')).toMatch(/empty file \(labelled image\/png\)/);
    expect(await decodeError(bytesOf('<!doctype html><html><body>404</body></html>'), 'image/png')).toMatch(
      /not an image \(labelled image\/png\): unrecognised file signature \(3c 21 64 6f/,
    );
    expect(await decodeError(bytesOf('%PDF-1.7\n'))).toMatch(/not an image/);
    expect(await decodeError(bytesOf('<svg xmlns="http://www.w3.org/2000/svg"></svg>'), 'image/svg+xml')).toMatch(/SVG images are not supported/);
    expect(await decodeError(bytesOf('MM\0*\0\0\0\x08'))).toMatch(/TIFF images are not supported/);
  });

  it('explains that GIF/WebP/BMP need a browser when run in Node', async () => {
    expect(typeof (globalThis as { createImageBitmap?: unknown }).createImageBitmap).toBe('undefined');
    for (const [b, name] of [[GIF, 'GIF'], [BMP, 'BMP'], [WEBP_VP8X, 'WEBP']] as const) {
      expect(await decodeError(b)).toMatch(new RegExp(`${name} decoding needs a browser`));
    }
  });

  it('applies size limits to PNG and JPEG', async () => {
    const png = new Uint8Array(readFileSync(fixturePath('vision/image_1.png')));
    expect(await decodeError(png, undefined, { limits: { maxSide: 400 } })).toMatch(/PNG: image is 300×451.*above the limit of 400 px/);
    const jpg = new Uint8Array(readFileSync(JPEG_DIR + 'photo_420_q85.jpg'));
    expect(await decodeError(jpg, undefined, { limits: { maxPixels: 100_000 } })).toMatch(/JPEG: image is 512×341/);
  });
});
