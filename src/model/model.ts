/**
 * The RWKV language model on the GPU: weights, one live RNN state, and the forward driver.
 * Inputs are a sequence of token ids or raw Float32Array rows (image rows before ln0; spec §6.3).
 * Prefill runs layer-major over segments of up to `maxRows` rows; decode is the same with T = 1.
 * Bidirectional image scan (spec §8): the image span is one segment; on odd layers its patch rows are reversed
 * before the block and restored after, so token shift and WKV state follow the reversed order.
 */
import type { Gpu } from '../engine/gpu';
import { assertAlive } from '../engine/gpu';
import { createStorage, readF32, writeBuffer } from '../engine/buffers';
import { copyOp, submit, type Op } from '../engine/op';
import { ContextOverflowError, InvalidArgumentError, ShapeError, WeightsFormatError } from '../errors';
import type { Checkpoint } from '../weights/checkpoint';
import { expectedLmTensors, readModelConfig, type ModelConfig } from './config';
import { TensorReader, type LoadProgress, type TensorSink } from './upload';
import { gpuReadyConfig } from './gpu-ready';
import { RnnState } from './state';
import { createScratch, destroyScratch, type Scratch } from './scratch';
import { loadRwkv6Layer, rwkv6LayerOps, type Rwkv6Layer } from './rwkv6';
import { loadRwkv7Layer, rwkv7LayerOps, type Rwkv7Layer } from './rwkv7';
import type { MatrixBlock } from '../kernels/types';
import { embedOp, reverseRowsOp } from '../kernels/rows';
import { layerNormOp } from '../kernels/layer_norm';
import { matmulOp } from '../kernels/matmul';

/** A token id or a raw input row of length C (e.g. a projected image row, before ln0). */
export type InputRow = number | Float32Array;

export interface BidirectionalSpan {
  /** Index (in this prefill's inputs) of the first image row. */
  start: number;
  /** Number of rows reversed on odd layers: the image rows except the last (CLS) row. */
  count: number;
}

export interface PrefillOptions {
  /** v6.0 bidirectional image scan over this span (spec §8). */
  bidirectional?: BidirectionalSpan;
  /** Called between segments; throw (e.g. InterruptedError) to stop. The state then reflects the rows done so far. */
  checkAbort?: () => void;
  /** Compute and return the logits of the last row (default true). */
  logits?: boolean;
}

export interface LoadModelOptions {
  onProgress?: (p: LoadProgress) => void;
  checkAbort?: () => void;
  /** Rows per prefill segment (default 256). */
  maxRows?: number;
  /** Receives every weight buffer as uploaded (to write a GPU-ready copy; see gpu-ready.ts). */
  sink?: TensorSink;
  /**
   * Largest GPU buffer to create (default: the device's largest storage binding). The embedding and the head are
   * split into row blocks above it; any other tensor above it is refused with DeviceLimitError before loading.
   * Lower it only to exercise the splitting.
   */
  maxBindingBytes?: number;
}

interface Weights {
  /** Row blocks (one unless V·C·2 bytes exceed the device's largest storage binding). */
  emb: MatrixBlock[];
  ln0: { weight: GPUBuffer; bias: GPUBuffer };
  layers: (Rwkv6Layer | Rwkv7Layer)[];
  lnOut: { weight: GPUBuffer; bias: GPUBuffer };
  /** Row blocks, as emb; a split head writes each block's logits to its own buffer, copied into place. */
  head: MatrixBlock[];
  /** (rows) f32 logits of each head block when the head is split (else empty). */
  headOut: GPUBuffer[];
}

export class RwkvModel {
  readonly state: RnnState;
  private scratch: Scratch;
  private opCache = new Map<string, Op[]>();
  /** Dispatches in the last op list built for decode (T = 1), per layer. */
  dispatchesPerLayerToken = 0;

  private constructor(
    readonly gpu: Gpu,
    readonly cfg: ModelConfig,
    private readonly w: Weights,
    readonly maxRows: number,
    private readonly weightBuffers: GPUBuffer[] = [],
  ) {
    this.state = new RnnState(gpu, cfg, 'state');
    this.scratch = createScratch(gpu, cfg, maxRows);
  }

