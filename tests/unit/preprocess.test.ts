/**
 * CLIP preprocessing and Pillow-exact bicubic resizing against the fixtures (tests/fixtures/vision) and against
 * Pillow output hashes recorded with Pillow 9.4 (`Image.open(f).convert('RGB').resize(size, Image.BICUBIC,
 * reducing_gap=None)`; sha256 of the RGB bytes).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors';
import { decodePng } from '../../src/vision/png';
import {
  CLIP_IMAGE_SIZE,
  CLIP_MEAN,
  CLIP_STD,
  centerCrop,
  clipPreprocess,
  clipResizeCrop,
  normalizeChw,
  resizeBicubic,
  resizeBicubicWindow,
  shortestSideSize,
  type RgbImage,
} from '../../src/vision/preprocess';
import { fixturePath, readJson, tensorF32 } from '../helpers/fixtures';

/** MANIFEST §6: pixel_values of an fp32 engine within 1e-6 of the golden (we expect 0: same f32 arithmetic). */
const PIXEL_VALUES_TOL = 1e-6;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const png = async (rel: string) => {
  const p = await decodePng(new Uint8Array(readFileSync(fixturePath(rel))));
  return { width: p.width, height: p.height, data: p.data } satisfies RgbImage;
};

/** sha256 of Pillow's decode (`np.asarray(Image.open(f).convert('RGB')).tobytes()`). */
const PIL_DECODE: Record<string, string> = {
  'image_0.png': '08844c24408ecb75363d6d034d27c7621218578b2e2dc96c6ddb399b44dd6649',
  'image_1.png': '08e9a063b9c66627320c30c710a655b14e114ccb67d2c2e137a5ec2a76d8b497',
};

/** sha256 of Pillow's bicubic resize of the decoded fixture to [width, height]. */
const PIL_RESIZE: [string, number, number, string][] = [
  ['image_0.png', 448, 448, '26ac64d806f63cd9d390f9b1552851a077ba54bee0bc05da9c4c3e54df3c862e'],
  ['image_0.png', 1024, 1024, '310175924b51b30998bce0005df0a8c401527037074718ae111eb511333fdb1e'],
  ['image_0.png', 37, 23, '6200192e6a8b3cf70205de9c0b42ac664a491ad7b953e175bc5e9f8875d201ed'],
  ['image_0.png', 512, 100, '693bfaf9ecb9c09563f2e235c15b3503fa66dfebdf6e026f193ad2909a362536'], // vertical pass only
  ['image_0.png', 100, 341, '8f69295def2c7a3a51c5e4beb10ba0c5e83f86ce9f499a676bdcfb594ee03ced'], // horizontal pass only
  ['image_0.png', 1, 1, '2f30992282140457a2cfda1d3d3ebf90318ab531369c220cf9b908718e940bf0'],
  ['image_0.png', 601, 3, 'cdc376fabae3114dd86a622f9f5f696540dc566157a60e3a28981a3b8fe4de7a'],
  ['image_0.png', 7, 900, 'df19188f3aa8362b2ea6936ffe04fe9c0c5f8060d5f74f15aa255b24d64689ff'],
  ['image_1.png', 448, 448, 'c69f67670afe518d832c3116df86f4fb64d1c90c336a20c8fa14b8b42a90b34f'],
  ['image_1.png', 1024, 1024, '4987fb2bdae5179d841b26775153d2dd769a20ff0308b61aedd7701c80598e92'],
  ['image_1.png', 37, 23, '8460a9a571f71d0f011e5b3420c06b944ae18045ac8d88425e27cb75dc4ab39f'],
  ['image_1.png', 300, 100, '6a41dbd5c056ceea0169ee1cced359fc4d1e20408be406f81649b8394772f3f3'],
  ['image_1.png', 100, 451, '5db9294f84750c0793e4d072dc689a9a04618784d2bb30b6bba61e3c056aeb15'],
  ['image_1.png', 1, 1, 'ae222019afbd0eb751d76442494647e4148d866378fa7f4492476014f78cbcba'],
  ['image_1.png', 601, 3, '0155a1196768ac39d6dfd6bd159d798810ade0e30060bbcdbc3eccf61de6dc15'],
  ['image_1.png', 7, 900, 'e272c7e92a5a9870061d78d6524556c39ad67ffe92ac4168c1f87936b83bf17f'],
];

