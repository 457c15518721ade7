import { defineConfig } from 'vitest/config';

// Dawn (npm `webgpu`) needs a Vulkan driver; Debian's chromium ships SwiftShader. Set before any requestAdapter().
// On a machine with a real GPU, set VISUALRWKV_REAL_GPU=1 to let Dawn pick the GPU's driver instead.
if (!process.env.VISUALRWKV_REAL_GPU && !process.env.VK_ICD_FILENAMES) {
  process.env.VK_ICD_FILENAMES = '/usr/lib/chromium/vk_swiftshader_icd.json';
}
process.env.XDG_RUNTIME_DIR ??= '/tmp';

export default defineConfig({
  test: {
    pool: 'forks',
    include: ['tests/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // GPU tests share one CPU-emulated adapter; two forks keep both cores busy without thrashing.
    maxWorkers: 2,
  },
});
