/** The object a worker exposes: the engine as pull-based calls (one generation at a time). */
import type { EngineInfo } from './api';
import { EngineHost } from './host';
import type { ChatRequest, EngineOptions, Progress, TokenChunk, GenerationSettings } from '../types';
import type { TensorSink, UploadedTensor } from '../model/upload';
import type { InputRow } from '../model/model';
import { InvalidArgumentError } from '../errors';

let host: EngineHost | null = null;
let current: AsyncGenerator<TokenChunk> | null = null;

function need(): EngineHost {
  if (!host) throw new InvalidArgumentError('the engine is not loaded yet');
  return host;
}

export const workerApi = {
  async init(opts: Omit<EngineOptions, 'onProgress' | 'recordTensors'>, onProgress?: (p: Progress) => void, recordTensors?: TensorSink): Promise<EngineInfo> {
    host?.dispose();
    host = null;
    // A record crosses to the page as a structured clone: send the tensor's own bytes, not a view's whole buffer.
    const record = recordTensors
      ? (t: UploadedTensor) => recordTensors({ ...t, bytes: t.bytes.byteOffset === 0 && t.bytes.byteLength === t.bytes.buffer.byteLength ? t.bytes : t.bytes.slice() })
      : undefined;
    const h = new EngineHost({ ...opts, onProgress: onProgress ? (p) => void onProgress(p) : undefined, recordTensors: record });
    const engine = await h.ensure();
    host = h;
    return engine.info;
  },
  startChat(req: ChatRequest): void {
    if (current) throw new InvalidArgumentError('a generation is already running; interrupt() it or wait for it to end');
    current = need().chat(req);
  },
  startGenerate(inputs: InputRow[], settings?: GenerationSettings): void {
    if (current) throw new InvalidArgumentError('a generation is already running; interrupt() it or wait for it to end');
    current = need().generate(inputs, settings);
  },
  async next(): Promise<IteratorResult<TokenChunk, undefined>> {
    if (!current) return { done: true, value: undefined };
    try {
      const r = await current.next();
      if (r.done) current = null;
      return r.done ? { done: true, value: undefined } : r;
    } catch (e) {
      current = null;
      throw e;
    }
  },
  async cancel(): Promise<void> {
    const c = current;
    current = null;
    host?.interrupt();
    await c?.return(undefined);
  },
  interrupt(): void {
    host?.interrupt();
  },
  reset(): void {
    need().reset();
  },
  async info(): Promise<EngineInfo> {
    return (await need().ensure()).info;
  },
  dispose(): void {
    host?.dispose();
    host = null;
  },
};

export type WorkerApi = typeof workerApi;