/** Count differing bytes and report the first one. */
function byteDiff(a: Uint8Array, b: Uint8Array): { count: number; first: string } {
  let count = 0;
  let first = '';
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      if (!count) first = `byte ${i}: ${a[i]} vs ${b[i]}`;
      count++;
    }
  }
  return { count, first };
}

describe('CLIP preprocessing vs the fixtures', () => {
  for (const i of [0, 1]) {
    const name = `image_${i}`;

    it(`${name}: decode matches Pillow, resize+crop equals ${name}.resized_cropped.png exactly`, async () => {
      const img = await png(`vision/${name}.png`);
      const meta = readJson<{ image_size_wh: number[]; resized_size_wh: number[]; crop_box_ltrb: number[] }>(`vision/${name}.clip.json`);
      expect([img.width, img.height]).toEqual(meta.image_size_wh);
      expect(sha256(img.data)).toBe(PIL_DECODE[`${name}.png`]);
      const r = shortestSideSize(img.width, img.height, CLIP_IMAGE_SIZE);
      expect([r.width, r.height]).toEqual(meta.resized_size_wh);

      const want = await png(`vision/${name}.resized_cropped.png`);
      const got = clipResizeCrop(img);
      expect([got.width, got.height]).toEqual([336, 336]);
      const d = byteDiff(got.data, want.data);
      expect(d.count, d.first).toBe(0);

      // The window shortcut equals resizing fully and then cropping.
      const full = resizeBicubic(img, r.width, r.height);
      const [l, t] = meta.crop_box_ltrb;
      expect(Math.floor((r.width - 336) / 2)).toBe(l);
      expect(Math.floor((r.height - 336) / 2)).toBe(t);
      expect(byteDiff(centerCrop(full, 336, 336).data, want.data).count).toBe(0);
    });

    it(`${name}: pixel_values within ${PIXEL_VALUES_TOL} of the golden`, async () => {
      const img = await png(`vision/${name}.png`);
      const px = clipPreprocess(img);
      const gold = tensorF32(`vision/${name}.clip.safetensors`, 'pixel_values');
      expect(px.length).toBe(1 * 3 * 336 * 336);
      expect(gold.length).toBe(px.length);
      let worst = 0;
      let at = 0;
      for (let k = 0; k < px.length; k++) {
        const e = Math.abs(px[k]! - gold[k]!);
        if (e > worst) [worst, at] = [e, k];
      }
      console.log(`[preprocess] ${name}: pixel_values max |Δ| = ${worst} (index ${at})`);
      expect(worst, `index ${at}: ${px[at]} vs ${gold[at]}`).toBeLessThanOrEqual(PIXEL_VALUES_TOL);
    });
  }
});

describe('resizeBicubic = Pillow BICUBIC', () => {
  it.each(PIL_RESIZE)('%s → %i×%i', async (file, w, h, hash) => {
    const img = await png(`vision/${file}`);
    const out = resizeBicubic(img, w, h);
    expect([out.width, out.height, out.data.length]).toEqual([w, h, w * h * 3]);
    expect(sha256(out.data)).toBe(hash);
  });

  it('returns an equal copy when the size is unchanged, and windows agree with the full resize', async () => {
    const img = await png('vision/image_1.png');
    const same = resizeBicubic(img, img.width, img.height);
    expect(same.data === img.data).toBe(false);
    expect(byteDiff(same.data, img.data).count).toBe(0);
    const full = resizeBicubic(img, 97, 131);
    const win = resizeBicubicWindow(img, 97, 131, 13, 40, 50, 60);
    for (let y = 0; y < 60; y++) {
      const a = full.data.subarray(((40 + y) * 97 + 13) * 3, ((40 + y) * 97 + 63) * 3);
      expect(byteDiff(win.data.subarray(y * 150, (y + 1) * 150), a).count).toBe(0);
    }
  });

  it('keeps a constant image constant and handles 1×1 inputs', () => {
    const c = { width: 5, height: 3, data: new Uint8Array(45).fill(200) };
    expect(resizeBicubic(c, 17, 2).data.every((v) => v === 200)).toBe(true);
    const one = { width: 1, height: 1, data: Uint8Array.of(10, 20, 30) };
    const up = resizeBicubic(one, 4, 3);
    for (let p = 0; p < 12; p++) expect(Array.from(up.data.subarray(3 * p, 3 * p + 3))).toEqual([10, 20, 30]);
  });

  it('rejects malformed images and sizes with ShapeError', () => {
    const img = { width: 2, height: 2, data: new Uint8Array(11) };
    expect(() => resizeBicubic(img, 3, 3)).toThrow(ShapeError);
    const ok = { width: 2, height: 2, data: new Uint8Array(12) };
    expect(() => resizeBicubic(ok, 0, 3)).toThrow(ShapeError);
    expect(() => resizeBicubic(ok, 2.5, 3)).toThrow(ShapeError);
    expect(() => resizeBicubicWindow(ok, 4, 4, 2, 0, 3, 1)).toThrow(ShapeError);
    expect(() => centerCrop(ok, -1, 1)).toThrow(ShapeError);
  });
});

