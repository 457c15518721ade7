/**
 * VisualRWKV projectors in float64: v6.0 grid pooling + `proj` (spec §6.1, MANIFEST §4) and the v7.00
 * adaptive pooling + `MLPWithContextGating` with `ln_v` (spec §6.2). Both also return the rows after block-0
 * ln0, which is what the first block sees (spec §6.3); `refForward` applies ln0 itself, so feed it `projected`.
 *
 * Features are flat row-major [rows, D] arrays (any ArrayLike, e.g. a Float32Array from a fixture).
 *
 * @example
 *   const { projected } = refProjectV6(lastHiddenState, m.w('proj.weight'), -1, m.norm('blocks.0.ln0'));
 */
import { layerNorm, map, matvec, mul, sigmoid, type NormParams, type Vec } from './common';

export interface ProjectorOutput {
  /** pooled features, one [D] row per image row */
  pooled: Vec[];
  /** rows fed to the model in place of the placeholder(s), [C] each (v6: proj·pooled; v7: after ln_v) */
  projected: Vec[];
  /** LN_ln0(projected): what block 0 receives */
  afterLn0: Vec[];
}

/** Rows [i0, i1) of a flat [*, D] array, as float64 rows. */
function rowsOf(x: ArrayLike<number>, D: number, i0: number, i1: number): Vec[] {
  const out: Vec[] = [];
  for (let i = i0; i < i1; i++) out.push(Float64Array.from({ length: D }, (_, c) => x[i * D + c]!));
  return out;
}

/** Mean of the rows picked by `idx`. */
function meanRows(rows: Vec[], idx: number[]): Vec {
  const D = rows[0]!.length;
  const out = new Float64Array(D);
  for (const i of idx) for (let c = 0; c < D; c++) out[c] += rows[i]![c]!;
  return map(out, (t) => t / idx.length);
}

/** CLIP patch grid side for ViT-L/14-336 (576 = 24×24 patches). */
const V6_SIDE = 24;

/**
 * v6.0 grid pooling of the tower's last_hidden_state [577, D] (CLS at row 0, patches row-major after it).
 * grid −1: 576 patches then CLS; 0: CLS; 1: mean(patches) then CLS; n ≥ 2: s = ⌊24/n⌋, s×s average pooling
 * without padding over ⌊24/s⌋² windows, row-major, then CLS.
 */
export function gridPoolV6(features: ArrayLike<number>, grid: number): Vec[] {
  const P = V6_SIDE * V6_SIDE;
  const D = features.length / (P + 1);
  if (!Number.isInteger(D)) throw new Error(`gridPoolV6: ${features.length} values are not [577, D]`);
  const [cls, ...patches] = rowsOf(features, D, 0, P + 1) as [Vec, ...Vec[]];
  if (grid === -1) return [...patches, cls];
  if (grid === 0) return [cls];
  if (grid === 1) return [meanRows(patches, patches.map((_, i) => i)), cls];
  if (!(grid >= 2 && Number.isInteger(grid))) throw new Error(`gridPoolV6: bad grid ${grid}`);
  const s = Math.floor(V6_SIDE / grid);
  const side = Math.floor(V6_SIDE / s);
  const out: Vec[] = [];
  for (let oy = 0; oy < side; oy++) {
    for (let ox = 0; ox < side; ox++) {
      const idx: number[] = [];
      for (let dy = 0; dy < s; dy++) for (let dx = 0; dx < s; dx++) idx.push((oy * s + dy) * V6_SIDE + ox * s + dx);
      out.push(meanRows(patches, idx));
    }
  }
  return [...out, cls];
}

/** v6.0: rows = gridPool(features)·projWᵀ (projW = `proj.weight` [C, D], no bias), then ln0. */
export function refProjectV6(features: ArrayLike<number>, projW: Vec, grid: number, ln0: NormParams): ProjectorOutput {
  const pooled = gridPoolV6(features, grid);
  const projected = pooled.map((row) => matvec(projW, row));
  return { pooled, projected, afterLn0: projected.map((row) => layerNorm(row, ln0)) };
}

/**
 * PyTorch AdaptiveAvgPool2d of a side×side grid of rows to out×out: bin i covers [⌊i·side/out⌋, ⌈(i+1)·side/out⌉).
 */
export function adaptivePool2d(rows: Vec[], out: number): Vec[] {
  const side = Math.round(Math.sqrt(rows.length));
  if (side * side !== rows.length) throw new Error(`adaptivePool2d: ${rows.length} rows are not a square grid`);
  const bin = (i: number): [number, number] => [Math.floor((i * side) / out), Math.ceil(((i + 1) * side) / out)];
  const res: Vec[] = [];
  for (let oy = 0; oy < out; oy++) {
    const [y0, y1] = bin(oy);
    for (let ox = 0; ox < out; ox++) {
      const [x0, x1] = bin(ox);
      const idx: number[] = [];
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) idx.push(y * side + x);
      res.push(meanRows(rows, idx));
    }
  }
  return res;
}

/** v7.00 projector weights: `proj.gate.weight` [D, D], `proj.o_proj.weight` [C, D], `proj.ln_v`. */
export interface ProjectorV7Weights {
  gate: Vec;
  oProj: Vec;
  lnV: NormParams;
}

/**
 * v7.00: backbone patches [L = side², D] → AdaptiveAvgPool2d(√nTokens) → u = x⊙σ(gate·x) → z = o_proj·u →
 * LN(z; ln_v) (= `projected`) → LN(·; ln0) (= `afterLn0`).
 */
export function refProjectV7(
  features: ArrayLike<number>, rowsIn: number, nTokens: number, w: ProjectorV7Weights, ln0: NormParams,
): ProjectorOutput {
  const D = features.length / rowsIn;
  const outSide = Math.round(Math.sqrt(nTokens));
  if (!Number.isInteger(D) || outSide * outSide !== nTokens) throw new Error(`refProjectV7: bad shapes`);
  const pooled = adaptivePool2d(rowsOf(features, D, 0, rowsIn), outSide);
  const projected = pooled.map((x) => {
    const u = mul(x, map(matvec(w.gate, x), sigmoid));
    return layerNorm(matvec(w.oProj, u), w.lnV);
  });
  return { pooled, projected, afterLn0: projected.map((row) => layerNorm(row, ln0)) };
}
