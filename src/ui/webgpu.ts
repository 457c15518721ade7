/**
 * The page's WebGPU check: find an adapter, name it, and run one tiny kernel to prove WGSL runs here, before the
 * engine's worker is started. When WebGPU is missing, say where it works and how to turn it on.
 */
import { readF32, uploadStorage, createStorage } from '../engine/buffers';
import { adapterName, createGpu, type Gpu } from '../engine/gpu';
import { submit, type KernelOp } from '../engine/op';
import { sentence, WebGPUUnavailableError } from '../errors';

/** Where WebGPU works (late 2025), shown when it does not work here. */
export const WEBGPU_HELP =
  'VisualRWKV needs WebGPU. It is available in Chrome and Edge 113+ on Windows, macOS and ChromeOS, ' +
  'Chrome 121+ on Android, Safari 26+ on macOS, iOS and iPadOS, and Firefox 141+ on Windows. ' +
  'On Linux, start Chrome/Chromium with --enable-unsafe-webgpu --enable-features=Vulkan ' +
  '(or turn on chrome://flags/#enable-unsafe-webgpu); also update your GPU driver, since blocklisted GPUs get no adapter.';

/** The outcome of looking for WebGPU on this page. */
export type WebGpuCheck =
  | { ok: true; gpu: Gpu; name: string; features: string }
  | { ok: false; unavailable: boolean; message: string };

/** Look for a WebGPU device on the page. Never throws: a failure comes back as a message for people. */
export async function checkWebGpu(): Promise<WebGpuCheck> {
  try {
    if (!window.isSecureContext) {
      throw new WebGPUUnavailableError('WebGPU needs a secure context: open this page over https:// or from localhost.');
    }
    const gpu = await createGpu(navigator.gpu);
    return { ok: true, gpu, name: adapterName(gpu), features: describeFeatures(gpu) };
  } catch (e) {
    const msg = (e as Error).message;
    if (e instanceof WebGPUUnavailableError) return { ok: false, unavailable: true, message: `${sentence(msg)} ${WEBGPU_HELP}` };
    return { ok: false, unavailable: false, message: `Could not start WebGPU: ${sentence(msg)}` };
  }
}

function describeFeatures(gpu: Gpu): string {
  const f = gpu.features;
  const mib = (x: number) => `${Math.round(x / 2 ** 20)} MiB`;
  return (
    `shader-f16: ${f.f16 ? 'yes' : 'no'} · subgroups: ${f.subgroups ? 'yes' : 'no'} · ` +
    `timestamp-query: ${f.timestamp ? 'yes' : 'no'} · max storage binding ${mib(gpu.limits.maxStorageBufferBindingSize)}`
  );
}

/**
 * y = a + b, where a is f32 and b is bf16 packed two per u32 (the weight format), N elements.
 * Exercises the engine's preprocessor (#include), override constants, packed 16-bit unpacking and readback.
 */
const SELFTEST_WGSL = `
#include "common"
override N: u32;
@group(0) @binding(0) var<storage, read> a: array<f32>;        // (N)
@group(0) @binding(1) var<storage, read> b: array<u32>;        // (N/2) bf16 pairs
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // (N)
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i >= N) { return; }
  y[i] = a[i] + unpack_w(b[i / 2u])[i % 2u];
}`;

/**
 * Run the self-test kernel and compare with the CPU (f32 addition is correctly rounded in WGSL: exact match).
 * Returns a sentence for the page; throws on a mismatch or a validation error.
 */
export async function selfTest(gpu: Gpu): Promise<string> {
  const n = 1000;
  const a = Float32Array.from({ length: n }, (_, i) => i * 0.37 - 100);
  // bf16 values are f32 values whose low 16 bits are zero; keep the high halves and pack two per u32.
  const bF32 = Float32Array.from({ length: n }, (_, i) => (i % 17) * 0.5 - 3);
  const bHi = new Uint32Array(bF32.buffer).map((u) => u >>> 16);
  const b = Uint32Array.from({ length: n / 2 }, (_, i) => (bHi[2 * i]! | (bHi[2 * i + 1]! << 16)) >>> 0);
  const bufA = uploadStorage(gpu, 'selftest.a', a);
  const bufB = uploadStorage(gpu, 'selftest.b', b);
  const bufY = createStorage(gpu, 'selftest.y', n * 4);
  const op: KernelOp = {
    kind: 'kernel',
    label: 'selftest.add',
    shader: { name: 'selftest', code: SELFTEST_WGSL },
    entry: 'main',
    overrides: { N: n },
    layout: ['read', 'read', 'rw'],
    bindings: [bufA, bufB, bufY],
    workgroups: [Math.ceil(n / 64)],
  };
  const t0 = performance.now();
  gpu.device.pushErrorScope('validation');
  let y: Float32Array;
  try {
    submit(gpu, [op]);
    y = await readF32(gpu, bufY, 0, n);
  } finally {
    const err = await gpu.device.popErrorScope();
    for (const buf of [bufA, bufB, bufY]) buf.destroy();
    if (err) throw new Error(`validation error: ${err.message}`);
  }
  const ms = performance.now() - t0;
  for (let i = 0; i < n; i++) {
    const want = Math.fround(a[i]! + bF32[i]!);
    if (y[i] !== want) throw new Error(`y[${i}] = ${y[i]}, expected ${want}`);
  }
  return `Self-test passed: ${n}-element vector add (f32 + packed bf16) on the GPU in ${ms.toFixed(1)} ms.`;
}
