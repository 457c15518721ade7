/**
 * Image preprocessing with bit-for-bit parity with the Python reference (spec §6.1, §6.4):
 * - `resizeBicubic`: Pillow's `Image.resize(size, Image.BICUBIC, reducing_gap=None)` on an RGB image
 *   (libImaging/Resample.c: separable convolution, a = −0.5, antialiased when downscaling, 22-bit fixed point,
 *   horizontal pass first into an 8-bit intermediate, a pass skipped when its dimension is unchanged);
 * - `centerCrop`: Hugging Face `center_crop` (top/left = ⌊(dim − size)/2⌋, zero padding when the image is smaller);
 * - `clipPreprocess`: HF `CLIPImageProcessor` of openai/clip-vit-large-patch14-336 (VisualRWKV v6.0): shortest side
 *   → 336 (long side = int(336·long/short)), center crop 336, ×(1/255) in float64 → float32, (x − mean)/std in
 *   float32, HWC → CHW.
 *
 * Resize-then-crop is computed as a window of the resized image (`resizeBicubicWindow`): each output pixel of
 * Pillow's resampler depends only on its own coefficients, so computing only the cropped window gives the same
 * bytes without materialising the full resized image (which is huge for extreme aspect ratios).
 *
 * @example
 * const img = await decodeImage(bytes);               // RgbImage
 * const pixels = clipPreprocess(img);                  // Float32Array [1, 3, 336, 336]
 * const sq = resizeBicubic(img, 448, 448);             // v7 encoders: square resize, no crop
 */
import { ShapeError } from '../errors';
import type { RgbImage } from './image';

export type { RgbImage } from './image';

/** Input size of CLIP ViT-L/14-336 (shortest-side resize target and crop size). */
export const CLIP_IMAGE_SIZE = 336;
/** `image_mean` of openai/clip-vit-large-patch14-336 `preprocessor_config.json`. */
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
/** `image_std` of openai/clip-vit-large-patch14-336 `preprocessor_config.json`. */
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Fixed-point fraction bits of Pillow's 8-bit resampler (`PRECISION_BITS = 32 - 8 - 2`). */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
/** Accumulators at or above this clip to 255 (`clip8`). */
const CLIP_HIGH = ONE * 256;
/** Support of Pillow's bicubic filter. */
const BICUBIC_SUPPORT = 2.0;

/** Pillow's `bicubic_filter` with a = −0.5 (same operation order, so the same doubles). */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/** Per output index: first source index, source count, and `ksize` fixed-point weights. */
interface Coeffs {
  bounds: Int32Array; // (count, 2): xmin, xmax-count
  kk: Int32Array; // (count, ksize)
  ksize: number;
}

/**
 * Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for output indices [first, first + count) of a resize
 * from `inSize` to `outSize` (box = the whole input).
 */
function coeffs(inSize: number, outSize: number, first: number, count: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1.0);
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(count * 2);
  const kk = new Int32Array(count * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let i = 0; i < count; i++) {
    const xx = first + i;
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      let v = w[x]!;
      if (ww !== 0.0) v /= ww;
      // (int)(±0.5 + v · 2^22): round half away from zero, truncating like C.
      kk[i * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[2 * i] = xmin;
    bounds[2 * i + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

/** Pillow's `clip8`: fixed-point accumulator → 0..255. */
function clip8(acc: number): number {
  if (acc >= CLIP_HIGH) return 255;
  if (acc <= 0) return 0;
  return acc >> PRECISION_BITS;
}

function checkImage(img: RgbImage, what: string): void {
  const { width, height, data } = img;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0) || data.length !== width * height * 3) {
    throw new ShapeError(`${what}: expected an RGB8 image with data.length = width·height·3, got ${width}×${height} with ${data.length} bytes`);
  }
}

function checkSize(w: number, h: number, what: string): void {
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) throw new ShapeError(`${what}: invalid size ${w}×${h}`);
}

