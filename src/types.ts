/** Public types of visualrwkv-web (shared by the page, the widget, the worker and Node). */
import type { SamplerOptions } from './text/sampler';
import type { ImagePosition } from './text/prompt';
import type { ByteSource } from './weights/source';
import type { TensorSink } from './model/upload';

/** Where a model or encoder comes from: a URL (HTTP range requests), a File/Blob, bytes, a ByteSource, or (Node) a path. */
export type ModelSource = string | Blob | Uint8Array | ByteSource;

/** Progress of long work: weights upload, encoder load, image encoding, prompt prefill. */
export interface Progress {
  stage: 'weights' | 'encoder' | 'image' | 'prefill';
  loaded: number;
  total: number;
}

/** An image given as encoded bytes (PNG/JPEG/...), a Blob/File, or already-decoded RGB pixels. */
export type ImageInput = Blob | Uint8Array | { width: number; height: number; data: Uint8Array };

export interface EngineOptions {
  /** The VisualRWKV checkpoint (released `.pth`, `.safetensors`, split `_rwkv.pth`, or a bare RWKV LM). */
  model: ModelSource;
  /** The ONNX image encoder (CLIP ViT-L/14-336 `vision_model*.onnx` for VisualRWKV-6). Optional for text-only use. */
  encoder?: ModelSource;
  onProgress?: (p: Progress) => void;
  /** Rows per prefill segment (default 256). */
  maxRows?: number;
  /** Longest prompt (text ids + image rows) accepted in one turn; longer → ContextOverflowError (default 16384). */
  maxPromptRows?: number;
  /** VisualRWKV-7.00: image rows per image (default 1024, as the released models; the training default was 16). */
  tokensPerImage?: number;
  /** onnxruntime-web execution providers (default: webgpu where available, then wasm). */
  encoderProviders?: ('webgpu' | 'wasm')[];
  /**
   * Receives every weight buffer exactly as uploaded, then the projector's tensors unchanged: pass a
   * GpuReadyRecorder's `sink` to write a GPU-ready copy (src/model/gpu-ready.ts). Loading waits for its promises.
   * Used for the first load only (not for a reload after GPU device loss).
   */
  recordTensors?: TensorSink;
}

export interface GenerationSettings {
  /** Sampling (default: the official app's: temperature 0.2, top_p 0.3, frequency penalty 1.0, decay 0.996). */
  sampler?: Partial<SamplerOptions>;
  /** Maximum new tokens (default 512, as the official GPU app). */
  maxTokens?: number;
  /** RNG seed (default: random). */
  seed?: number;
  /** Attach to each chunk the logits its token was sampled from (large: V floats per token; for evals). */
  recordLogits?: boolean;
}

export interface ChatRequest extends GenerationSettings {
  /** The user's message. */
  text: string;
  /** An image for this turn. Only the first turn of a chat may carry one (start a new chat for another image). */
  image?: ImageInput;
  /**
   * Image features from any encoder, instead of `image`: (rows, dim) row-major. VisualRWKV-7: backbone patch features
   * (1024 × 3200 for SAM+DINOv2+SigLIP), pooled and projected by the checkpoint's projector. VisualRWKV-6: the tower's
   * last_hidden_state (577 × 1024), grid-pooled and projected.
   */
  imageFeatures?: { data: Float32Array; rows: number; dim: number };
  /** Already-projected image rows (each of length C, before ln0), instead of `image`. */
  imageRows?: Float32Array[];
  /** v6.0 image position (default 'middle', the sandwich the released models were tuned with). v7 is always first. */
  position?: ImagePosition;
  /** v6.0 bidirectional image scan (default on for RWKV-6 checkpoints). */
  bidirectional?: boolean;
  /** v6.0 grid pooling (default -1: all 577 rows). */
  gridSize?: number;
  /** Start a new conversation (reset the RNN state) before this turn. Default: continue when possible. */
  newChat?: boolean;
}

export interface ChunkStats {
  /** Tokens generated so far in this reply. */
  tokens: number;
  /** Generation speed so far (tokens after the first / time since the first). */
  tokensPerSecond: number;
  /** Time from the request to the first token. */
  timeToFirstTokenMs: number;
  /** Rows prefilled for this turn (text ids + image rows). */
  prefillRows: number;
  /** Whether the image encoder ran for this turn (false when the image rows came from the cache). */
  encoderRan: boolean;
}

/** One streamed piece of a reply. */
export interface TokenChunk {
  /** Newly final text (may be '' while a multi-byte character is incomplete). */
  text: string;
  /** The token id behind this chunk. */
  id: number;
  stats: ChunkStats;
  /** The logits this token was sampled from, when `recordLogits` was set. */
  logits?: Float32Array;
  /** Set on the last chunk: why generation ended. */
  done?: 'stop' | 'length' | 'interrupted';
}