describe('shortestSideSize / centerCrop / normalizeChw', () => {
  it('computes the HF shortest-edge size with truncation', () => {
    expect(shortestSideSize(512, 341, 336)).toEqual({ width: 504, height: 336 });
    expect(shortestSideSize(300, 451, 336)).toEqual({ width: 336, height: 505 });
    expect(shortestSideSize(400, 400, 336)).toEqual({ width: 336, height: 336 });
    expect(shortestSideSize(1000, 3, 336)).toEqual({ width: 112000, height: 336 });
  });

  it('crops at ⌊(dim − size)/2⌋', () => {
    // Pixel (x, y) holds (x, y, 7).
    const W = 7;
    const H = 6;
    const data = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data.set([x, y, 7], (y * W + x) * 3);
    const c = centerCrop({ width: W, height: H, data }, 4, 3);
    expect(Array.from(c.data.subarray(0, 3))).toEqual([1, 1, 7]); // left ⌊3/2⌋ = 1, top ⌊3/2⌋ = 1
    expect(Array.from(c.data.subarray(c.data.length - 3))).toEqual([4, 3, 7]);
  });

  it('zero-pads like HF center_crop when the image is smaller than the crop', () => {
    // 2×1 image → 5×4 crop: HF pads top ⌈3/2⌉ = 2, left ⌈3/2⌉ = 2, then slices [0, 4) × [0, 5).
    const c = centerCrop({ width: 2, height: 1, data: Uint8Array.of(1, 2, 3, 4, 5, 6) }, 5, 4);
    const px = (x: number, y: number) => Array.from(c.data.subarray((y * 5 + x) * 3, (y * 5 + x) * 3 + 3));
    expect(px(2, 2)).toEqual([1, 2, 3]);
    expect(px(3, 2)).toEqual([4, 5, 6]);
    expect(c.data.reduce((n, v) => n + v, 0)).toBe(21);
    // Mixed: wider than the crop but shorter. 6×1 → 2×3: left ⌊4/2⌋ = 2, pad top ⌈2/2⌉ = 1.
    const m = centerCrop({ width: 6, height: 1, data: Uint8Array.from({ length: 18 }, (_, k) => k) }, 2, 3);
    expect(Array.from(m.data)).toEqual([0, 0, 0, 0, 0, 0, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0]);
  });

  it('normalises in float32 as HF does and lays out CHW', () => {
    const img = { width: 2, height: 1, data: Uint8Array.of(0, 128, 255, 10, 20, 30) };
    const out = normalizeChw(img, CLIP_MEAN, CLIP_STD);
    const f = Math.fround;
    const want = (v: number, c: number) => f(f(f(v / 255) - f(CLIP_MEAN[c]!)) / f(CLIP_STD[c]!));
    // v · (1/255) and v / 255 round to the same float32 for every byte value.
    for (let v = 0; v < 256; v++) expect(f(v * (1 / 255))).toBe(f(v / 255));
    expect(Array.from(out)).toEqual([want(0, 0), want(10, 0), want(128, 1), want(20, 1), want(255, 2), want(30, 2)]);
  });
});
