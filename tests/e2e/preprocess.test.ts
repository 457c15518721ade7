/**
 * The same image decoding + CLIP preprocessing in headless Chromium (vite dev server, sources imported directly by
 * tests/e2e/pages/preprocess.html): PNG fixtures → pixel_values vs the golden, resize+crop vs resized_cropped.png,
 * our JPEG decoder in the browser vs Pillow's hash, and the browser-decoder path (BMP exact, WebP approximate).
 */
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deflateSync } from 'node:zlib';
import { launchBrowser, openPage } from '../helpers/browser';
import { tensorF32 } from '../helpers/fixtures';
import { concatBytes, pngChunk, pngRawData } from '../helpers/png-encode';
import { ROOT, startServer, type TestServer } from '../helpers/server';

/** MANIFEST §6 tolerance for pixel_values (the issue asks for ≤ 1/255; PNG decoding is ours, so we expect exact). */
const PIXEL_VALUES_TOL = 1e-6;
/** Chromium's lossy WebP encoder at quality 1.0 on flat 8×8-aligned colour blocks: a few levels of error at most. */
const WEBP_TOL = 12;

interface VisionApi {
  decodeImage(bytes: Uint8Array, mime?: string): Promise<{ width: number; height: number; data: Uint8Array }>;
  sniffImageFormat(bytes: Uint8Array): string | null;
  clipPreprocess(img: { width: number; height: number; data: Uint8Array }): Float32Array;
  clipResizeCrop(img: { width: number; height: number; data: Uint8Array }): { width: number; height: number; data: Uint8Array };
}
declare const vision: VisionApi;

/** A 24-bit bottom-up BMP of `w × h` RGB pixels. */
function bmp24(w: number, h: number, rgb: Uint8Array): Uint8Array {
  const stride = Math.ceil((w * 3) / 4) * 4;
  const b = new Uint8Array(54 + stride * h);
  const dv = new DataView(b.buffer);
  b.set([0x42, 0x4d]);
  dv.setUint32(2, b.length, true);
  dv.setUint32(10, 54, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, w, true);
  dv.setInt32(22, h, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, 24, true);
  dv.setUint32(34, stride * h, true);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 3;
      const o = 54 + (h - 1 - y) * stride + x * 3;
      b[o] = rgb[s + 2]!;
      b[o + 1] = rgb[s + 1]!;
      b[o + 2] = rgb[s]!;
    }
  }
  return b;
}

