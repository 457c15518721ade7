/**
 * The RWKV-6 WKV recurrence (shaders/wkv6.wgsl, spec §3.3 step 7 and §3.5), updating the state in place:
 *   y_t[i] = Σ_j r_t[j]·(u[j]·k_t[j]·v_t[i] + S[j][i]);  S[j][i] ← w_t[j]·S[j][i] + k_t[j]·v_t[i],  w = exp(−exp(δ)).
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { needBytes, needInt } from './types';
import code from '../../shaders/wkv6.wgsl?raw';

const SHADER = { name: 'wkv6', code };

/** Largest head size: the state column lives in a 64-entry register array. */
export const WKV6_MAX_N = 64;
/**
 * Default chunk length of the chunked kernel. 16 keeps its workgroup memory (14.9 KB at N = 64) inside WebGPU's
 * default 16 KiB limit, so it runs on every adapter (32 needs 29 KB). Exactness makes the intra-chunk matrix cost
 * one exp per (t, s, j) term, i.e. O(L) per token, while barriers per token fall as 4/L (seq: 2), so mid-size chunks
 * win. On SwiftShader (T = 256, H = 2/8, min of 7 runs under load): seq 58/245 ms, L = 8 68/260, L = 16 61/276,
 * L = 32 78/325 — CPU emulation does not reward the ILP; prefer 'seq' for T < 16 there and everywhere for decode.
 */
export const WKV6_DEFAULT_CHUNK = 16;

export interface Wkv6Args {
  /** (T, C) f32 receptance, C = H·N. */
  r: GPUBuffer;
  /** (T, C) f32 key. */
  k: GPUBuffer;
  /** (T, C) f32 value. */
  v: GPUBuffer;
  /** (T, C) f32 decay logit δ (w = exp(−exp(δ))). */
  decay: GPUBuffer;
  /** (H, N) f32 time_faaaa. */
  u: GPUBuffer;
  /** (H, N, N) f32 state [head][key j][value i]; read at the start, overwritten with the final state. */
  state: GPUBuffer;
  /** (T, C) f32 output. */
  y: GPUBuffer;
  T: number;
  H: number;
  N: number;
  /** 'seq': sequential over t (decode, reference); 'chunked': chunked prefill (§3.5). Both give the same numbers to f32 tolerance. */
  mode: 'seq' | 'chunked';
  /** Chunk length for 'chunked' (default 16, capped at N; N must be a multiple). Ignored for 'seq'. */
  chunk?: number;
  label?: string;
}

/** Workgroup memory of the chunked kernel in bytes (see the shader header). */
export function wkv6ChunkedSharedBytes(N: number, L: number): number {
  return 4 * (3 * L * (N + 1) + (N / L) * ((L * (L + 1)) / 2) + N);
}

/**
 * One dispatch of H workgroups × N invocations.
 *
 * @example
 * ops.push(wkv6Op(gpu, { r, k, v, decay, u: att.time_faaaa, state: st.wkv, y, T, H, N, mode: T > 4 ? 'chunked' : 'seq' }));
 */
export function wkv6Op(gpu: Gpu, a: Wkv6Args): KernelOp {
  const label = a.label ?? `wkv6_${a.mode}`;
  const { T, H, N } = a;
  needInt(T, 1, `${label}: T`);
  needInt(H, 1, `${label}: H`);
  needInt(N, 1, `${label}: N`);
  if (N > WKV6_MAX_N) throw new ShapeError(`${label}: head size N = ${N} > ${WKV6_MAX_N}`);
  if (H > gpu.limits.maxComputeWorkgroupsPerDimension) throw new ShapeError(`${label}: H = ${H} heads exceed the dispatch limit`);
  const C = H * N;
  needBytes(a.r, T * C * 4, `${label}: r (${T}, ${C})`);
  needBytes(a.k, T * C * 4, `${label}: k (${T}, ${C})`);
  needBytes(a.v, T * C * 4, `${label}: v (${T}, ${C})`);
  needBytes(a.decay, T * C * 4, `${label}: decay (${T}, ${C})`);
  needBytes(a.u, C * 4, `${label}: u (${H}, ${N})`);
  needBytes(a.state, C * N * 4, `${label}: state (${H}, ${N}, ${N})`);
  needBytes(a.y, T * C * 4, `${label}: y (${T}, ${C})`);
  for (const [name, b] of [['r', a.r], ['k', a.k], ['v', a.v], ['decay', a.decay], ['u', a.u]] as const) {
    if (b === a.y || b === a.state) throw new ShapeError(`${label}: ${name} must not alias y or state`);
  }
  if (a.y === a.state) throw new ShapeError(`${label}: y and state must be different buffers`);

  const overrides: Record<string, number> = { N };
  if (a.mode === 'chunked') {
    const L = Math.min(a.chunk ?? WKV6_DEFAULT_CHUNK, N);
    needInt(L, 1, `${label}: chunk`);
    if (L > 64 || N % L !== 0) throw new ShapeError(`${label}: chunk ${L} must divide N = ${N} and be ≤ 64`);
    const bytes = wkv6ChunkedSharedBytes(N, L);
    if (bytes > gpu.limits.maxComputeWorkgroupStorageSize) {
      throw new ShapeError(`${label}: chunk ${L} needs ${bytes} B of workgroup memory, the device has ${gpu.limits.maxComputeWorkgroupStorageSize}`);
    }
    overrides.CHUNK = L;
  } else if (a.mode !== 'seq') {
    throw new ShapeError(`${label}: unknown mode '${String(a.mode)}'`);
  }
  const uniform = createUniform(gpu, `${label}.dims`, new Uint32Array([T, H, C, 0]));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: a.mode === 'chunked' ? 'wkv6_chunked' : 'wkv6_seq',
    overrides,
    layout: ['uniform', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
    bindings: [uniform, a.r, a.k, a.v, a.decay, a.u, a.state, a.y],
    workgroups: [H],
  };
}
