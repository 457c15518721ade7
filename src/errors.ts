/**
 * Typed errors of visualrwkv-web. Every error thrown by the engine is one of these classes, so callers can
 * `instanceof`-check them; the worker re-raises them on the main thread as the same classes (by `name`).
 *
 * @example
 * try { await loadModel(src) } catch (e) { if (e instanceof WeightsFormatError) showBadFile(e.message) }
 */
export class VisualRwkvError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The checkpoint is truncated, corrupt, mis-shaped or lacks a required key. The message names the key/offset. */
export class WeightsFormatError extends VisualRwkvError {}

/** A `.pth` pickle references a global outside the small allow-list needed to rebuild a state dict of tensors. */
export class UnsafePickleError extends VisualRwkvError {
  constructor(
    /** The refused global, e.g. `os.system`. */
    public readonly global: string,
    message?: string,
  ) {
    super(message ?? `refusing to load pickle: it references the global '${global}', which is not allowed`);
  }
}

/** A tensor dtype the engine does not handle (e.g. int64 weights). */
export class UnsupportedDtypeError extends VisualRwkvError {}

/** Tensor shapes passed to a kernel or API call are inconsistent. */
export class ShapeError extends VisualRwkvError {}

/** No WebGPU adapter/device is available in this environment. */
export class WebGPUUnavailableError extends VisualRwkvError {}

/** The GPU device was lost (driver reset, tab backgrounded too long, out of memory). Recreate the engine. */
export class DeviceLostError extends VisualRwkvError {}

/** A WebGPU validation or out-of-memory error surfaced from the engine's own commands. */
export class GpuValidationError extends VisualRwkvError {}

/** The model needs more than this GPU offers: a weight matrix larger than the device's largest storage buffer
 *  binding (the embedding and the head are split into row blocks; the other matrices cannot be). The message names
 *  the tensor, its size and the device's limit. */
export class DeviceLimitError extends VisualRwkvError {}

/** Input longer than the configured context limit. */
export class ContextOverflowError extends VisualRwkvError {}

/** Bad arguments to the public API or CLI (unknown flag, malformed ids, ...). */
export class InvalidArgumentError extends VisualRwkvError {}

/** A generation was interrupted by `interrupt()`. */
export class InterruptedError extends VisualRwkvError {}

/** Image bytes that cannot be decoded: not an image, an unsupported format, corrupt or truncated data, or
 *  dimensions above the decoder's limits (decompression-bomb guard). The message says which. */
export class ImageDecodeError extends VisualRwkvError {}

/** The ONNX image encoder cannot be used: the runtime failed to start, the bytes are not a valid ONNX model, or the
 *  model lacks the `pixel_values` → `last_hidden_state` interface. The message names the model and the cause. */
export class EncoderLoadError extends VisualRwkvError {}

/** Storing a model would not fit in the site's storage quota (checked before writing when the size is known), or a
 *  write failed with the browser's QuotaExceededError. `needed`/`available` are bytes when known. */
export class StorageQuotaError extends VisualRwkvError {
  /** Bytes the download still had to write. */
  readonly needed?: number;
  /** Bytes the storage estimate said were free (quota − usage). */
  readonly available?: number;

  constructor(message: string, options?: { cause?: unknown; needed?: number; available?: number }) {
    super(message, options);
    this.needed = options?.needed;
    this.available = options?.available;
  }
}

/** Why a download failed (see DownloadError). */
export type DownloadErrorKind = 'network' | 'http' | 'size' | 'sha256' | 'busy';

/** A model download failed; `kind` says why. 'network' and 'http': the bytes received so far are kept for a resume.
 *  'size' and 'sha256': the bytes are wrong and were discarded. 'busy': the same id is being downloaded by another
 *  call or tab. */
export class DownloadError extends VisualRwkvError {
  readonly kind: DownloadErrorKind;

  constructor(message: string, options?: { cause?: unknown; kind?: DownloadErrorKind }) {
    super(message, options);
    this.kind = options?.kind ?? 'network';
  }
}

/** Every error class by name, for re-raising errors that crossed a worker boundary. */
export const ERROR_CLASSES = {
  VisualRwkvError,
  WeightsFormatError,
  UnsafePickleError,
  UnsupportedDtypeError,
  ShapeError,
  WebGPUUnavailableError,
  DeviceLostError,
  GpuValidationError,
  DeviceLimitError,
  ContextOverflowError,
  InvalidArgumentError,
  InterruptedError,
  ImageDecodeError,
  EncoderLoadError,
  StorageQuotaError,
  DownloadError,
} as const;

/**
 * A message as a sentence for the page: a final full stop, and a capital first letter when it starts with a plain
 * word — not when it starts with a URL, a path or a file name (`https://…`, `visualrwkv.pth: …` keep their case).
 * @example sentence('the GPU device was lost') // 'The GPU device was lost.'
 */
export function sentence(s: string): string {
  const t = s.trim();
  const first = t.split(/\s/, 1)[0] ?? '';
  const word = /^[a-z][a-z'’-]*[,:;]?$/.test(first);
  return (word ? t.charAt(0).toUpperCase() + t.slice(1) : t) + (/[.!?]$/.test(t) ? '' : '.');
}

/** An error's message (or anything thrown) as a sentence (see `sentence`). */
export function errorSentence(e: unknown): string {
  return sentence(e instanceof Error ? e.message : String(e));
}