/**
 * The window [left, left + width) × [top, top + height) of `img` resized to `outW × outH` with Pillow bicubic,
 * byte-identical to cropping Pillow's full resize. The window must lie inside the resized image.
 */
export function resizeBicubicWindow(
  img: RgbImage,
  outW: number,
  outH: number,
  left: number,
  top: number,
  width: number,
  height: number,
): RgbImage {
  checkImage(img, 'resizeBicubicWindow');
  checkSize(outW, outH, 'resizeBicubicWindow');
  checkSize(width, height, 'resizeBicubicWindow window');
  if (!(Number.isInteger(left) && Number.isInteger(top) && left >= 0 && top >= 0 && left + width <= outW && top + height <= outH)) {
    throw new ShapeError(`resizeBicubicWindow: window ${width}×${height}+${left}+${top} is outside the ${outW}×${outH} output`);
  }
  const inW = img.width;
  const src = img.data;
  const needH = outW !== img.width;
  const needV = outH !== img.height;
  const vc = needV ? coeffs(img.height, outH, top, height) : null;
  // Source rows the vertical pass reads (all of them, or the window's own rows when there is no vertical pass).
  const rowFirst = vc ? vc.bounds[0]! : top;
  const rowEnd = vc ? vc.bounds[2 * (height - 1)]! + vc.bounds[2 * (height - 1) + 1]! : top + height;
  const rows = rowEnd - rowFirst;

  // Horizontal pass (or a plain column slice when the width is unchanged) → 8-bit (rows, width, 3).
  const tmp = new Uint8Array(rows * width * 3);
  if (needH) {
    const { bounds, kk, ksize } = coeffs(inW, outW, left, width);
    let o = 0;
    for (let y = 0; y < rows; y++) {
      const rowOff = (rowFirst + y) * inW * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[2 * xx]!;
        const n = bounds[2 * xx + 1]!;
        const k0 = xx * ksize;
        let s0 = HALF;
        let s1 = HALF;
        let s2 = HALF;
        for (let x = 0, p = rowOff + xmin * 3; x < n; x++, p += 3) {
          const k = kk[k0 + x]!;
          s0 += src[p]! * k;
          s1 += src[p + 1]! * k;
          s2 += src[p + 2]! * k;
        }
        tmp[o++] = clip8(s0);
        tmp[o++] = clip8(s1);
        tmp[o++] = clip8(s2);
      }
    }
  } else {
    for (let y = 0; y < rows; y++) {
      const s = ((rowFirst + y) * inW + left) * 3;
      tmp.set(src.subarray(s, s + width * 3), y * width * 3);
    }
  }
  if (!vc) return { width, height, data: tmp };

  // Vertical pass over the intermediate (its row 0 is source row rowFirst).
  const out = new Uint8Array(width * height * 3);
  const { bounds, kk, ksize } = vc;
  const rowBytes = width * 3;
  for (let yy = 0; yy < height; yy++) {
    const ymin = bounds[2 * yy]! - rowFirst;
    const n = bounds[2 * yy + 1]!;
    const k0 = yy * ksize;
    const o = yy * rowBytes;
    for (let c = 0; c < rowBytes; c++) {
      let s = HALF;
      for (let y = 0, p = ymin * rowBytes + c; y < n; y++, p += rowBytes) s += tmp[p]! * kk[k0 + y]!;
      out[o + c] = clip8(s);
    }
  }
  return { width, height, data: out };
}

/**
 * Resize with Pillow's BICUBIC (`Image.resize((w, h), Image.BICUBIC, reducing_gap=None)`), exactly. Returns a copy
 * when the size is unchanged.
 */
export function resizeBicubic(img: RgbImage, width: number, height: number): RgbImage {
  return resizeBicubicWindow(img, width, height, 0, 0, width, height);
}

/** HF `get_resize_output_image_size(default_to_square=False)`: short side → `size`, long = int(size·long/short). */
export function shortestSideSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

