/**
 * The npm package as published: `npm pack` (its `prepare` and `prepack` scripts build dist/node and dist/lib) in a
 * copy of the project (so this test never rebuilds the dist/ other tests use), the tarball installed into a fresh
 * folder (`npm install <tgz> --prefer-offline`: dependencies come from the npm cache), then, in that folder:
 * - `import('visualrwkv-web')` in plain Node: createVisualRwkv and the typed errors exist, nothing touches a DOM;
 *   `import('visualrwkv-web/widget')` also imports (the element is simply not registered without a DOM);
 * - createVisualRwkv({ model: <fixture .pth> }) loads on Dawn and generates text-only tokens; with the fixture
 *   encoder (onnxruntime-web's Node build, from the installed dependency) the greedy answer about the fixture image
 *   equals the official ids; a bad checkpoint rejects with the package's WeightsFormatError;
 * - a TypeScript consumer using both entry points type-checks against the shipped .d.ts (skipLibCheck off).
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJson } from '../helpers/fixtures';
import { ROOT } from '../helpers/server';

const run = promisify(execFile);

/** npm pack (two vite builds + tsc) and npm install (~270 MB of dependencies from the cache) on 2 cores. */
const PACK_TIMEOUT_MS = 240_000;
const INSTALL_TIMEOUT_MS = 240_000;
/** Loading the tiny fixtures on Dawn/SwiftShader and generating ≤ 8 tokens twice. */
const RUN_TIMEOUT_MS = 180_000;

/** Top-level entries of the project that are not part of a source checkout (or not needed to pack). */
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', 'tests', 'tmp', 'test-results', '.ci']);

const MODEL = join(ROOT, 'tests/fixtures/models/rwkv6_vocab65536/visualrwkv.pth');
const ENCODER = join(ROOT, 'tests/fixtures/vision/tiny_clip_vit_shared.onnx');
const IMAGE = join(ROOT, 'tests/fixtures/vision/image_0.png');
const CASE = 'cases/rwkv6_vocab65536/e2e_image_0_middle_bidi.json';

interface PackResult {
  filename: string;
  files: { path: string; size: number }[];
}

/** The consumer script run in the fresh folder: JSON on stdout. */
const CONSUMER = `
import { readFileSync } from 'node:fs';
const [model, encoder, image, question] = process.argv.slice(2);
const out = {};
const m = await import('visualrwkv-web');
out.exports = Object.keys(m).sort();
out.createType = typeof m.createVisualRwkv;
out.errors = ['VisualRwkvError', 'WeightsFormatError', 'UnsafePickleError', 'ShapeError', 'UnsupportedDtypeError',
  'WebGPUUnavailableError', 'DeviceLostError', 'InvalidArgumentError', 'EncoderLoadError']
  .filter((n) => typeof m[n] === 'function' && (n === 'VisualRwkvError' || m[n].prototype instanceof m.VisualRwkvError));
out.domAfterImport = [typeof globalThis.window, typeof globalThis.document];
const w = await import('visualrwkv-web/widget');
out.widget = [typeof w.VisualRwkvChat, typeof w.defineVisualRwkvChat, w.TAG];
out.resolved = import.meta.resolve('visualrwkv-web');

const t0 = performance.now();
const vr = await m.createVisualRwkv({ model });
out.info = vr.info;
out.text = '';
out.ids = [];
for await (const c of vr.chat({ text: 'What is a recurrent network?', maxTokens: 5, sampler: { temperature: 0 } })) {
  out.text += c.text;
  out.ids.push(c.id);
  out.done = c.done;
}
await vr.dispose();
out.textMs = Math.round(performance.now() - t0);

const vi = await m.createVisualRwkv({ model, encoder });
out.imageIds = [];
for await (const c of vi.chat({ text: question, image: readFileSync(image), maxTokens: 8, sampler: { temperature: 0 } })) out.imageIds.push(c.id);
await vi.dispose();

try {
  await m.createVisualRwkv({ model: new URL('./package.json', import.meta.url).pathname });
  out.badModel = 'no error';
} catch (e) {
  out.badModel = [e?.name, e instanceof m.WeightsFormatError, e instanceof m.VisualRwkvError];
}
console.log(JSON.stringify(out));
`;

/** A TypeScript consumer of both entry points (type-checked only). */
const CONSUMER_TS = `
import { createVisualRwkv, WeightsFormatError, VisualRwkvError, type TokenChunk, type VisualRwkv, type EngineInfo } from 'visualrwkv-web';
import { VisualRwkvChat, defineVisualRwkvChat, type DoneDetail, type VisualRwkvChatEventMap } from 'visualrwkv-web/widget';

export async function ask(model: string, image: Blob): Promise<string> {
  const vr: VisualRwkv = await createVisualRwkv({ model, onProgress: (p) => console.log(p.stage, p.loaded / p.total) });
  const info: EngineInfo = vr.info;
  let text = '';
  for await (const c of vr.chat({ text: 'What is in the image?', image, sampler: { temperature: 0 }, maxTokens: 16 })) {
    const chunk: TokenChunk = c;
    text += chunk.text;
  }
  await vr.dispose();
  return \`\${info.arch}: \${text}\`;
}

export function isTyped(e: unknown): boolean {
  return e instanceof WeightsFormatError || e instanceof VisualRwkvError;
}

export function embed(): VisualRwkvChat {
  defineVisualRwkvChat();
  const el = document.createElement('visual-rwkv-chat');
  el.model = '/models/visualrwkv.pth';
  el.addEventListener('done', (e) => {
    const d: DoneDetail = (e as VisualRwkvChatEventMap['done']).detail;
    console.log(d.reason, d.text, d.tokens);
  });
  return el;
}
`;

