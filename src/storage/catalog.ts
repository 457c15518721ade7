/**
 * The released VisualRWKV checkpoints and the public CLIP ViT-L/14-336 ONNX exports the app can download
 * (spec §2.1). Names and approximate sizes come from the Hugging Face file listings; exact byte counts and SHA-256
 * digests were not available offline, so `size`/`sha256` are left undefined: the size is then checked against the
 * server's Content-Length / Content-Range total on download, and the digest is computed and recorded (shown by the
 * cache manager) rather than compared. Fill them in when known and every download is verified end to end.
 *
 * Any other URL works with `ModelStore.download({ id, name, url })`, and a local file with `ModelStore.importFile`.
 */
import type { DownloadEntry } from './download';

/** A downloadable file the app knows about. */
export interface CatalogEntry extends DownloadEntry {
  /** 'checkpoint': a VisualRWKV `.pth`; 'encoder': an ONNX image tower. */
  kind: 'checkpoint' | 'encoder';
  /** The VisualRWKV code version (spec §1.1) or, for encoders, the vision tower. */
  family: 'v6.0' | 'v7.00' | 'clip-vit-l-336';
  /** Model size as released, e.g. '1.6B'. */
  params?: string;
  /** Weight dtype of the file. */
  dtype?: 'bf16' | 'fp16' | 'fp32' | 'int8';
  /** Approximate size in bytes from the file listing, for display only (never used to verify). */
  approxSize?: number;
  /** Shown when neither `size` nor `approxSize` is known. */
  sizeNote?: string;
  /** Ids of catalogue encoders this checkpoint can use (v6.0: the CLIP exports). */
  encoders?: string[];
  /** Caveats shown to the user. */
  note?: string;
}

/** The Hugging Face repository of the VisualRWKV-6 and -7 checkpoints. */
export const VISUALRWKV_REPO = 'howard-hou/visualrwkv-6';
/** The repository of the CLIP ViT-L/14-336 ONNX exports (vision_model*.onnx, `last_hidden_state` output). */
export const CLIP_ONNX_REPO = 'Xenova/clip-vit-large-patch14-336';

/** `https://huggingface.co/<repo>/resolve/<revision>/<file>` (the download URL of a file in a HF repo). */
export function hfResolveUrl(repo: string, file: string, revision = 'main'): string {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `https://huggingface.co/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

const SIZE_ON_DOWNLOAD = 'size checked on download';
const CLIP_IDS = ['clip-vit-l-336-onnx-fp16', 'clip-vit-l-336-onnx-fp32', 'clip-vit-l-336-onnx-int8'];

function checkpoint(id: string, file: string, family: 'v6.0' | 'v7.00', params: string, approxSize?: number, note?: string): CatalogEntry {
  return {
    id,
    name: `VisualRWKV ${family} ${params}`,
    url: hfResolveUrl(VISUALRWKV_REPO, file),
    kind: 'checkpoint',
    family,
    params,
    dtype: 'bf16',
    ...(approxSize !== undefined ? { approxSize } : { sizeNote: SIZE_ON_DOWNLOAD }),
    ...(family === 'v6.0' ? { encoders: CLIP_IDS } : {}),
    ...(note ? { note } : {}),
  };
}

function clip(id: string, file: string, dtype: 'fp16' | 'fp32' | 'int8', label: string): CatalogEntry {
  return {
    id,
    name: `CLIP ViT-L/14-336 image encoder (${label})`,
    url: hfResolveUrl(CLIP_ONNX_REPO, file),
    kind: 'encoder',
    family: 'clip-vit-l-336',
    dtype,
    sizeNote: SIZE_ON_DOWNLOAD,
    note: 'Public ONNX export of openai/clip-vit-large-patch14-336 (not verified offline); the encoder checks for the pixel_values → last_hidden_state interface when loaded.',
  };
}

const V7_NOTE =
  'RWKV-7 checkpoint: its SAM + DINOv2 + SigLIP vision tower is inside the .pth; there is no public ONNX export of it, so images need a converted tower.';

/** Every catalogue entry, v6.0 checkpoints first (smallest first), then v7.00, then the encoders. */
export const CATALOG: readonly CatalogEntry[] = Object.freeze([
  checkpoint('visualrwkv-v060-1b6', 'VisualRWKV-v060-1B6-v1.0-20240612.pth', 'v6.0', '1.6B', 3.81e9),
  checkpoint('visualrwkv-v060-3b', 'VisualRWKV-v060-3B-v1.0-20240612.pth', 'v6.0', '3B', 6.81e9),
  checkpoint('visualrwkv-v060-7b', 'VisualRWKV-v060-7B-v1.0-20240612.pth', 'v6.0', '7B', 15.9e9, 'Larger than most browsers allow one site to store unless persistent storage is granted and the disk has room.'),
  checkpoint('visualrwkv-v0700-0b1', 'VisualRWKV-v0700-0B1-v1.0-20250109.pth', 'v7.00', '0.1B', undefined, V7_NOTE),
  checkpoint('visualrwkv-v0700-0b4', 'VisualRWKV-v0700-0B4-v1.0-20250109.pth', 'v7.00', '0.4B', undefined, V7_NOTE),
  checkpoint('visualrwkv-v0700-1b5', 'VisualRWKV-v0700-1B5-v1.0-20250204.pth', 'v7.00', '1.5B', undefined, V7_NOTE),
  clip(CLIP_IDS[0]!, 'onnx/vision_model_fp16.onnx', 'fp16', 'fp16'),
  clip(CLIP_IDS[1]!, 'onnx/vision_model.onnx', 'fp32', 'fp32'),
  clip(CLIP_IDS[2]!, 'onnx/vision_model_quantized.onnx', 'int8', 'int8 quantized'),
].map((e) => Object.freeze(e)));

/** The catalogue entry with this id, if any. */
export function catalogEntry(id: string): CatalogEntry | undefined {
  return CATALOG.find((e) => e.id === id);
}

/** The file name at the end of an entry's URL ('VisualRWKV-v060-1B6-v1.0-20240612.pth'). */
export function fileNameOf(url: string): string {
  try {
    const path = new URL(url).pathname;
    return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
  } catch {
    return url.slice(url.lastIndexOf('/') + 1);
  }
}
