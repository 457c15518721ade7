/**
 * The Node CLI (`npx visualrwkv ...`): the same kernels through Dawn.
 *   run        greedy generation from the zero state → safetensors with prefill_logits_last, gen_ids, gen_logits
 *   tokenize   --text-file <f> | --jsonl <f>
 *   detokenize --ids <csv>
 * Errors: one line naming the problem and a non-zero exit code; --debug prints the stack.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs, Args, parseIds } from './args';
import { InvalidArgumentError, VisualRwkvError, ShapeError } from '../errors';
import { nodeFileSource } from '../weights/node-source';
import { urlSource } from '../weights/source';
import { openCheckpoint } from '../weights/checkpoint';
import { parseSafetensors, writeSafetensors } from '../weights/safetensors';
import { toF32 } from '../weights/dtype';
import { createNodeGpu, releaseNodeGpu } from '../engine/node';
import { adapterName } from '../engine/gpu';
import { RwkvModel } from '../model/model';
import { spliceImageAuto, bidirectionalSpan, generateGreedy } from '../model/generate';
import { loadDefaultTokenizer } from '../text/tokenizer';
import { ProgressBar } from './progress';

const USAGE = `usage:
  visualrwkv run --model <.pth|.safetensors> --ids <csv; -200 = image> [--image-rows <file.safetensors>[:<tensor>]]
                 [--bidirectional on|off] [--max-tokens N] [--stop-id ID]... --out <result.safetensors>
  visualrwkv chat --model <file> (--encoder <file.onnx> --image <png|jpg> | --image-features <f.safetensors>[:<t>]
                 | --image-rows <f.safetensors>[:<t>]) --question "<text>" [--tokens-per-image N]
                 [--position first|middle|last] [--bidirectional on|off] [--grid-size N]
                 [--greedy | --temperature T --top-p P] [--max-tokens N] [--seed S] [--out result.safetensors]
  visualrwkv tokenize --text-file <file> | --jsonl <file>
  visualrwkv detokenize --ids <csv>
  add --debug to any command for stack traces`;

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    const p = parseArgs(argv, ['debug', 'help', 'quiet', 'greedy']);
    if (p.flags.has('help') || !p.command) {
      process.stdout.write(USAGE + '\n');
      return p.command || p.flags.has('help') ? 0 : 2;
    }
    switch (p.command) {
      case 'run':
        await cmdRun(new Args(p, ['model', 'ids', 'image-rows', 'bidirectional', 'max-tokens', 'stop-id', 'out']), p.flags.has('quiet'));
        return 0;
      case 'chat':
        await cmdChat(
          new Args(p, ['model', 'encoder', 'image', 'image-features', 'image-rows', 'tokens-per-image', 'question', 'position', 'bidirectional', 'grid-size', 'temperature', 'top-p', 'max-tokens', 'seed', 'out']),
          p.flags.has('greedy'),
          p.flags.has('quiet'),
        );
        return 0;
      case 'tokenize':
        await cmdTokenize(new Args(p, ['text-file', 'jsonl']));
        return 0;
      case 'detokenize':
        await cmdDetokenize(new Args(p, ['ids']));
        return 0;
      default:
        throw new InvalidArgumentError(`unknown command '${p.command}' (run, tokenize, detokenize)`);
    }
  } catch (e) {
    const err = e as Error;
    if (debug) process.stderr.write((err.stack ?? String(err)) + '\n');
    else process.stderr.write(`visualrwkv: ${describe(err)}\n`);
    return err instanceof InvalidArgumentError ? 2 : 1;
  }
}

function describe(err: Error): string {
  const nodeErr = err as NodeJS.ErrnoException;
  if (nodeErr.code === 'ENOENT') return `file not found: ${nodeErr.path ?? err.message}`;
  const name = err instanceof VisualRwkvError ? `${err.name}: ` : '';
  return (name + err.message).split('\n')[0]!;
}

/** A 2-D F32/BF16/F16 tensor from `file.safetensors[:name]` (default: the only tensor, else `fallback`). */
async function readMatrix(spec: string, fallback: string): Promise<{ data: Float32Array; rows: number; dim: number }> {
  const colon = spec.lastIndexOf(':');
  const [file, tensor] = colon > 0 ? [spec.slice(0, colon), spec.slice(colon + 1)] : [spec, undefined];
  const tensors = parseSafetensors(new Uint8Array(await readFile(file)), file);
  const t = tensor ? tensors.get(tensor) : tensors.size === 1 ? [...tensors.values()][0] : tensors.get(fallback);
  if (!t) throw new InvalidArgumentError(`${file}: no tensor ${tensor ?? fallback} (has: ${[...tensors.keys()].join(', ')})`);
  const shape = t.shape.length === 3 && t.shape[0] === 1 ? t.shape.slice(1) : t.shape;
  if (shape.length !== 2) throw new ShapeError(`${file}: features have shape [${t.shape}], expected [rows, dim]`);
  return { data: toF32(t), rows: shape[0]!, dim: shape[1]! };
}

