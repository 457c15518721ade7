/**
 * ImageEncoder in Node (onnxruntime-web, WASM EP): the tiny CLIP tower of the fixtures against its golden
 * `last_hidden_state`, the interface checks (names, shapes, dtypes) with load errors, fp16 in/out conversion on small
 * hand-built ONNX graphs, and the f32 → f16 rounding.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ImageEncoder, f32ToF16, type EncoderProgress } from '../../src/vision/encoder';
import { EncoderLoadError, ShapeError, VisualRwkvError } from '../../src/errors';
import { f16ToF32 } from '../../src/weights/dtype';
import { fixturePath, tensorF32 } from '../helpers/fixtures';
import { expectClose } from '../helpers/compare';

/** MANIFEST §6: an independent f32 runtime vs the f64 goldens (onnxruntime-web measured 4.3e-6). */
const TOWER_TOL = 1e-4;
const TOWER = 'vision/tiny_clip_vit_shared.onnx';
const towerBytes = () => new Uint8Array(readFileSync(fixturePath(TOWER)));

describe('ImageEncoder on the tiny CLIP tower (WASM EP)', () => {
  it.each([0, 1])('image_%i: last_hidden_state matches the golden', async (k) => {
    const rel = `vision/image_${k}.clip.safetensors`;
    const progress: EncoderProgress[] = [];
    const enc = await ImageEncoder.create(towerBytes(), { onProgress: (p) => progress.push(p) });
    try {
      expect(enc.executionProviders).toEqual(['wasm']);
      expect(enc.inputType).toBe('float32');
      expect(enc.imageSize).toBe(336);
      const out = await enc.encode(tensorF32(rel, 'pixel_values'));
      expect(out.tokens).toBe(577);
      expect(out.dim).toBe(32);
      const r = expectClose(out.hidden, tensorF32(rel, 'last_hidden_state'), TOWER_TOL, `image_${k} last_hidden_state`);
      console.log(`[encoder] image_${k}: max |Δ| = ${r.maxAbs.toExponential(2)}`);
      const last = progress.at(-1)!;
      expect(last.stage).toBe('encoder');
      expect(last.loaded).toBe(last.total);
      expect(last.total).toBe(towerBytes().byteLength);
    } finally {
      await enc.dispose();
    }
  });

  it('loads from a file path (Node) and serialises concurrent encodes', async () => {
    const enc = await ImageEncoder.create(fixturePath(TOWER));
    try {
      const [a, b] = await Promise.all([0, 1].map((k) => enc.encode(tensorF32(`vision/image_${k}.clip.safetensors`, 'pixel_values'))));
      expectClose(a!.hidden, tensorF32('vision/image_0.clip.safetensors', 'last_hidden_state'), TOWER_TOL, 'concurrent image_0');
      expectClose(b!.hidden, tensorF32('vision/image_1.clip.safetensors', 'last_hidden_state'), TOWER_TOL, 'concurrent image_1');
    } finally {
      await enc.dispose();
    }
  });

  it('rejects a wrong pixel_values size with ShapeError, and encode after dispose', async () => {
    const enc = await ImageEncoder.create(towerBytes());
    await expect(enc.encode(new Float32Array(3 * 224 * 224))).rejects.toBeInstanceOf(ShapeError);
    await expect(enc.encode(new Float32Array(3 * 336 * 336 + 1))).rejects.toBeInstanceOf(ShapeError);
    await expect(enc.encode(new Float64Array(3 * 336 * 336) as unknown as Float32Array)).rejects.toBeInstanceOf(ShapeError);
    await enc.dispose();
    await enc.dispose(); // idempotent
    const err = await enc.encode(new Float32Array(3 * 336 * 336)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VisualRwkvError);
    expect(String(err)).toMatch(/disposed/);
  });

  it('corrupt or truncated model bytes → EncoderLoadError', async () => {
    const bytes = towerBytes();
    const garbage = new Uint8Array(4096).map((_, i) => (i * 2654435761) >>> 24);
    for (const [what, b] of [
      ['garbage', garbage],
      ['truncated', bytes.subarray(0, bytes.byteLength >> 1)],
      ['empty', new Uint8Array(0)],
    ] as const) {
      const err = await ImageEncoder.create(b).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(EncoderLoadError);
      expect((err as Error).name).toBe('EncoderLoadError');
    }
    await expect(ImageEncoder.create(fixturePath('vision/no_such_model.onnx'))).rejects.toBeInstanceOf(EncoderLoadError);
    await expect(ImageEncoder.create(bytes, { executionProviders: [] })).rejects.toBeInstanceOf(EncoderLoadError);
  });

  it('a model without pixel_values or without last_hidden_state → EncoderLoadError naming the names', async () => {
    // Same-length renames inside the protobuf keep the graph valid but change its interface.
    const badIn = await ImageEncoder.create(renameAll(towerBytes(), 'pixel_values', 'pixel_valuez')).catch((e: unknown) => e);
    expect(badIn).toBeInstanceOf(EncoderLoadError);
    expect(String(badIn)).toMatch(/pixel_valuez/);
    const badOut = await ImageEncoder.create(renameAll(towerBytes(), 'last_hidden_state', 'last_hidden_statf')).catch((e: unknown) => e);
    expect(badOut).toBeInstanceOf(EncoderLoadError);
    expect(String(badOut)).toMatch(/last_hidden_statf/);
    const twoInputs = await ImageEncoder.create(sliceModel({ S: 28, tokens: 5, dim: 4, extraInput: true })).catch((e: unknown) => e);
    expect(twoInputs).toBeInstanceOf(EncoderLoadError);
    const wrongChannels = await ImageEncoder.create(sliceModel({ S: 28, tokens: 5, dim: 4, channels: 1 })).catch((e: unknown) => e);
    expect(wrongChannels).toBeInstanceOf(EncoderLoadError);
  });
});

