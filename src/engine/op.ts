/**
 * Ops are plain data; `encode` is the only place that touches a command encoder.
 * A kernel op names its shader, entry point, defines and overrides, the kinds of its bindings in binding order
 * (group 0, bindings 0..n-1) and the buffers to bind. Kernel constructors (src/kernels) check shapes and return ops.
 */
import type { Gpu } from './gpu';
import { assertAlive } from './gpu';
import { preprocess, type Defines } from './wgsl';

/** 'read' = read-only storage, 'rw' = read-write storage, 'uniform' = uniform buffer. */
export type BindingKind = 'read' | 'rw' | 'uniform';

export interface BufferSlice {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export interface ShaderSource {
  /** File name without extension, e.g. 'wkv6'; used in labels and the cache key. */
  name: string;
  code: string;
}

export interface KernelOp {
  kind: 'kernel';
  label: string;
  shader: ShaderSource;
  entry: string;
  defines?: Defines;
  overrides?: Record<string, number>;
  layout: readonly BindingKind[];
  bindings: readonly (GPUBuffer | BufferSlice)[];
  workgroups: readonly [number, number?, number?];
  /** Cached on first encode. */
  bindGroup?: GPUBindGroup;
}

export interface CopyOp {
  kind: 'copy';
  label: string;
  src: GPUBuffer;
  srcOffset: number;
  dst: GPUBuffer;
  dstOffset: number;
  size: number;
}

export type Op = KernelOp | CopyOp;

export function copyOp(label: string, src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): CopyOp {
  return { kind: 'copy', label, src, srcOffset, dst, dstOffset, size };
}

function layoutKey(layout: readonly BindingKind[]): string {
  return layout.join(',');
}

function bindGroupLayout(gpu: Gpu, layout: readonly BindingKind[]): GPUBindGroupLayout {
  const key = layoutKey(layout);
  let l = gpu.layouts.get(key);
  if (!l) {
    l = gpu.device.createBindGroupLayout({
      label: `layout(${key})`,
      entries: layout.map((k, i) => ({
        binding: i,
        visibility: 0x4 /* GPUShaderStage.COMPUTE */,
        buffer: { type: k === 'read' ? 'read-only-storage' : k === 'rw' ? 'storage' : 'uniform' },
      })),
    });
    gpu.layouts.set(key, l);
  }
  return l;
}

/** The cached pipeline for an op (compiled on first use). */
export function pipelineFor(gpu: Gpu, op: KernelOp): GPUComputePipeline {
  const key = `${op.shader.name}|${op.entry}|${JSON.stringify(op.defines ?? {})}|${JSON.stringify(op.overrides ?? {})}|${layoutKey(op.layout)}`;
  let p = gpu.pipelines.get(key);
  if (!p) {
    const variant = `${op.shader.name}.${op.entry}${op.defines ? JSON.stringify(op.defines) : ''}`;
    const module = gpu.device.createShaderModule({ label: variant, code: preprocess(op.shader.code, op.defines) });
    p = gpu.device.createComputePipeline({
      label: variant,
      layout: gpu.device.createPipelineLayout({ label: variant, bindGroupLayouts: [bindGroupLayout(gpu, op.layout)] }),
      compute: { module, entryPoint: op.entry, constants: op.overrides },
    });
    gpu.pipelines.set(key, p);
  }
  return p;
}

function bindGroupFor(gpu: Gpu, op: KernelOp): GPUBindGroup {
  if (!op.bindGroup) {
    op.bindGroup = gpu.device.createBindGroup({
      label: op.label,
      layout: bindGroupLayout(gpu, op.layout),
      entries: op.bindings.map((b, i) => {
        const s: BufferSlice = 'buffer' in b ? b : { buffer: b };
        return { binding: i, resource: { buffer: s.buffer, offset: s.offset ?? 0, size: s.size } };
      }),
    });
  }
  return op.bindGroup;
}

/** Record ops into `encoder` (one compute pass per run of consecutive kernels). */
export function encode(gpu: Gpu, ops: readonly Op[], encoder: GPUCommandEncoder): void {
  assertAlive(gpu);
  let pass: GPUComputePassEncoder | null = null;
  for (const op of ops) {
    if (op.kind === 'kernel') {
      if (op.layout.length !== op.bindings.length) {
        throw new Error(`${op.label}: ${op.bindings.length} bindings for a layout of ${op.layout.length}`);
      }
      pass ??= encoder.beginComputePass({ label: 'visualrwkv' });
      pass.setPipeline(pipelineFor(gpu, op));
      pass.setBindGroup(0, bindGroupFor(gpu, op));
      const [x, y = 1, z = 1] = op.workgroups;
      if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    } else {
      if (pass) {
        pass.end();
        pass = null;
      }
      if (op.size > 0) encoder.copyBufferToBuffer(op.src, op.srcOffset, op.dst, op.dstOffset, op.size);
    }
  }
  pass?.end();
}

/** Encode and submit ops in one command buffer. */
export function submit(gpu: Gpu, ops: readonly Op[]): void {
  const enc = gpu.device.createCommandEncoder({ label: 'visualrwkv' });
  encode(gpu, ops, enc);
  gpu.device.queue.submit([enc.finish()]);
}

/** Count of dispatches in an op list (for benchmarks). */
export function countDispatches(ops: readonly Op[]): number {
  return ops.filter((o) => o.kind === 'kernel').length;
}
