/**
 * The GPU context: one device, its features and limits, a pipeline cache, and error capture.
 * Nothing here knows about RWKV. Works with any `GPU` object: `navigator.gpu` in browsers, Dawn's in Node
 * (see `node.ts`).
 */
import { DeviceLostError, GpuValidationError, WebGPUUnavailableError } from '../errors';

export interface GpuFeatures {
  /** `shader-f16` is available (never required: 16-bit weights are unpacked from u32 without it). */
  f16: boolean;
  /** `subgroups` is available. */
  subgroups: boolean;
  /** `timestamp-query` is available. */
  timestamp: boolean;
}

export interface Gpu {
  device: GPUDevice;
  adapterInfo: { vendor: string; architecture: string; device: string; description: string };
  features: GpuFeatures;
  limits: GPUSupportedLimits;
  /** Pipelines keyed by (shader, entry, defines, overrides, layout). */
  pipelines: Map<string, GPUComputePipeline>;
  layouts: Map<string, GPUBindGroupLayout>;
  /** Set when the device is lost; every later call throws DeviceLostError. */
  lost: GPUDeviceLostInfo | null;
  /** Uncaptured errors since the last `takeErrors()`. */
  errors: GPUError[];
}

export interface CreateGpuOptions {
  powerPreference?: GPUPowerPreference;
  /** Do not request these optional features even if available (tests use this to exercise fallbacks). */
  disableFeatures?: (keyof GpuFeatures)[];
}

/** Create the engine's GPU context from a `GPU` (e.g. `navigator.gpu`). Throws WebGPUUnavailableError. */
export async function createGpu(gpu: GPU | undefined, options: CreateGpuOptions = {}): Promise<Gpu> {
  if (!gpu) throw new WebGPUUnavailableError('WebGPU is not available here (navigator.gpu is undefined)');
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) throw new WebGPUUnavailableError('WebGPU is present but no GPU adapter was found');
  const off = new Set(options.disableFeatures ?? []);
  const want: [keyof GpuFeatures, GPUFeatureName][] = [
    ['f16', 'shader-f16'],
    ['subgroups', 'subgroups' as GPUFeatureName],
    ['timestamp', 'timestamp-query'],
  ];
  const requiredFeatures: GPUFeatureName[] = [];
  const features: GpuFeatures = { f16: false, subgroups: false, timestamp: false };
  for (const [k, name] of want) {
    if (!off.has(k) && adapter.features.has(name)) {
      requiredFeatures.push(name);
      features[k] = true;
    }
  }
  const a = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    maxStorageBuffersPerShaderStage: Math.min(a.maxStorageBuffersPerShaderStage, 10),
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'visualrwkv' });
  } catch (e) {
    throw new WebGPUUnavailableError(`could not create a WebGPU device: ${(e as Error).message}`, { cause: e });
  }
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const ctx: Gpu = {
    device,
    adapterInfo: {
      vendor: info?.vendor ?? '',
      architecture: info?.architecture ?? '',
      device: info?.device ?? '',
      description: info?.description ?? '',
    },
    features,
    limits: device.limits,
    pipelines: new Map(),
    layouts: new Map(),
    lost: null,
    errors: [],
  };
  device.lost.then((lostInfo) => {
    ctx.lost = lostInfo;
  });
  device.addEventListener('uncapturederror', (ev) => {
    ctx.errors.push((ev as GPUUncapturedErrorEvent).error);
  });
  return ctx;
}

/** Throw DeviceLostError if the device is gone. */
export function assertAlive(gpu: Gpu): void {
  if (gpu.lost) throw new DeviceLostError(`the GPU device was lost (${gpu.lost.reason}): ${gpu.lost.message}`);
}

/** Throw GpuValidationError if any uncaptured GPU error happened since the last call (and clear the list). */
export function takeErrors(gpu: Gpu): void {
  assertAlive(gpu);
  if (gpu.errors.length === 0) return;
  const msgs = gpu.errors.map((e) => e.message);
  gpu.errors = [];
  throw new GpuValidationError(`GPU error: ${msgs.join('\n')}`);
}

/** Human-readable adapter name. */
export function adapterName(gpu: Gpu): string {
  const i = gpu.adapterInfo;
  return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unknown adapter';
}

/** Wait for all submitted work (with a short sleep first: Dawn spins the main thread while a promise is pending). */
export async function sync(gpu: Gpu): Promise<void> {
  await new Promise((r) => setTimeout(r, 0));
  await gpu.device.queue.onSubmittedWorkDone();
  takeErrors(gpu);
}