/**
 * HF `center_crop` to `width × height`: top = ⌊(H − h)/2⌋, left = ⌊(W − w)/2⌋; where the image is smaller than the
 * crop, it is first zero-padded (by ⌈(h − H)/2⌉ on top, ⌈(w − W)/2⌉ on the left), as HF does.
 */
export function centerCrop(img: RgbImage, width: number, height: number): RgbImage {
  checkImage(img, 'centerCrop');
  checkSize(width, height, 'centerCrop');
  const { width: W, height: H, data } = img;
  const top = Math.floor((H - height) / 2);
  const left = Math.floor((W - width) / 2);
  const out = new Uint8Array(width * height * 3); // zeros where the padded image has no pixels
  if (top >= 0 && left >= 0 && top + height <= H && left + width <= W) {
    for (let y = 0; y < height; y++) {
      const s = ((top + y) * W + left) * 3;
      out.set(data.subarray(s, s + width * 3), y * width * 3);
    }
    return { width, height, data: out };
  }
  // Padded path: source pixel (x, y) lands at (x + padL − left', y + padT − top') in the crop, where the crop origin
  // in the padded image is (left + padL, top + padT) clamped to ≥ 0 (HF slices with max(0, ·)).
  const padT = Math.ceil((Math.max(height, H) - H) / 2);
  const padL = Math.ceil((Math.max(width, W) - W) / 2);
  const y0 = Math.max(0, top + padT);
  const x0 = Math.max(0, left + padL);
  for (let y = 0; y < height; y++) {
    const sy = y0 + y - padT;
    if (sy < 0 || sy >= H) continue;
    for (let x = 0; x < width; x++) {
      const sx = x0 + x - padL;
      if (sx < 0 || sx >= W) continue;
      out.set(data.subarray((sy * W + sx) * 3, (sy * W + sx) * 3 + 3), (y * width + x) * 3);
    }
  }
  return { width, height, data: out };
}

/**
 * Shortest-side resize to `size` then center crop `size × size` (the uint8 image right before rescaling; the
 * fixtures' `*.resized_cropped.png`). Computed as a window of the resize (same bytes, no full-size intermediate).
 */
export function clipResizeCrop(img: RgbImage, size = CLIP_IMAGE_SIZE): RgbImage {
  checkImage(img, 'clipResizeCrop');
  const r = shortestSideSize(img.width, img.height, size);
  // Both sides of the resize are ≥ size, so the crop never pads.
  return resizeBicubicWindow(img, r.width, r.height, Math.floor((r.width - size) / 2), Math.floor((r.height - size) / 2), size, size);
}

/**
 * HF rescale + normalize + HWC→CHW: v = f32(x · (1/255)) computed in float64, then f32((v − f32(mean)) / f32(std))
 * in float32 (HF casts mean/std to the image dtype). Returns (3, H, W) as one Float32Array.
 */
export function normalizeChw(img: RgbImage, mean: readonly number[], std: readonly number[]): Float32Array {
  checkImage(img, 'normalizeChw');
  const { width, height, data } = img;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  const f = Math.fround;
  // Per channel, one value per byte value: a 256-entry table per channel.
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c]!);
    const s = f(std[c]!);
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = f(f(f(v * (1 / 255)) - m) / s);
    const base = c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = lut[data[3 * i + c]!]!;
  }
  return out;
}

export interface ClipPreprocessOptions {
  /** Resize/crop size (default 336). */
  size?: number;
  mean?: readonly number[];
  std?: readonly number[];
}

/**
 * CLIPImageProcessor (openai/clip-vit-large-patch14-336) → `pixel_values`, a Float32Array of shape
 * [1, 3, size, size] (NCHW).
 */
export function clipPreprocess(img: RgbImage, opts: ClipPreprocessOptions = {}): Float32Array {
  const cropped = clipResizeCrop(img, opts.size ?? CLIP_IMAGE_SIZE);
  return normalizeChw(cropped, opts.mean ?? CLIP_MEAN, opts.std ?? CLIP_STD);
}
