/**
 * Keeps an engine alive across GPU device loss: when the device is lost (driver reset, GPU process crash, tab
 * backgrounded too long), the generation in flight fails with DeviceLostError and the next request reloads the model
 * on a fresh device (the conversation state is gone; image rows are recomputed). Used by the worker and in Node.
 */
import { VisualRwkvEngine } from './api';
import type { ChatRequest, EngineOptions, GenerationSettings, TokenChunk } from '../types';
import type { InputRow } from '../model/model';
import { DeviceLostError } from '../errors';

export class EngineHost {
  private engine: VisualRwkvEngine | null = null;
  /** How many times the engine was rebuilt after a device loss. */
  recoveries = 0;

  constructor(private opts: EngineOptions) {}

  /** The live engine, (re)created if missing or if its device was lost. */
  async ensure(): Promise<VisualRwkvEngine> {
    if (this.engine?.gpu.lost) {
      try {
        this.engine.dispose();
      } catch {
        // buffers of a lost device may refuse to be destroyed; they are gone anyway
      }
      this.engine = null;
      this.recoveries++;
    }
    if (!this.engine) {
      this.engine = await VisualRwkvEngine.create(this.opts);
      // Record (GPU-ready copy) on the first load only; a reload after device loss must not record again.
      if (this.opts.recordTensors) this.opts = { ...this.opts, recordTensors: undefined };
    }
    return this.engine;
  }

  /** The engine if loaded (no reload). */
  get current(): VisualRwkvEngine | null {
    return this.engine;
  }

  chat(req: ChatRequest): AsyncGenerator<TokenChunk> {
    this.starting++;
    return this.run((e) => e.chat(req));
  }

  generate(inputs: InputRow[], settings?: GenerationSettings): AsyncGenerator<TokenChunk> {
    this.starting++;
    return this.run((e) => e.generate(inputs, settings));
  }

  private starting = 0;
  private pendingInterrupt = false;

  private async *run(make: (e: VisualRwkvEngine) => AsyncGenerator<TokenChunk>): AsyncGenerator<TokenChunk> {
    let e: VisualRwkvEngine;
    let g: AsyncGenerator<TokenChunk>;
    try {
      e = await this.ensure();
      g = make(e);
    } finally {
      this.starting--;
    }
    if (this.pendingInterrupt) {
      // interrupt() arrived before the engine had this generation: hand it on
      this.pendingInterrupt = false;
      e.interrupt();
    }
    yield* this.guard(e, g);
  }

  /** Turn any failure on a lost device into DeviceLostError (WebGPU reports it variously: rejected maps, errors). */
  private async *guard(e: VisualRwkvEngine, g: AsyncGenerator<TokenChunk>): AsyncGenerator<TokenChunk> {
    try {
      yield* g;
    } catch (err) {
      await new Promise((r) => setTimeout(r, 0)); // let device.lost settle
      if (e.gpu.lost && !(err instanceof DeviceLostError)) {
        throw new DeviceLostError(`the GPU device was lost (${e.gpu.lost.reason}); the model will be reloaded on the next request`, { cause: err });
      }
      throw err;
    }
  }

  interrupt(): void {
    if (this.starting > 0) this.pendingInterrupt = true;
    this.engine?.interrupt();
  }

  reset(): void {
    this.engine?.reset();
  }

  dispose(): void {
    this.engine?.dispose();
    this.engine = null;
  }
}
