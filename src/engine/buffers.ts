/** Buffer helpers: labelled creation, uploads, readback. */
import type { Gpu } from './gpu';
import { assertAlive, takeErrors } from './gpu';

const STORAGE = 0x80; // GPUBufferUsage.STORAGE (constants inlined: the globals may not exist before Dawn loads)
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const UNIFORM = 0x40;
const MAP_READ = 0x01;

/** A storage buffer of `size` bytes (rounded up to 4), zero-initialised, usable as copy source and destination. */
export function createStorage(gpu: Gpu, label: string, size: number): GPUBuffer {
  assertAlive(gpu);
  return gpu.device.createBuffer({ label, size: Math.max(16, align(size, 16)), usage: STORAGE | COPY_SRC | COPY_DST });
}

/** A storage buffer holding `data`. */
export function uploadStorage(gpu: Gpu, label: string, data: ArrayBufferView): GPUBuffer {
  const buf = createStorage(gpu, label, data.byteLength);
  writeBuffer(gpu, buf, 0, data);
  return buf;
}

/** A uniform buffer holding `data` (padded to 16 bytes). */
export function createUniform(gpu: Gpu, label: string, data: ArrayBufferView): GPUBuffer {
  assertAlive(gpu);
  const buf = gpu.device.createBuffer({ label, size: Math.max(16, align(data.byteLength, 16)), usage: UNIFORM | COPY_DST });
  writeBuffer(gpu, buf, 0, data);
  return buf;
}

/** queue.writeBuffer for any view, padding the byte length to a multiple of 4. */
export function writeBuffer(gpu: Gpu, buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) {
    gpu.device.queue.writeBuffer(buffer, offset, bytes as Uint8Array<ArrayBuffer>);
  } else {
    const padded = new Uint8Array(align(bytes.byteLength, 4));
    padded.set(bytes);
    gpu.device.queue.writeBuffer(buffer, offset, padded);
  }
}

/** Read `size` bytes of `buffer` from `offset` back to the CPU. */
export async function readBytes(gpu: Gpu, buffer: GPUBuffer, offset = 0, size = buffer.size - offset): Promise<ArrayBuffer> {
  assertAlive(gpu);
  const n = align(size, 4);
  const staging = gpu.device.createBuffer({ label: `readback:${buffer.label}`, size: n, usage: MAP_READ | COPY_DST });
  const enc = gpu.device.createCommandEncoder({ label: 'readback' });
  enc.copyBufferToBuffer(buffer, offset, staging, 0, n);
  gpu.device.queue.submit([enc.finish()]);
  await new Promise((r) => setTimeout(r, 0)); // Dawn spins while a GPU promise is pending
  await staging.mapAsync(0x0001 /* GPUMapMode.READ */);
  const out = staging.getMappedRange().slice(0, size);
  staging.unmap();
  staging.destroy();
  takeErrors(gpu);
  return out;
}

export async function readF32(gpu: Gpu, buffer: GPUBuffer, offset = 0, count?: number): Promise<Float32Array> {
  const size = count === undefined ? buffer.size - offset : count * 4;
  return new Float32Array(await readBytes(gpu, buffer, offset, size));
}

export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
