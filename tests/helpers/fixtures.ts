/** Access to the golden fixtures copied into tests/fixtures (from ../shared/fixtures; see its MANIFEST.md). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseSafetensors } from '../../src/weights/safetensors';
import { toF32, toI32, type HostTensor } from '../../src/weights/dtype';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

export function fixturePath(rel: string): string {
  return FIXTURES + rel;
}

export function readJson<T = any>(rel: string): T {
  return JSON.parse(readFileSync(fixturePath(rel), 'utf8')) as T;
}

const cache = new Map<string, Map<string, HostTensor>>();

/** All tensors of a safetensors fixture file. */
export function loadTensors(rel: string): Map<string, HostTensor> {
  let m = cache.get(rel);
  if (!m) {
    m = parseSafetensors(new Uint8Array(readFileSync(fixturePath(rel))), rel);
    cache.set(rel, m);
  }
  return m;
}

export function tensorF32(rel: string, name: string): Float32Array {
  const t = loadTensors(rel).get(name);
  if (!t) throw new Error(`${rel}: no tensor ${name}`);
  return toF32(t);
}

export function tensorI32(rel: string, name: string): Int32Array {
  const t = loadTensors(rel).get(name);
  if (!t) throw new Error(`${rel}: no tensor ${name}`);
  return toI32(t);
}