async function readImageRows(spec: string, C: number): Promise<Float32Array[]> {
  const colon = spec.lastIndexOf(':');
  const [file, tensor] = colon > 0 ? [spec.slice(0, colon), spec.slice(colon + 1)] : [spec, undefined];
  const tensors = parseSafetensors(new Uint8Array(await readFile(file)), file);
  let t = tensor ? tensors.get(tensor) : tensors.size === 1 ? [...tensors.values()][0] : tensors.get('image_rows');
  if (!t) throw new InvalidArgumentError(`${file}: no tensor ${tensor ?? 'image_rows'} (has: ${[...tensors.keys()].join(', ')})`);
  if (t.shape.length !== 2 || t.shape[1] !== C) throw new ShapeError(`${file}: image rows have shape [${t.shape}], expected [n, ${C}]`);
  const all = toF32(t);
  return Array.from({ length: t.shape[0]! }, (_, i) => all.subarray(i * C, (i + 1) * C));
}

async function cmdRun(a: Args, quiet: boolean): Promise<void> {
  const modelPath = a.need('model');
  const ids = parseIds(a.need('ids'));
  const out = a.need('out');
  const maxTokens = a.int('max-tokens', 16)!;
  if (maxTokens < 1) throw new InvalidArgumentError('--max-tokens must be at least 1');
  const stopIds = a.all('stop-id').map((s) => parseIds(s, '--stop-id')).flat();
  const bidiFlag = a.onOff('bidirectional');
  // a path, or an http(s) URL read with range requests (the loading bar then shows the download)
  const src = /^https?:/i.test(modelPath) ? await urlSource(modelPath) : await nodeFileSource(modelPath);
  let gpu: Awaited<ReturnType<typeof createNodeGpu>> | null = null;
  try {
    const ckpt = await openCheckpoint(src);
    gpu = await createNodeGpu();
    const bar = quiet ? null : new ProgressBar(`loading ${ckpt.name} on ${adapterName(gpu)}`);
    const model = await RwkvModel.load(gpu, ckpt, { onProgress: (p) => bar?.update(p.loaded, p.total) });
    bar?.done();
    const rowsSpec = a.get('image-rows');
    const rows = rowsSpec ? await readImageRows(rowsSpec, model.cfg.C) : null;
    const spliced = spliceImageAuto(ids, rows);
    // bidirectional scan: default on for RWKV-6 with a v6 placeholder (the v6.0 release), off otherwise
    const bidirectional = spliced.image && (bidiFlag ?? (model.cfg.arch === 'rwkv6' && ids.includes(-200))) ? bidirectionalSpan(spliced.image) : undefined;
    const res = await generateGreedy(model, spliced.inputs, { bidirectional, maxTokens, stopIds });
    const V = model.cfg.V;
    const genLogits = new Float32Array(res.logits.length * V);
    res.logits.forEach((l, i) => genLogits.set(l, i * V));
    await writeFile(
      out,
      writeSafetensors({
        prefill_logits_last: { dtype: 'F32', shape: [V], data: res.prefillLogits },
        gen_ids: { dtype: 'I32', shape: [res.ids.length], data: new Int32Array(res.ids) },
        gen_logits: { dtype: 'F32', shape: [res.ids.length, V], data: genLogits },
      }),
    );
    if (!quiet) process.stderr.write(`generated ${res.ids.length} ids: ${res.ids.join(',')} → ${out}\n`);
    model.destroy();
  } finally {
    await src.close?.();
    if (gpu) releaseNodeGpu(gpu);
  }
}

