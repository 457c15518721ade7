/// <reference types="@webgpu/types" preserve="true" />
/**
 * visualrwkv-web: VisualRWKV (RWKV-6/7 vision-language RNN) on WebGPU, in browsers and Node.
 * @example
 * import { createVisualRwkv } from 'visualrwkv-web';
 * const vr = await createVisualRwkv({ model: url, encoder: onnxUrl });
 * for await (const c of vr.chat({ text: 'Describe the image.', image: file })) console.log(c.text);
 */
export { createVisualRwkv, type VisualRwkv, type CreateOptions } from './worker/client';
export type { EngineInfo } from './worker/api';
export * from './types';
export * from './errors';
export { GREEDY, APP_DEFAULTS, type SamplerOptions } from './text/sampler';
export type { ImagePosition } from './text/prompt';
