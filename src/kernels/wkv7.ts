/**
 * The RWKV-7 WKV recurrence (shaders/wkv7.wgsl, spec §4.3 step 9), state S[h][value i][key j] in f32, updated in place:
 *   s_i = Σ_j S[i][j]·(−κ̂_j);  S[i][j] ← S[i][j]·w_j + s_i·κ̂_j·α_j + v_i·k'_j;  y_i = Σ_j S[i][j]·r_j (new state),
 * with w_j = exp(−e^{−1/2}·σ(z_j)) computed in the kernel from the decay logit z.
 *
 * Only a sequential kernel exists: `mode: 'chunked'` runs the same sequential kernel (a chunked form of the
 * generalized delta rule needs a WY/UT transform, spec §4.5; not built).
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
  /** 'chunked' currently runs the sequential kernel too. Default 'seq'. */
  mode?: 'seq' | 'chunked';
  /**
   * Value rows (threads) per workgroup; divides N. Default N (one workgroup per head). Smaller values give
   * N / rowsPerGroup workgroups per head, each restaging the shared vectors: more parallelism when H is small.
   */
  rowsPerGroup?: number;
  label?: string;
}

/**
 * (N / rowsPerGroup, H) workgroups; each thread walks all T tokens for one value row.
 *
 * @example
 * ops.push(wkv7Op(gpu, { r: s.r, w: s.dec, k: s.k, v: s.v, kk: s.kk, alpha: s.alpha, state: st.wkv, y: s.y,
 *   T, H, N, mode: 'seq', label: `L${i}.att.wkv` }));
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

  const uniform = createUniform(gpu, `${label}.params`, new Uint32Array([T, H, 0, 0]));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'wkv7',
    overrides: { N, ROWS: rows },
    layout: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw', 'uniform'],
    bindings: [a.r, a.w, a.k, a.v, a.kk, a.alpha, a.state, a.y, uniform],
    workgroups: [N / rows, H],
  };
}