  /** Load an RWKV-6/7 checkpoint (full VisualRWKV, split `_rwkv.pth`, bare LM or a GPU-ready copy) tensor by tensor onto the GPU. */
  static async load(gpu: Gpu, ckpt: Checkpoint, opts: LoadModelOptions = {}): Promise<RwkvModel> {
    const ready = gpuReadyConfig(ckpt); // a GPU-ready copy carries its config and holds only what is read
    const cfg = ready ?? readModelConfig(ckpt);
    const reads = ready ? undefined : expectedLmTensors(cfg).map((t) => t.name);
    const r = new TensorReader(gpu, ckpt, cfg.prefix, opts.onProgress, opts.checkAbort, opts.sink, reads);
    if (opts.maxBindingBytes !== undefined) r.maxBindingBytes = Math.min(r.maxBindingBytes, opts.maxBindingBytes);
    r.checkFits(['emb.weight', 'head.weight']);
    try {
      const { C, V } = cfg;
      const emb = await r.matrixBlocks('emb.weight', V, C);
      const ln0 = { weight: await r.vector('blocks.0.ln0.weight', [C]), bias: await r.vector('blocks.0.ln0.bias', [C]) };
      const layers: (Rwkv6Layer | Rwkv7Layer)[] = [];
      for (let i = 0; i < cfg.L; i++) layers.push(cfg.arch === 'rwkv6' ? await loadRwkv6Layer(r, cfg, i) : await loadRwkv7Layer(r, cfg, i));
      const lnOut = { weight: await r.vector('ln_out.weight', [C]), bias: await r.vector('ln_out.bias', [C]) };
      const head = await r.matrixBlocks('head.weight', V, C);
      const headOut = head.length > 1 ? head.map((b) => createStorage(gpu, `${b.m.label}.logits`, b.m.rows * 4)) : [];
      r.buffers.push(...headOut);
      return new RwkvModel(gpu, cfg, { emb, ln0, layers, lnOut, head, headOut }, opts.maxRows ?? 256, r.buffers);
    } catch (e) {
      // a failed load (corrupt tensor, lost device, abort) frees what it uploaded
      for (const buf of r.buffers) buf.destroy();
      throw e;
    }
  }

  /** Run inputs through the model from the current state; returns the logits after the last row. */
  async prefill(inputs: readonly InputRow[], opts: PrefillOptions = {}): Promise<Float32Array | null> {
    if (inputs.length === 0) throw new InvalidArgumentError('prefill needs at least one input row');
    this.validate(inputs);
    const segs = this.segments(inputs.length, opts.bidirectional);
    let logits: Float32Array | null = null;
    for (let si = 0; si < segs.length; si++) {
      opts.checkAbort?.();
      const [s, e, bidi] = segs[si]!;
      const last = si === segs.length - 1 && opts.logits !== false;
      await this.runSegment(inputs.slice(s, e), bidi ? opts.bidirectional!.count : 0, last);
      if (last) logits = await readF32(this.gpu, this.scratch.logits, 0, this.cfg.V);
    }
    return logits;
  }

  /** Feed one token and return the next-token logits. */
  async decode(id: number): Promise<Float32Array> {
    return (await this.prefill([id]))!;
  }

  /**
   * The op list one call runs for `T` rows (decode: T = 1), for profiling (bench/bench.ts). Running it outside
   * prefill/decode leaves the state and scratch in an unspecified condition: reset() afterwards.
   * @internal
   */
  opsForProfiling(T: number): readonly Op[] {
    if (!Number.isInteger(T) || T < 1) throw new InvalidArgumentError(`T must be a positive integer, got ${T}`);
    this.ensureRows(T);
    return this.ops(T, 0, true);
  }

  /** Zero the live state. */
  reset(): void {
    this.state.reset();
  }

  /** Free every GPU buffer of the model: weights, scratch, state, op uniforms. */
  destroy(): void {
    this.clearOpCache();
    destroyScratch(this.scratch);
    this.state.destroy();
    for (const b of this.weightBuffers) b.destroy();
    this.weightBuffers.length = 0;
  }

  private validate(inputs: readonly InputRow[]): void {
    const { V, C } = this.cfg;
    inputs.forEach((x, i) => {
      if (typeof x === 'number') {
        if (!Number.isInteger(x) || x < 0 || x >= V) throw new InvalidArgumentError(`input ${i}: token id ${x} is outside the vocabulary [0, ${V})`);
      } else if (x.length !== C) {
        throw new ShapeError(`input ${i}: row has ${x.length} values, the model's width C is ${C}`);
      }
    });
  }

  /** Split [0, n) into segments of ≤ maxRows; the bidirectional span (incl. its CLS row) is one segment. */
  private segments(n: number, bidi?: BidirectionalSpan): [number, number, boolean][] {
    const out: [number, number, boolean][] = [];
    const push = (s: number, e: number) => {
      for (let i = s; i < e; i += this.maxRows) out.push([i, Math.min(e, i + this.maxRows), false]);
    };
    if (!bidi) {
      push(0, n);
      return out;
    }
    const s = bidi.start;
    const e = bidi.start + bidi.count + 1;
    if (s < 0 || e > n || bidi.count < 0) throw new InvalidArgumentError(`bidirectional span [${s}, ${e}) is outside the ${n} inputs`);
    push(0, s);
    out.push([s, e, true]);
    push(e, n);
    return out;
  }

