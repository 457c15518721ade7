/**
 * Shared GPU context for GPU-tier tests (Dawn on SwiftShader here, the real driver on a GPU machine).
 * A missing adapter is a test failure, never a skip.
 */
import { createNodeGpu } from '../../src/engine/node';
import type { Gpu } from '../../src/engine/gpu';
import { takeErrors } from '../../src/engine/gpu';

let shared: Promise<Gpu> | null = null;

export function testGpu(): Promise<Gpu> {
  shared ??= createNodeGpu();
  return shared;
}

/** Run fn inside a validation + out-of-memory error scope; throw if the GPU reported any error. */
export async function checked<T>(gpu: Gpu, fn: () => Promise<T> | T): Promise<T> {
  gpu.device.pushErrorScope('validation');
  gpu.device.pushErrorScope('out-of-memory');
  let result: T;
  try {
    result = await fn();
  } finally {
    const oom = await gpu.device.popErrorScope();
    const val = await gpu.device.popErrorScope();
    if (oom) throw new Error(`GPU out-of-memory error: ${oom.message}`);
    if (val) throw new Error(`GPU validation error: ${val.message}`);
  }
  takeErrors(gpu);
  return result;
}
