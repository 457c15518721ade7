/**
 * Image bytes → 8-bit RGB, with the pixels Pillow's `Image.open(f).convert('RGB')` gives (spec §6.4): no colour
 * management, no EXIF rotation, alpha dropped without compositing, gray replicated, palettes expanded.
 *
 * - PNG and JPEG are decoded by our own pure-TypeScript decoders (png.ts, jpeg.ts) in Node and in browsers alike, so
 *   they match Pillow bit for bit everywhere.
 * - GIF, WebP, BMP, AVIF, HEIC and ICO are decoded by the browser (`createImageBitmap` with colour-space conversion and
 *   alpha premultiplication off, then an OffscreenCanvas). Pixels may differ slightly from Pillow (decoder
 *   differences; a 2D canvas stores premultiplied alpha, so colours under transparent pixels are lost). In Node these
 *   formats throw ImageDecodeError.
 * - The format is taken from the bytes (magic numbers), not from `mime`, which only improves error messages.
 * - Images above the size limits (default 16384 px per side, 100 MP) are refused from their header, before decoding.
 *
 * @example
 * const img = await decodeImage(new Uint8Array(await file.arrayBuffer()), file.type);
 * const pixels = clipPreprocess(img); // Float32Array [1, 3, 336, 336]
 */
import { ImageDecodeError } from '../errors';
import { checkImageSize, DEFAULT_IMAGE_LIMITS, type ImageLimits, type RgbImage } from './image';
import { decodeJpeg, isJpeg } from './jpeg';
import { decodePng, isPng } from './png';

export type { RgbImage, ImageLimits } from './image';
export { DEFAULT_IMAGE_LIMITS } from './image';

export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'bmp' | 'avif' | 'heic' | 'tiff' | 'ico' | 'svg';

/** Formats handed to the browser's decoder, with the MIME type given to it. */
const BROWSER_TYPES: Partial<Record<ImageFormat, string>> = {
  gif: 'image/gif',
  webp: 'image/webp',
  bmp: 'image/bmp',
  avif: 'image/avif',
  heic: 'image/heic',
  ico: 'image/x-icon',
};

export interface DecodeImageOptions {
  /** Size limits (defaults: DEFAULT_IMAGE_LIMITS). */
  limits?: Partial<ImageLimits>;
}

const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));

/** The image format from the leading bytes, or null if unrecognised. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (isPng(bytes)) return 'png';
  if (isJpeg(bytes)) return 'jpeg';
  if (bytes.length >= 6 && (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a')) return 'gif';
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return 'webp';
  if (bytes.length >= 26 && ascii(bytes, 0, 2) === 'BM') return 'bmp';
  if (bytes.length >= 12 && ascii(bytes, 4, 4) === 'ftyp') {
    const brand = ascii(bytes, 8, 4);
    if (brand === 'avif' || brand === 'avis') return 'avif';
    if (['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1'].includes(brand)) return 'heic';
  }
  if (bytes.length >= 4 && (ascii(bytes, 0, 4) === 'II*\0' || ascii(bytes, 0, 4) === 'MM\0*')) return 'tiff';
  if (bytes.length >= 6 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 1 && bytes[3] === 0 && bytes[4]! > 0) return 'ico';
  const head = new TextDecoder().decode(bytes.subarray(0, 256)).replace(/^\uFEFF?\s*/, '').toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'svg';
  return null;
}