async function cmdChat(a: Args, greedy: boolean, quiet: boolean): Promise<void> {
  const { VisualRwkvEngine } = await import('../worker/api');
  const { GREEDY } = await import('../text/sampler');
  const position = a.get('position') ?? 'middle';
  if (!['first', 'middle', 'last'].includes(position)) throw new InvalidArgumentError(`--position must be first, middle or last, got '${position}'`);
  const num = (name: string): number | undefined => {
    const v = a.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`--${name} must be a number, got '${v}'`);
    return n;
  };
  const temperature = num('temperature');
  const topP = num('top-p');
  if (greedy && (temperature !== undefined || topP !== undefined)) throw new InvalidArgumentError('--greedy excludes --temperature/--top-p');
  const maxTokens = a.int('max-tokens', 512)!;
  const question = a.need('question');
  const imagePath = a.get('image');
  const featSpec = a.get('image-features');
  const rowsSpec = a.get('image-rows');
  if ([imagePath, featSpec, rowsSpec].filter((x) => x !== undefined).length > 1) {
    throw new InvalidArgumentError('give at most one of --image, --image-features, --image-rows');
  }
  if (imagePath !== undefined && a.get('encoder') === undefined) throw new InvalidArgumentError('--image needs --encoder <file.onnx>');
  const out = a.get('out');
  const image = imagePath !== undefined ? new Uint8Array(await readFile(imagePath)) : undefined;
  const bar = quiet ? null : new ProgressBar('loading');
  const engine = await VisualRwkvEngine.create({
    model: a.need('model'),
    encoder: imagePath !== undefined ? a.need('encoder') : undefined,
    encoderProviders: ['wasm'],
    tokensPerImage: a.int('tokens-per-image'),
    onProgress: (p) => p.stage === 'weights' && bar?.update(p.loaded, p.total),
  });
  const imageFeatures = featSpec !== undefined ? await readMatrix(featSpec, 'image_features') : undefined;
  const imageRows = rowsSpec !== undefined ? await readImageRows(rowsSpec, engine.model.cfg.C) : undefined;
  bar?.done();
  try {
    const sampler = greedy ? { ...GREEDY } : { ...(temperature !== undefined ? { temperature } : {}), ...(topP !== undefined ? { topP } : {}) };
    const ids: number[] = [];
    const logits: Float32Array[] = [];
    for await (const c of engine.chat({
      text: question, image, imageFeatures, imageRows, position: position as 'first' | 'middle' | 'last', bidirectional: a.onOff('bidirectional'),
      gridSize: a.int('grid-size'), sampler, maxTokens, seed: a.int('seed'), recordLogits: !!out,
    })) {
      if (c.id >= 0) ids.push(c.id);
      if (c.logits) logits.push(c.logits);
      process.stdout.write(c.text);
      if (c.done && !quiet) {
        process.stderr.write(`\n[${c.done}: ${c.stats.tokens} tokens, ${c.stats.tokensPerSecond.toFixed(1)} tok/s, first token after ${c.stats.timeToFirstTokenMs.toFixed(0)} ms, ${c.stats.prefillRows} prefill rows]\n`);
      }
    }
    process.stdout.write('\n');
    if (out) {
      const V = engine.model.cfg.V;
      const all = new Float32Array(logits.length * V);
      logits.forEach((l, i) => all.set(l, i * V));
      await writeFile(out, writeSafetensors({
        gen_ids: { dtype: 'I32', shape: [ids.length], data: new Int32Array(ids) },
        gen_logits: { dtype: 'F32', shape: [logits.length, V], data: all },
      }));
    }
  } finally {
    engine.dispose();
    releaseNodeGpu(engine.gpu);
  }
}

async function cmdTokenize(a: Args): Promise<void> {
  const tok = await loadDefaultTokenizer();
  const textFile = a.get('text-file');
  const jsonl = a.get('jsonl');
  if ((textFile === undefined) === (jsonl === undefined)) throw new InvalidArgumentError('tokenize needs exactly one of --text-file or --jsonl');
  if (textFile !== undefined) {
    const text = await readFile(textFile, 'utf8');
    process.stdout.write(JSON.stringify(tok.encode(text)) + '\n');
    return;
  }
  const lines = (await readFile(jsonl!, 'utf8')).split('\n');
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let s: unknown;
    try {
      s = JSON.parse(line);
    } catch {
      throw new InvalidArgumentError(`${jsonl}:${i + 1}: not valid JSON`);
    }
    if (typeof s !== 'string') throw new InvalidArgumentError(`${jsonl}:${i + 1}: expected a JSON string`);
    out.push(JSON.stringify(tok.encode(s)));
  });
  process.stdout.write(out.map((l) => l + '\n').join(''));
}

async function cmdDetokenize(a: Args): Promise<void> {
  const tok = await loadDefaultTokenizer();
  const ids = parseIds(a.need('ids'));
  process.stdout.write(tok.decode(ids));
}