describe('ImageEncoder dtype handling (hand-built ONNX graphs)', () => {
  const S = 28;
  const tokens = 5;
  const dim = 4;
  const pixels = Float32Array.from({ length: 3 * S * S }, (_, i) => Math.sin(i * 0.37) * 3 + 1e-3 * i);
  const firstRows = pixels.subarray(0, tokens * dim);
  const viaF16 = Float32Array.from(firstRows, (v) => f16ToF32(f32ToF16(v)));

  it.each([
    ['float32', 'float32', firstRows],
    ['float16', 'float16', viaF16],
    ['float32', 'float16', viaF16],
    ['float16', 'float32', viaF16],
  ] as const)('input %s → output %s', async (inType, outType, want) => {
    const enc = await ImageEncoder.create(sliceModel({ S, tokens, dim, inType, outType }));
    try {
      expect(enc.inputType).toBe(inType);
      expect(enc.imageSize).toBe(S); // fixed H/W in the graph win over the 336 default
      const out = await enc.encode(pixels);
      expect([out.tokens, out.dim]).toEqual([tokens, dim]);
      expect(out.hidden).toBeInstanceOf(Float32Array);
      expectClose(out.hidden, want, 0, `${inType} → ${outType}`);
    } finally {
      await enc.dispose();
    }
  });

  it('symbolic batch/height/width default to 336', async () => {
    const enc = await ImageEncoder.create(sliceModel({ S: 336, tokens: 577, dim: 8, symbolic: true, inType: 'float16' }));
    try {
      expect(enc.imageSize).toBe(336);
      const px = Float32Array.from({ length: 3 * 336 * 336 }, (_, i) => (i % 1000) / 250 - 2);
      const out = await enc.encode(px);
      expect([out.tokens, out.dim]).toEqual([577, 8]);
      expectClose(out.hidden, Float32Array.from(px.subarray(0, 577 * 8), (v) => f16ToF32(f32ToF16(v))), 0, 'symbolic f16');
    } finally {
      await enc.dispose();
    }
  });
});