  private ensureRows(T: number): void {
    if (T <= this.scratch.rows) return;
    if (T > 16384) throw new ContextOverflowError(`an image span of ${T} rows is larger than the engine supports (16384)`);
    this.clearOpCache();
    destroyScratch(this.scratch);
    this.scratch = createScratch(this.gpu, this.cfg, T);
  }

  private async runSegment(rows: readonly InputRow[], reverseCount: number, withLogits: boolean): Promise<void> {
    assertAlive(this.gpu);
    const T = rows.length;
    this.ensureRows(T);
    const s = this.scratch;
    const C = this.cfg.C;
    const ids = new Int32Array(T);
    rows.forEach((x, t) => {
      if (typeof x === 'number') ids[t] = x;
      else {
        ids[t] = -1;
        writeBuffer(this.gpu, s.xin, t * C * 4, x);
      }
    });
    writeBuffer(this.gpu, s.ids, 0, ids);
    submit(this.gpu, this.ops(T, reverseCount, withLogits));
  }

  private ops(T: number, reverseCount: number, withLogits: boolean): Op[] {
    const key = `${T}|${reverseCount}|${withLogits}`;
    let ops = this.opCache.get(key);
    if (ops) return ops;
    if (this.opCache.size >= 8) this.clearOpCache();
    const { gpu, cfg, w } = this;
    const s = this.scratch;
    const C = cfg.C;
    const nEmb = w.emb.length;
    ops = [
      ...w.emb.map((b, k) => embedOp(gpu, { ids: s.ids, emb: b.m, row0: b.row0, last: k === nEmb - 1, x: s.xin, T, label: nEmb > 1 ? `emb.${k}` : 'emb' })),
      layerNormOp(gpu, { x: s.xin, y: s.x, weight: w.ln0.weight, bias: w.ln0.bias, T, C, label: 'ln0' }),
    ];
    for (let i = 0; i < cfg.L; i++) {
      const rev = reverseCount > 1 && i % 2 === 1;
      // v7: v_first rows move with the hidden rows (it is per position)
      const revOps = () =>
        cfg.arch === 'rwkv7' && i > 0
          ? [reverseRowsOp(gpu, { x: s.x, start: 0, count: reverseCount, C, label: `L${i}.reverse` }), reverseRowsOp(gpu, { x: s.vFirst, start: 0, count: reverseCount, C, label: `L${i}.reverse_vfirst` })]
          : [reverseRowsOp(gpu, { x: s.x, start: 0, count: reverseCount, C, label: `L${i}.reverse` })];
      if (rev) ops.push(...revOps());
      const st = this.state.layers[i]!;
      const layerOps =
        cfg.arch === 'rwkv6'
          ? rwkv6LayerOps(gpu, cfg, w.layers[i] as Rwkv6Layer, st, s, T, i)
          : rwkv7LayerOps(gpu, cfg, w.layers[i] as Rwkv7Layer, st, s, T, i);
      if (T === 1) this.dispatchesPerLayerToken = layerOps.filter((o) => o.kind === 'kernel').length;
      ops.push(...layerOps);
      if (rev) ops.push(...revOps());
    }
    if (withLogits) {
      ops.push(layerNormOp(gpu, { x: s.x, y: s.lnOut, weight: w.lnOut.weight, bias: w.lnOut.bias, T: 1, C, rowOffset: T - 1, label: 'ln_out' }));
      if (w.head.length === 1) ops.push(matmulOp(gpu, { x: s.lnOut, w: w.head[0]!.m, y: s.logits, T: 1, label: 'head' }));
      else {
        w.head.forEach((b, k) => {
          const y = w.headOut[k]!;
          ops.push(matmulOp(gpu, { x: s.lnOut, w: b.m, y, T: 1, label: `head.${k}` }));
          ops.push(copyOp(`head.${k}.copy`, y, 0, s.logits, b.row0 * 4, b.m.rows * 4));
        });
      }
    }
    this.opCache.set(key, ops);
    return ops;
  }

  private clearOpCache(): void {
    for (const ops of this.opCache.values()) {
      for (const op of ops) {
        if (op.kind !== 'kernel') continue;
        op.layout.forEach((k, i) => {
          const b = op.bindings[i]!;
          if (k === 'uniform') ('buffer' in b ? b.buffer : b).destroy();
        });
      }
    }
    this.opCache.clear();
  }
}

