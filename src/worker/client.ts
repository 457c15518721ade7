/**
 * The main-thread side: `createVisualRwkv` starts a Web Worker in browsers (the engine runs there) or runs the engine
 * in-process in Node. Both give the same `VisualRwkv` interface; errors arrive as the same typed classes.
 */
import * as Comlink from 'comlink';
import type { ChatRequest, EngineOptions, GenerationSettings, TokenChunk } from '../types';
import type { EngineInfo } from './api';
import type { InputRow } from '../model/model';
import type { WorkerApi } from './handler';
import { ERROR_CLASSES, UnsafePickleError, VisualRwkvError } from '../errors';
import { isNode } from './sources';

export interface VisualRwkv {
  readonly info: EngineInfo;
  /** One chat turn; iterate the reply as it streams. */
  chat(req: ChatRequest): AsyncIterable<TokenChunk>;
  /** Continue from the current state with raw token ids / rows. */
  generate(inputs: InputRow[], settings?: GenerationSettings): AsyncIterable<TokenChunk>;
  /** Stop the running generation (within one token or one prefill segment). */
  interrupt(): void;
  /** Forget the conversation. */
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

export interface CreateOptions extends EngineOptions {
  /** Browser only: run the engine on the page instead of in a worker (default false). */
  inline?: boolean;
}

/** Re-create a typed error from one that crossed the worker boundary (comlink keeps name and message). */
export function reviveError(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof VisualRwkvError) return e;
  const Cls = (ERROR_CLASSES as Record<string, new (...a: any[]) => VisualRwkvError>)[e.name];
  if (!Cls) return e;
  const out = Cls === UnsafePickleError ? new UnsafePickleError((e as any).global ?? '', e.message) : new Cls(e.message);
  out.stack = e.stack;
  return out;
}

/**
 * Load a model (and optionally an image encoder) and return a chat engine.
 * @example
 * const vr = await createVisualRwkv({ model: '/models/VisualRWKV-v060-1B6.pth', encoder: '/models/vision_model.onnx',
 *   onProgress: (p) => console.log(p.stage, p.loaded, p.total) });
 * for await (const chunk of vr.chat({ text: 'What is in the image?', image: file })) out.textContent += chunk.text;
 */
export async function createVisualRwkv(opts: CreateOptions): Promise<VisualRwkv> {
  if (isNode || opts.inline || typeof Worker === 'undefined') return inProcess(opts);
  return inWorker(opts);
}

async function inProcess(opts: CreateOptions): Promise<VisualRwkv> {
  const { EngineHost } = await import('./host');
  const host = new EngineHost(opts);
  const engine = await host.ensure();
  return {
    info: engine.info,
    chat: (req) => host.chat(req),
    generate: (inputs, settings) => host.generate(inputs, settings),
    interrupt: () => host.interrupt(),
    reset: async () => host.reset(),
    dispose: async () => host.dispose(),
  };
}

async function inWorker(opts: CreateOptions): Promise<VisualRwkv> {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'visualrwkv' });
  const api = Comlink.wrap<WorkerApi>(worker);
  const { onProgress, recordTensors, inline: _inline, ...rest } = opts;
  let info: EngineInfo;
  try {
    info = await api.init(rest, onProgress ? Comlink.proxy(onProgress) : undefined, recordTensors ? Comlink.proxy(recordTensors) : undefined);
  } catch (e) {
    worker.terminate();
    throw reviveError(e);
  }
  const stream = (start: () => Promise<void>): AsyncIterable<TokenChunk> => ({
    [Symbol.asyncIterator]() {
      let started = false;
      return {
        async next() {
          try {
            if (!started) {
              started = true;
              await start();
            }
            return (await api.next()) as IteratorResult<TokenChunk>;
          } catch (e) {
            throw reviveError(e);
          }
        },
        async return() {
          await api.cancel();
          return { done: true, value: undefined };
        },
      };
    },
  });
  return {
    info,
    chat: (req) => stream(() => api.startChat(req)),
    generate: (inputs, settings) => stream(() => api.startGenerate(inputs, settings)),
    interrupt: () => void api.interrupt(),
    reset: async () => {
      await api.reset();
    },
    dispose: async () => {
      await api.dispose();
      api[Comlink.releaseProxy]();
      worker.terminate();
    },
  };
}
