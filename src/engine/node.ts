/**
 * WebGPU in Node through Dawn (npm `webgpu`). The only importer of `webgpu`. Node-only: never import from browser code.
 * On machines without a GPU, Dawn needs a Vulkan driver: Debian's chromium ships SwiftShader, which we select
 * unless VISUALRWKV_REAL_GPU=1 or VK_ICD_FILENAMES is already set.
 */
import { existsSync } from 'node:fs';
import { createGpu, type CreateGpuOptions, type Gpu } from './gpu';
import { WebGPUUnavailableError } from '../errors';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

let dawn: GPU | null = null;

/** Create a GPU context on Dawn. */
export async function createNodeGpu(options: CreateGpuOptions = {}): Promise<Gpu> {
  if (!process.env.VISUALRWKV_REAL_GPU && !process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  if (!dawn) {
    let mod: typeof import('webgpu');
    try {
      mod = await import('webgpu');
    } catch (e) {
      throw new WebGPUUnavailableError(`the 'webgpu' (Dawn) package could not be loaded: ${(e as Error).message}`);
    }
    Object.assign(globalThis, mod.globals);
    dawn = mod.create([]);
  }
  return createGpu(dawn, options);
}

/** Drop Dawn's GPU object so the Node process can exit. */
export function releaseNodeGpu(gpu?: Gpu): void {
  gpu?.device.destroy();
  dawn = null;
}
