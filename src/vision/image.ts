/**
 * Types and limits shared by the image decoders (png.ts, jpeg.ts, decode.ts) and the preprocessing (preprocess.ts).
 */
import { ImageDecodeError } from '../errors';

/** An 8-bit RGB image, row-major, 3 bytes per pixel (R, G, B), no padding: `data.length === width * height * 3`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Decompression-bomb guard: images whose header declares more than this are refused before any pixel is decoded. */
export interface ImageLimits {
  /** Largest width or height accepted (default 16384). */
  maxSide: number;
  /** Largest width × height accepted (default 100 MP, ~300 MB as RGB8). */
  maxPixels: number;
}

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({ maxSide: 16384, maxPixels: 100_000_000 });

/** Throw ImageDecodeError unless `width × height` is a non-empty image within `limits`. */
export function checkImageSize(width: number, height: number, limits: ImageLimits, what: string): void {
  if (!(width >= 1 && height >= 1)) throw new ImageDecodeError(`${what}: invalid image size ${width}×${height}`);
  if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
    throw new ImageDecodeError(
      `${what}: image is ${width}×${height} (${((width * height) / 1e6).toFixed(1)} MP), above the limit of ` +
        `${limits.maxSide} px per side and ${(limits.maxPixels / 1e6).toFixed(0)} MP; refusing to decode it ` +
        '(scale it down first, or raise the limits if you trust the file)',
    );
  }
}