describe('f32ToF16', () => {
  it('round-trips every finite f16 value and rounds to nearest even', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16ToF32(h);
      if (Number.isNaN(v)) expect(Number.isNaN(f16ToF32(f32ToF16(v)))).toBe(true);
      else if (f32ToF16(v) !== h) throw new Error(`f16 ${h.toString(16)} (${v}) → ${f32ToF16(v).toString(16)}`);
    }
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds up past the largest finite value
    expect(f32ToF16(-1e9)).toBe(0xfc00);
    expect(f32ToF16(2 ** -25)).toBe(0); // exactly half the smallest subnormal: tie → even (0)
    expect(f32ToF16(2 ** -25 * 1.0001)).toBe(1);
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400); // subnormal rounding carries into the smallest normal
    expect(f32ToF16(-0)).toBe(0x8000);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** Replace every occurrence of `from` by the same-length `to` in raw bytes. */
function renameAll(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const a = new TextEncoder().encode(from);
  const b = new TextEncoder().encode(to);
  if (a.length !== b.length) throw new Error('renameAll needs same-length names');
  const out = bytes.slice();
  let hits = 0;
  for (let i = 0; i + a.length <= out.length; i++) {
    let ok = true;
    for (let j = 0; j < a.length && ok; j++) ok = out[i + j] === a[j];
    if (ok) {
      out.set(b, i);
      hits++;
    }
  }
  if (hits === 0) throw new Error(`'${from}' not found in the model`);
  return out;
}

/** Minimal protobuf writer (just what ONNX ModelProto needs). */
class Pb {
  private bytes: number[] = [];
  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
  }
  int(field: number, v: number): this {
    this.varint(field << 3);
    this.varint(v);
    return this;
  }
  bytesField(field: number, data: Uint8Array): this {
    this.varint((field << 3) | 2);
    this.varint(data.length);
    for (const x of data) this.bytes.push(x);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }
  msg(field: number, m: Pb): this {
    return this.bytesField(field, m.finish());
  }
  finish(): Uint8Array {
    return new Uint8Array(this.bytes);
  }
}

const ONNX_TYPE = { float32: 1, int64: 7, float16: 10 } as const;

function valueInfo(name: string, type: keyof typeof ONNX_TYPE, dims: (number | string)[]): Pb {
  const shape = new Pb();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Pb().int(1, d) : new Pb().str(2, d));
  return new Pb().str(1, name).msg(2, new Pb().msg(1, new Pb().int(1, ONNX_TYPE[type]).msg(2, shape)));
}

function int64Init(name: string, values: number[]): Pb {
  const raw = new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);
  return new Pb().int(1, values.length).int(2, ONNX_TYPE.int64).str(8, name).bytesField(9, raw);
}

function node(op: string, inputs: string[], outputs: string[], attrs: Pb[] = []): Pb {
  const n = new Pb();
  for (const i of inputs) n.str(1, i);
  for (const o of outputs) n.str(2, o);
  n.str(3, `${op}_${outputs[0]}`).str(4, op);
  for (const a of attrs) n.msg(5, a);
  return n;
}

/**
 * A stand-in tower: last_hidden_state = reshape(flatten(pixel_values)[:tokens·dim], [1, tokens, dim]), with a Cast
 * when the output type differs from the input type. Exact in any dtype, so conversions can be checked bit for bit.
 */
function sliceModel(o: {
  S: number;
  tokens: number;
  dim: number;
  inType?: 'float32' | 'float16';
  outType?: 'float32' | 'float16';
  symbolic?: boolean;
  extraInput?: boolean;
  channels?: number;
}): Uint8Array {
  const inType = o.inType ?? 'float32';
  const outType = o.outType ?? inType;
  const g = new Pb();
  g.msg(1, node('Reshape', ['pixel_values', 'flat_shape'], ['flat']));
  g.msg(1, node('Slice', ['flat', 'starts', 'ends', 'axes'], ['head']));
  const last = outType === inType ? 'last_hidden_state' : 'pre_cast';
  g.msg(1, node('Reshape', ['head', 'out_shape'], [last]));
  if (last !== 'last_hidden_state') {
    const to = new Pb().str(1, 'to').int(3, ONNX_TYPE[outType]).int(20, 2 /* INT */);
    g.msg(1, node('Cast', [last], ['last_hidden_state'], [to]));
  }
  g.str(2, 'slice_tower');
  g.msg(5, int64Init('flat_shape', [1, -1]));
  g.msg(5, int64Init('starts', [0]));
  g.msg(5, int64Init('ends', [o.tokens * o.dim]));
  g.msg(5, int64Init('axes', [1]));
  g.msg(5, int64Init('out_shape', [1, o.tokens, o.dim]));
  const c = o.channels ?? 3;
  g.msg(11, valueInfo('pixel_values', inType, o.symbolic ? ['batch_size', 'num_channels', 'height', 'width'] : [1, c, o.S, o.S]));
  if (o.extraInput) g.msg(11, valueInfo('attention_mask', 'float32', [1]));
  g.msg(12, valueInfo('last_hidden_state', outType, o.symbolic ? ['batch_size', 'sequence_length', o.dim] : [1, o.tokens, o.dim]));
  return new Pb()
    .int(1, 8) // ir_version
    .str(2, 'visualrwkv-test')
    .msg(7, g)
    .msg(8, new Pb().str(1, '').int(2, 17))
    .finish();
}
