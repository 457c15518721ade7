/**
 * The RWKV-7 WKV recurrence (shaders/wkv7.wgsl, spec §4.3 step 9), state S[h][value i][key j] in f32, updated in place:
 *   s_i = Σ_j S[i][j]·(−κ̂_j);  S[i][j] ← S[i][j]·w_j + s_i·κ̂_j·α_j + v_i·k'_j;  y_i = Σ_j S[i][j]·r_j (new state),
 * with w_j = exp(−e^{−1/2}·σ(z_j)) computed in the kernel from the decay logit z.
 *
 * Two kernels, same bindings, same numbers to f32 rounding:
 *   'seq'      sequential over t, one thread per value row (decode, and the reference kernel);
 *   'chunked'  chunks of L tokens (prefill): per chunk the L×L matrices coupling the tokens' sa and y
 *              (A_ts = Σ_j a_t b_s e^{g_{t−1}−g_s}, …) are built once per head in workgroup memory, then each value row
 *              solves a small triangular system for its sa_t and y_t and updates its state row once per chunk. See
 *              the header of shaders/wkv7.wgsl for the derivation and the range argument of the factorised decays.
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { needBytes, needInt } from './types';
import code from '../../shaders/wkv7.wgsl?raw';

const SHADER = { name: 'wkv7', code };
/** Largest head size: one state row of N floats lives in each invocation's registers (MAX_N in the shader). */
export const WKV7_MAX_N = 64;
/** Largest chunk length of the chunked kernel (MAX_L in the shader: per-thread arrays of the chunk). */
export const WKV7_MAX_CHUNK = 32;
/**
 * Default chunk length of the chunked kernel: 16 (20.5 KB of workgroup memory at N = 64); on an adapter whose
 * workgroup memory is smaller (WebGPU's default limit is 16 KiB) it falls to the largest that fits (8 at N = 64).
 */
export const WKV7_DEFAULT_CHUNK = 16;

/**
 * Prompt length from which the model uses the chunked kernel. A partial chunk costs the chunked kernel a whole chunk's
 * work (its loops run over L with static bounds): per value row ≈ 4NL + 4L² multiply-adds per chunk, about the
 * sequential kernel's ≈ 5NL for L tokens, but in independent chains (the sequential kernel's ~2N-long dependent chain
 * per token is what bounds it on a GPU, where H·N threads leave most lanes idle); below about one chunk the
 * sequential kernel does less work. Decode (T = 1) always uses 'seq'. Measured only on SwiftShader (bench/wkv7.ts,
 * H = 12, N = 64, median of 5): T = 641 seq 289 ms, chunked 469 ms; T = 64 39 / 63 ms; T = 16 13 / 23 ms — CPU emulation
 * runs a workgroup's invocations one after another and does not reward independent chains; not tuned for it.
 */
export const WKV7_CHUNKED_MIN_T = 16;

/** Workgroup memory of the chunked kernel in bytes (see the shader header). */
export function wkv7ChunkedSharedBytes(N: number, L: number): number {
  return 4 * (4 * L * (N + 1) + 4 * L * L + N);
}

export interface Wkv7Args {
  /** (T, C) f32 receptance. */
  r: GPUBuffer;
  /** (T, C) f32 decay logit z = w0 + tanh(x_w·w1)·w2 (the kernel applies exp(−e^{−1/2}·σ(z))). */
  w: GPUBuffer;
  /** (T, C) f32 k' (α-modulated key, from rwkv7_prep). */
  k: GPUBuffer;
  /** (T, C) f32 value (after the value residual). */
  v: GPUBuffer;
  /** (T, C) f32 κ̂. */
  kk: GPUBuffer;
  /** (T, C) f32 α. */
  alpha: GPUBuffer;
  /** (H, N, N) f32 S[h][value i][key j], read and written. */
  state: GPUBuffer;
  /** (T, C) f32 out. */
  y: GPUBuffer;
  T: number;
  H: number;
  N: number;
  /**
   * 'seq' (default): sequential over t — decode and short T. 'chunked': the chunked prefill kernel; it does a whole
   * chunk's work even for a partial chunk, so it pays off from about T ≥ chunk.
   */
  mode?: 'seq' | 'chunked';
  /** Chunk length L of 'chunked' (1 … 32; default 16, or the largest ≤ 16 that fits the device's workgroup memory). */
  chunk?: number;
  /**
   * Value rows (threads) per workgroup; divides N. Default N (one workgroup per head). Smaller values give
   * N / rowsPerGroup workgroups per head, each restaging the shared vectors: more parallelism when H is small.
   */
  rowsPerGroup?: number;
  label?: string;
}