/** Width and height from the header of a GIF, BMP or WebP file (null when not readable without decoding). */
export function probeImageSize(bytes: Uint8Array, format: ImageFormat): { width: number; height: number } | null {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    if (format === 'gif') return { width: dv.getUint16(6, true), height: dv.getUint16(8, true) };
    if (format === 'bmp') {
      if (dv.getUint32(14, true) === 12) return { width: dv.getUint16(18, true), height: dv.getUint16(20, true) };
      return { width: Math.abs(dv.getInt32(18, true)), height: Math.abs(dv.getInt32(22, true)) };
    }
    if (format === 'webp') {
      const chunk = ascii(bytes, 12, 4);
      if (chunk === 'VP8X') return { width: 1 + (dv.getUint32(24, true) & 0xffffff), height: 1 + (dv.getUint32(27, true) & 0xffffff) };
      if (chunk === 'VP8 ') return { width: dv.getUint16(26, true) & 0x3fff, height: dv.getUint16(28, true) & 0x3fff };
      if (chunk === 'VP8L') {
        const b = dv.getUint32(21, true);
        return { width: 1 + (b & 0x3fff), height: 1 + ((b >>> 14) & 0x3fff) };
      }
    }
  } catch {
    throw new ImageDecodeError(`${format.toUpperCase()} file is truncated (no complete header)`);
  }
  return null;
}

/** True where `createImageBitmap` and `OffscreenCanvas` exist (browsers, workers). */
function hasBrowserDecoder(): boolean {
  return typeof createImageBitmap === 'function' && typeof OffscreenCanvas === 'function';
}

/**
 * Decode image bytes to RGB8 (see the module comment for what is decoded where). Throws ImageDecodeError for
 * non-images, unsupported formats, corrupt or truncated files and images above the limits.
 */
export async function decodeImage(bytes: Uint8Array, mime?: string, options: DecodeImageOptions = {}): Promise<RgbImage> {
  const limits = { ...DEFAULT_IMAGE_LIMITS, ...options.limits };
  const label = mime ? ` (labelled ${mime})` : '';
  if (bytes.length === 0) throw new ImageDecodeError(`empty file${label}: not an image`);
  const format = sniffImageFormat(bytes);
  if (format === 'png') {
    const png = await decodePng(bytes, { channels: 3, limits });
    return { width: png.width, height: png.height, data: png.data };
  }
  if (format === 'jpeg') return decodeJpeg(bytes, { limits });
  if (format === null) {
    const first = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new ImageDecodeError(
      `not an image${label}: unrecognised file signature (${first}); supported: PNG, JPEG, and in browsers GIF, WebP, BMP, AVIF`,
    );
  }
  if (format === 'svg' || format === 'tiff') {
    throw new ImageDecodeError(`${format.toUpperCase()} images are not supported${label}; convert the image to PNG or JPEG`);
  }
  if (!hasBrowserDecoder()) {
    throw new ImageDecodeError(
      `${format.toUpperCase()} decoding needs a browser (createImageBitmap); here only PNG and JPEG are decoded — convert the image first`,
    );
  }
  const size = probeImageSize(bytes, format);
  if (size) checkImageSize(size.width, size.height, limits, format.toUpperCase());
  return decodeWithBrowser(bytes, format, limits);
}

/** The browser's decoder via ImageBitmap → OffscreenCanvas → RGBA, alpha dropped. */
async function decodeWithBrowser(bytes: Uint8Array, format: ImageFormat, limits: ImageLimits): Promise<RgbImage> {
  const name = format.toUpperCase();
  let bitmap: ImageBitmap;
  try {
    const blob = new Blob([bytes as Uint8Array<ArrayBuffer>], { type: BROWSER_TYPES[format] ?? '' });
    // Pillow applies no colour management and keeps straight (non-premultiplied) colours. EXIF orientation cannot be
    // turned off in current browsers ('none' now means 'from-image'); PNG/JPEG, where it matters, never come here.
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new ImageDecodeError(`the browser could not decode this ${name} image (corrupt, truncated or unsupported)`, { cause: e });
  }
  try {
    const { width, height } = bitmap;
    checkImageSize(width, height, limits, name);
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new ImageDecodeError(`cannot decode ${name}: no 2D canvas context available`);
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const data = new Uint8Array(width * height * 3);
    for (let i = 0, o = 0; o < data.length; i += 4, o += 3) {
      data[o] = rgba[i]!;
      data[o + 1] = rgba[i + 1]!;
      data[o + 2] = rgba[i + 2]!;
    }
    return { width, height, data };
  } finally {
    bitmap.close();
  }
}
