/**
 * The RNN state: per layer att_x [C] (last ln1 output), wkv [H,N,N] f32, ffn_x [C] (last ln2 output).
 * wkv orientation follows ChatRWKV: RWKV-6 [head][key][value], RWKV-7 [head][value][key].
 * The engine owns one live state on the GPU; snapshots are GPU-side copies (or CPU copies for persistence).
 */
import type { Gpu } from '../engine/gpu';
import { createStorage, readF32, writeBuffer } from '../engine/buffers';
import { ShapeError } from '../errors';

export interface LayerState {
  att: GPUBuffer; // (C)
  wkv: GPUBuffer; // (H, N, N)
  ffn: GPUBuffer; // (C)
}

export interface StateDims {
  L: number;
  C: number;
  H: number;
  N: number;
}

export class RnnState {
  readonly layers: LayerState[];
  constructor(
    readonly gpu: Gpu,
    readonly dims: StateDims,
    label = 'state',
  ) {
    const { L, C, H, N } = dims;
    this.layers = Array.from({ length: L }, (_, i) => ({
      att: createStorage(gpu, `${label}.${i}.att_x`, C * 4),
      wkv: createStorage(gpu, `${label}.${i}.wkv`, H * N * N * 4),
      ffn: createStorage(gpu, `${label}.${i}.ffn_x`, C * 4),
    }));
  }

  /** Bytes per state (f32). */
  get byteLength(): number {
    const { L, C, H, N } = this.dims;
    return L * (2 * C + H * N * N) * 4;
  }

  /** Zero the state (the start of a sequence). */
  reset(): void {
    const enc = this.gpu.device.createCommandEncoder({ label: 'state.reset' });
    for (const l of this.layers) for (const b of [l.att, l.wkv, l.ffn]) enc.clearBuffer(b);
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /** Copy another state of the same dims into this one (GPU-side). */
  copyFrom(src: RnnState): void {
    if (JSON.stringify(src.dims) !== JSON.stringify(this.dims)) throw new ShapeError('state dims differ');
    const enc = this.gpu.device.createCommandEncoder({ label: 'state.copy' });
    src.layers.forEach((l, i) => {
      const d = this.layers[i]!;
      enc.copyBufferToBuffer(l.att, 0, d.att, 0, l.att.size);
      enc.copyBufferToBuffer(l.wkv, 0, d.wkv, 0, l.wkv.size);
      enc.copyBufferToBuffer(l.ffn, 0, d.ffn, 0, l.ffn.size);
    });
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /** A GPU-side copy of this state. */
  snapshot(label = 'snapshot'): RnnState {
    const s = new RnnState(this.gpu, this.dims, label);
    s.copyFrom(this);
    return s;
  }

  /** Read the whole state to the CPU (for tests, persistence). */
  async read(): Promise<{ att: Float32Array; wkv: Float32Array; ffn: Float32Array }[]> {
    const { C, H, N } = this.dims;
    const out = [];
    for (const l of this.layers) {
      out.push({ att: await readF32(this.gpu, l.att, 0, C), wkv: await readF32(this.gpu, l.wkv, 0, H * N * N), ffn: await readF32(this.gpu, l.ffn, 0, C) });
    }
    return out;
  }

  /** Load a CPU state (as returned by read()). */
  write(data: { att: Float32Array; wkv: Float32Array; ffn: Float32Array }[]): void {
    if (data.length !== this.layers.length) throw new ShapeError(`state has ${this.layers.length} layers, got ${data.length}`);
    data.forEach((d, i) => {
      const l = this.layers[i]!;
      writeBuffer(this.gpu, l.att, 0, d.att);
      writeBuffer(this.gpu, l.wkv, 0, d.wkv);
      writeBuffer(this.gpu, l.ffn, 0, d.ffn);
    });
  }

  destroy(): void {
    for (const l of this.layers) for (const b of [l.att, l.wkv, l.ffn]) b.destroy();
  }
}