/**
 * (N / rowsPerGroup, H) workgroups; each thread walks all T tokens for one value row (in chunks of L for 'chunked').
 *
 * @example
 * ops.push(wkv7Op(gpu, { r: s.r, w: s.dec, k: s.k, v: s.v, kk: s.kk, alpha: s.alpha, state: st.wkv, y: s.y,
 *   T, H, N, mode: T >= WKV7_CHUNKED_MIN_T ? 'chunked' : 'seq', label: `L${i}.att.wkv` }));
 */
export function wkv7Op(gpu: Gpu, a: Wkv7Args): KernelOp {
  const label = a.label ?? 'wkv7';
  const { T, H, N } = a;
  const rows = a.rowsPerGroup ?? N;
  needInt(T, 1, `${label}: T`);
  needInt(H, 1, `${label}: H`);
  needInt(N, 1, `${label}: N`);
  if (N > WKV7_MAX_N) throw new ShapeError(`${label}: head size N = ${N} exceeds ${WKV7_MAX_N}`);
  needInt(rows, 1, `${label}: rowsPerGroup`);
  if (N % rows !== 0) throw new ShapeError(`${label}: rowsPerGroup = ${rows} must divide N = ${N}`);
  if (a.mode !== undefined && a.mode !== 'seq' && a.mode !== 'chunked') {
    throw new ShapeError(`${label}: mode must be 'seq' or 'chunked', got ${String(a.mode)}`);
  }
  if (H > gpu.limits.maxComputeWorkgroupsPerDimension) throw new ShapeError(`${label}: H = ${H} exceeds the workgroup grid`);
  const C = H * N;
  for (const [name, b] of [['r', a.r], ['w', a.w], ['k', a.k], ['v', a.v], ['kk', a.kk], ['alpha', a.alpha], ['y', a.y]] as const) {
    needBytes(b, T * C * 4, `${label}: ${name} (${T}, ${C})`);
  }
  needBytes(a.state, H * N * N * 4, `${label}: state (${H}, ${N}, ${N})`);
  const inputs = { r: a.r, w: a.w, k: a.k, v: a.v, kk: a.kk, alpha: a.alpha };
  for (const [out, b] of [['state', a.state], ['y', a.y]] as const) {
    for (const [name, o] of Object.entries({ ...inputs, ...(out === 'y' ? { state: a.state } : {}) })) {
      if (o === b) throw new ShapeError(`${label}: ${out} and ${name} must be different buffers (${out} is written)`);
    }
  }

  const overrides: Record<string, number> = { N, ROWS: rows };
  if (a.mode === 'chunked') {
    const max = gpu.limits.maxComputeWorkgroupStorageSize;
    let L = a.chunk;
    if (L === undefined) {
      L = WKV7_DEFAULT_CHUNK;
      while (L > 1 && wkv7ChunkedSharedBytes(N, L) > max) L >>= 1;
    }
    needInt(L, 1, `${label}: chunk`);
    if (L > WKV7_MAX_CHUNK) throw new ShapeError(`${label}: chunk ${L} exceeds ${WKV7_MAX_CHUNK}`);
    const bytes = wkv7ChunkedSharedBytes(N, L);
    if (bytes > max) throw new ShapeError(`${label}: chunk ${L} needs ${bytes} B of workgroup memory, the device has ${max}`);
    overrides.CHUNK = L;
  }
  const uniform = createUniform(gpu, `${label}.params`, new Uint32Array([T, H, 0, 0]));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: a.mode === 'chunked' ? 'wkv7_chunked' : 'wkv7',
    overrides,
    layout: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw', 'uniform'],
    bindings: [a.r, a.w, a.k, a.v, a.kk, a.alpha, a.state, a.y, uniform],
    workgroups: [N / rows, H],
  };
}
