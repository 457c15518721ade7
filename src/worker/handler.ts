/** The object a worker exposes: the engine as pull-based calls (one generation at a time). */
import { VisualRwkvEngine, type EngineInfo } from './api';
import type { ChatRequest, EngineOptions, Progress, TokenChunk, GenerationSettings } from '../types';
import type { InputRow } from '../model/model';
import { InvalidArgumentError } from '../errors';

let engine: VisualRwkvEngine | null = null;
let current: AsyncGenerator<TokenChunk> | null = null;

function need(): VisualRwkvEngine {
  if (!engine) throw new InvalidArgumentError('the engine is not loaded yet');
  return engine;
}

export const workerApi = {
  async init(opts: Omit<EngineOptions, 'onProgress'>, onProgress?: (p: Progress) => void): Promise<EngineInfo> {
    engine?.dispose();
    engine = null;
    engine = await VisualRwkvEngine.create({ ...opts, onProgress: onProgress ? (p) => void onProgress(p) : undefined });
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
    engine?.interrupt();
    await c?.return(undefined);
  },
  interrupt(): void {
    engine?.interrupt();
  },
  reset(): void {
    need().reset();
  },
  info(): EngineInfo {
    return need().info;
  },
  dispose(): void {
    engine?.dispose();
    engine = null;
  },
};

export type WorkerApi = typeof workerApi;
