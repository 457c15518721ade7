/**
 * A tiny WGSL preprocessor for type/variant defines (numbers go through `override` constants instead).
 *   #include "common"      → the text of shaders/common.wgsl (from the INCLUDES table: common, ln_row, matmul_tile,
 *                            matmul_rowgroup, wg_sum)
 *   #if NAME / #ifdef NAME, #ifndef NAME, #else, #endif  (nestable; NAME is true when defined and not false/0)
 *   Any whole-word occurrence of a define key whose value is a string is replaced by that string.
 */
import common from '../../shaders/common.wgsl?raw';
import ln_row from '../../shaders/ln_row.wgsl?raw';
import matmul_rowgroup from '../../shaders/matmul_rowgroup.wgsl?raw';
import matmul_tile from '../../shaders/matmul_tile.wgsl?raw';
import wg_sum from '../../shaders/wg_sum.wgsl?raw';

export type Defines = Record<string, string | boolean | number>;

const INCLUDES: Record<string, string> = { common, ln_row, matmul_rowgroup, matmul_tile, wg_sum };

export function preprocess(code: string, defines: Defines = {}): string {
  const out: string[] = [];
  const stack: { active: boolean; taken: boolean }[] = [];
  const isOn = (name: string) => {
    const v = defines[name];
    return v !== undefined && v !== false && v !== 0 && v !== '0';
  };
  const active = () => stack.every((s) => s.active);
  for (const line of code.split('\n')) {
    const t = line.trim();
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^#(if|ifdef)\s+(\w+)/))) {
      const on = isOn(m[2]!);
      stack.push({ active: on, taken: on });
    } else if ((m = t.match(/^#ifndef\s+(\w+)/))) {
      const on = !isOn(m[1]!);
      stack.push({ active: on, taken: on });
    } else if (t.startsWith('#else')) {
      const top = stack[stack.length - 1];
      if (!top) throw new Error('wgsl preprocess: #else without #if');
      top.active = !top.taken;
      top.taken = true;
    } else if (t.startsWith('#endif')) {
      if (!stack.pop()) throw new Error('wgsl preprocess: #endif without #if');
    } else if ((m = t.match(/^#include\s+"(\w+)"/))) {
      if (active()) {
        const inc = INCLUDES[m[1]!];
        if (inc === undefined) throw new Error(`wgsl preprocess: unknown include ${m[1]}`);
        out.push(preprocess(inc, defines));
      }
    } else if (active()) {
      out.push(line);
    }
  }
  if (stack.length) throw new Error('wgsl preprocess: unterminated #if');
  let text = out.join('\n');
  for (const [k, v] of Object.entries(defines)) {
    if (typeof v === 'string') text = text.replace(new RegExp(`\\b${k}\\b`, 'g'), v);
  }
  return text;
}