describe('npm pack → install into a fresh folder → use', () => {
  let work = '';
  let tarball = '';
  let pack: PackResult;
  let app = '';

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'visualrwkv-pack-'));
    const stage = join(work, 'stage');
    mkdirSync(stage);
    for (const name of readdirSync(ROOT)) {
      if (!NOT_COPIED.has(name)) cpSync(join(ROOT, name), join(stage, name), { recursive: true });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir');
    const env = { ...process.env, NODE_ENV: 'production' };
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: stage, env, timeout: PACK_TIMEOUT_MS, maxBuffer: 64 << 20 });
    // Build scripts may print before npm's JSON: take the JSON array at the end.
    pack = (JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1)) as PackResult[])[0]!;
    tarball = join(work, pack.filename);

    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: app,
      env: { ...process.env, NODE_ENV: 'production' },
      timeout: INSTALL_TIMEOUT_MS,
      maxBuffer: 64 << 20,
    });
  }, PACK_TIMEOUT_MS + INSTALL_TIMEOUT_MS);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('packs the library, its types, the ORT assets and the CLI, and nothing else', () => {
    const paths = pack.files.map((f) => f.path);
    console.log(`[pack] ${pack.filename}: ${paths.length} files, ${(pack.files.reduce((s, f) => s + f.size, 0) / 1e6).toFixed(1)} MB unpacked`);
    for (const p of ['package.json', 'dist/lib/index.js', 'dist/lib/widget.js', 'dist/lib/types/index.d.ts', 'dist/lib/types/widget/index.d.ts', 'dist/node/cli.js', 'bin/visualrwkv.mjs', 'examples/embed.html']) {
      expect(paths).toContain(p);
    }
    expect(paths.some((p) => /^dist\/lib\/assets\/ort-wasm-simd-threaded\.jsep-[\w-]+\.wasm$/.test(p))).toBe(true);
    expect(paths.some((p) => /^dist\/lib\/assets\/worker-[\w-]+\.js$/.test(p))).toBe(true);
    expect(paths.filter((p) => /^(src|tests|shaders|node_modules|dist\/app)\//.test(p) || p.endsWith('.map'))).toEqual([]);
    // No inlined 38 MB base64 wasm: every JS file stays small.
    for (const f of pack.files) if (f.path.endsWith('.js')) expect(f.size, f.path).toBeLessThan(2e6);
    expect(existsSync(join(app, 'node_modules/visualrwkv-web/dist/lib/index.js'))).toBe(true);
  });

  it('imports in Node without a DOM, loads the fixture on Dawn and generates; typed errors; image answer equals the official ids', async () => {
    writeFileSync(join(app, 'use.mjs'), CONSUMER);
    const golden = readJson<{ prompt: { question: string }; gen_ids: number[] }>(CASE);
    const { stdout } = await run(process.execPath, ['use.mjs', MODEL, ENCODER, IMAGE, golden.prompt.question], {
      cwd: app,
      env: process.env,
      timeout: RUN_TIMEOUT_MS,
      maxBuffer: 16 << 20,
    });
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!);
    console.log(`[pack] text-only in ${out.textMs} ms: ${JSON.stringify(out.text)} ${JSON.stringify(out.ids)}; image ids ${JSON.stringify(out.imageIds)}`);
    expect(out.resolved).toContain('/app/node_modules/visualrwkv-web/dist/lib/index.js');
    expect(out.createType).toBe('function');
    expect(out.exports).toEqual(expect.arrayContaining(['createVisualRwkv', 'VisualRwkvError', 'WeightsFormatError', 'APP_DEFAULTS', 'GREEDY']));
    expect(out.errors).toHaveLength(9);
    expect(out.domAfterImport).toEqual(['undefined', 'undefined']);
    expect(out.widget).toEqual(['function', 'function', 'visual-rwkv-chat']);
    expect(out.info).toMatchObject({ arch: 'rwkv6', L: 2, C: 32, V: 65536, hasEncoder: false });
    expect(out.ids.length).toBeGreaterThanOrEqual(1);
    expect(out.ids.length).toBeLessThanOrEqual(5);
    expect(['stop', 'length']).toContain(out.done);
    expect(out.imageIds).toEqual(golden.gen_ids);
    expect(out.badModel).toEqual(['WeightsFormatError', true, true]);
  });

  it('type-checks a TypeScript consumer of both entry points against the shipped declarations', async () => {
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022', 'DOM', 'DOM.Iterable'],
          types: [],
          strict: true,
          skipLibCheck: false,
          noEmit: true,
        },
        files: ['consumer.ts'],
      }),
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const res = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, timeout: RUN_TIMEOUT_MS }).catch((e: { stdout?: string; code?: number }) => e);
    expect((res as { stdout?: string }).stdout ?? '').toBe('');
    expect((res as { code?: number }).code ?? 0).toBe(0);
  });
});