describe('vision preprocessing in headless Chromium', () => {
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let errors: () => string[];

  beforeAll(async () => {
    server = await startServer({ mode: 'dev', mounts: { '/fixtures/': 'tests/fixtures', '/jpeg/': 'tests/data/jpeg' } });
    browser = await launchBrowser({ webgpu: false });
    const opened = await openPage(browser, `${server.url}tests/e2e/pages/preprocess.html`, { name: 'vision' });
    page = opened.page;
    errors = () => opened.log.errors();
    await page.locator('body[data-ready="true"]').waitFor({ state: 'attached', timeout: 60_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  for (const i of [0, 1]) {
    it(`image_${i}.png → pixel_values equal the golden; resize+crop equals resized_cropped.png`, async () => {
      const got = await page.evaluate(async (i) => {
        const load = async (p: string) => new Uint8Array(await (await fetch(p)).arrayBuffer());
        const bytes = await load(`/fixtures/vision/image_${i}.png`);
        const t0 = performance.now();
        const img = await vision.decodeImage(bytes, 'image/png');
        const px = vision.clipPreprocess(img);
        const ms = performance.now() - t0;
        const rc = vision.clipResizeCrop(img);
        const ref = await vision.decodeImage(await load(`/fixtures/vision/image_${i}.resized_cropped.png`));
        let diff = 0;
        for (let k = 0; k < ref.data.length; k++) if (rc.data[k] !== ref.data[k]) diff++;
        const u8 = new Uint8Array(px.buffer);
        let s = '';
        for (let k = 0; k < u8.length; k += 0x8000) s += String.fromCharCode(...u8.subarray(k, k + 0x8000));
        return { ms, diff, size: [img.width, img.height], px: btoa(s) };
      }, i);
      const px = new Float32Array(new Uint8Array(Buffer.from(got.px, 'base64')).buffer);
      const gold = tensorF32(`vision/image_${i}.clip.safetensors`, 'pixel_values');
      expect(px.length).toBe(gold.length);
      let worst = 0;
      let at = 0;
      for (let k = 0; k < px.length; k++) {
        const e = Math.abs(px[k]! - gold[k]!);
        if (e > worst) [worst, at] = [e, k];
      }
      console.log(`[e2e vision] image_${i} ${got.size.join('×')}: decode+preprocess ${got.ms.toFixed(1)} ms, pixel_values max |Δ| = ${worst}`);
      expect(got.diff).toBe(0);
      expect(worst, `index ${at}: ${px[at]} vs ${gold[at]}`).toBeLessThanOrEqual(PIXEL_VALUES_TOL);
      expect(errors()).toEqual([]);
    });
  }

  it('decodes JPEGs with our decoder in the browser too (same bytes as Pillow)', async () => {
    const manifest = JSON.parse(readFileSync(`${ROOT}/tests/data/jpeg/manifest.json`, 'utf8')) as Record<string, { sha256: string }>;
    const names = ['photo_420_q85.jpg', 'cj_prog_photo.jpg', 'cj_restart_row.jpg', 'pil_cmyk_q90.jpg', 'pil_exif_orient6.jpg'];
    const got = await page.evaluate(async (names) => {
      const out: Record<string, string> = {};
      for (const n of names) {
        const img = await vision.decodeImage(new Uint8Array(await (await fetch(`/jpeg/${n}`)).arrayBuffer()), 'image/jpeg');
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', img.data as Uint8Array<ArrayBuffer>));
        out[n] = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
      }
      return out;
    }, names);
    for (const n of names) expect(got[n], n).toBe(manifest[n]!.sha256);
  });

  it('decodes a PNG with bytes after the zlib stream (Chromium\'s DecompressionStream rejects them; Pillow does not)', async () => {
    const [w, h] = [400, 300];
    const samples = Array.from({ length: w * h * 3 }, (_, i) => (i * 7 + (i >> 9)) & 255);
    const ihdr = new Uint8Array(13);
    new DataView(ihdr.buffer).setUint32(0, w);
    new DataView(ihdr.buffer).setUint32(4, h);
    ihdr.set([8, 2, 0, 0, 0], 8);
    const z = new Uint8Array(deflateSync(pngRawData({ width: w, height: h, colorType: 2, bitDepth: 8, samples })));
    const png = concatBytes([
      Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10),
      pngChunk('IHDR', ihdr),
      pngChunk('IDAT', concatBytes([z, new Uint8Array(5).fill(0x55)])),
      pngChunk('IEND', new Uint8Array(0)),
    ]);
    const got = await page.evaluate(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const img = await vision.decodeImage(bytes, 'image/png');
      let mismatches = 0;
      for (let i = 0; i < img.data.length; i++) if (img.data[i] !== ((i * 7 + (i >> 9)) & 255)) mismatches++;
      return { size: [img.width, img.height], mismatches };
    }, Buffer.from(png).toString('base64'));
    expect(got).toEqual({ size: [w, h], mismatches: 0 });
  });

  it('decodes browser-only formats through createImageBitmap (BMP exactly, lossy WebP approximately)', async () => {
    const W = 5;
    const H = 3;
    const rgb = Uint8Array.from({ length: W * H * 3 }, (_, k) => (k * 53 + 7) & 255);
    const bmp = bmp24(W, H, rgb);
    const b = await page.evaluate(async (bytes) => {
      const u8 = Uint8Array.from(bytes);
      const img = await vision.decodeImage(u8, 'image/bmp');
      return { format: vision.sniffImageFormat(u8), width: img.width, height: img.height, data: Array.from(img.data) };
    }, Array.from(bmp));
    expect(b.format).toBe('bmp');
    expect([b.width, b.height]).toEqual([W, H]);
    expect(b.data).toEqual(Array.from(rgb));

    const w = await page.evaluate(async () => {
      // 32×16 of flat 8×8 blocks, encoded by the browser as WebP, then decoded by decodeImage.
      const c = new OffscreenCanvas(32, 16);
      const ctx = c.getContext('2d')!;
      const want: number[] = [];
      const colours = [[200, 30, 40], [20, 180, 60], [40, 60, 220], [250, 250, 250], [0, 0, 0], [128, 64, 32], [90, 200, 210], [255, 128, 0]];
      for (let by = 0; by < 2; by++) {
        for (let bx = 0; bx < 4; bx++) {
          const [r, g, bl] = colours[by * 4 + bx]!;
          ctx.fillStyle = `rgb(${r},${g},${bl})`;
          ctx.fillRect(bx * 8, by * 8, 8, 8);
        }
      }
      for (let y = 0; y < 16; y++) for (let x = 0; x < 32; x++) want.push(...colours[(y >> 3) * 4 + (x >> 3)]!);
      const blob = await c.convertToBlob({ type: 'image/webp', quality: 1 });
      const bytes = new Uint8Array(await blob.arrayBuffer());
      const img = await vision.decodeImage(bytes);
      let worst = 0;
      for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(img.data[k]! - want[k]!));
      return { type: blob.type, format: vision.sniffImageFormat(bytes), width: img.width, height: img.height, worst };
    });
    expect(w.type).toBe('image/webp');
    expect(w.format).toBe('webp');
    expect([w.width, w.height]).toEqual([32, 16]);
    console.log(`[e2e vision] WebP round trip: max |Δ| = ${w.worst}`);
    expect(w.worst).toBeLessThanOrEqual(WEBP_TOL);

    const bad = await page.evaluate(async () => {
      const fake = new Uint8Array(64);
      fake.set([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 4, 0, 4, 0]); // "GIF89a" 4×4 and then garbage
      try {
        await vision.decodeImage(fake, 'image/gif');
        return 'decoded';
      } catch (e) {
        return `${(e as Error).name}: ${(e as Error).message}`;
      }
    });
    expect(bad).toMatch(/^ImageDecodeError: the browser could not decode this GIF image/);
    expect(errors()).toEqual([]);
  });
});
