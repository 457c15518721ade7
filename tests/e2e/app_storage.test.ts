/**
 * The chat page's downloads, model store and GPU-ready copies (built app, headless Chromium, WebGPU on SwiftShader):
 * - `?model=<url>&encoder=<url>` downloads both into the store (OPFS), loads them from there and keeps a GPU-ready
 *   copy of the `.pth`; the "Stored models" panel lists the three files with sizes; a reload loads the GPU-ready
 *   copy (#engine data-source="gpu-ready", "Loaded the GPU-ready copy") without fetching the model or the encoder
 *   again, and answers about the fixture image exactly as the reference; deleting the copy in the panel makes the
 *   next load use the original again (and write a new copy).
 * - A download from another origin that breaks halfway keeps what arrived (the panel shows the partial file) and
 *   Load resumes it with `Range: bytes=<kept>-`. A stalled one shows bytes and percent in the weights bar and can be
 *   paused (Pause download), then resumed the same way.
 * - A catalogue entry (its Hugging Face URL answered by a route serving the fixture) goes through the same store.
 * - A storage quota too small: a clear StorageQuotaError message, nothing stored.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDefaultTokenizer } from '../../src/text/tokenizer';
import { CATALOG } from '../../src/storage/catalog';
import { launchBrowser, openPage } from '../helpers/browser';
import { readJson } from '../helpers/fixtures';
import { ROOT, startServer, type TestServer } from '../helpers/server';

/** Engine start in Chromium on SwiftShader: worker, device, pipeline compiles, weights, ORT WASM. */
const LOAD_TIMEOUT_MS = 180_000;
/** One reply of ≤ 8 tokens (image encode + 611-row prefill included) on SwiftShader. */
const REPLY_TIMEOUT_MS = 120_000;

const CASE = 'cases/rwkv6_vocab65536/e2e_image_0_middle_bidi.json';
const IMAGE = join(ROOT, 'tests/fixtures/vision/image_0.png');
const MODEL_FILE = join(ROOT, 'tests/fixtures/models/rwkv6_vocab65536/visualrwkv.pth');
const MODEL_URL = '/fixtures/models/rwkv6_vocab65536/visualrwkv.pth';
const ENCODER_URL = '/fixtures/vision/tiny_clip_vit_shared.onnx';
const QUERY = 'temperature=0&max_tokens=8';

interface E2eCase {
  prompt: { question: string };
  gen_ids: number[];
}

async function waitLoaded(page: Page): Promise<string> {
  await page.locator('#engine[data-state="ready"], #engine[data-state="error"], #engine[data-state="unavailable"], #engine[data-state="paused"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
  return (await page.locator('#engine').getAttribute('data-state')) ?? '';
}

async function waitReady(page: Page): Promise<void> {
  const state = await waitLoaded(page);
  expect(state, (await page.locator('#engine').textContent()) ?? '').toBe('ready');
}

async function askAboutImage(page: Page, question: string): Promise<string> {
  await page.getByLabel('Image', { exact: true }).setInputFiles(IMAGE);
  await page.getByLabel('Message', { exact: true }).fill(question);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const a = page.locator('article[data-role="assistant"]').nth(0);
  await a.and(page.locator('[data-done="true"]')).waitFor({ timeout: REPLY_TIMEOUT_MS });
  expect(await a.locator('.error').allTextContents()).toEqual([]);
  return (await a.locator('.text').textContent()) ?? '';
}

/** The panel's row of a stored file (the panel is inside a <details>: open it first). */
async function row(page: Page, id: string) {
  const details = page.locator('#storage-panel');
  if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
  return page.locator(`.vr-cache tr[data-id="${id}"]`);
}

/** Model files fetched by the page since it loaded (resource timing). */
function fetchedFiles(page: Page): Promise<string[]> {
  return page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((u) => /\.(pth|onnx|safetensors)$/.test(new URL(u).pathname)));
}

/** A cross-origin server for the fixture .pth (CORS + CORP, single Range requests) that can drop a response. */
interface FileServer {
  url: string;
  dropAfter?: number;
  /** Send this many bytes of the next response, then hang until the client goes away. */
  stallAfter?: number;
  requests: { range?: string; status: number }[];
  close(): Promise<void>;
}

async function startFileServer(file: Uint8Array): Promise<FileServer> {
  const sockets = new Set<Socket>();
  const fs: FileServer = { url: '', requests: [], close: async () => undefined };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, ETag');
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
    const range = req.headers.range;
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    const start = m ? Number(m[1]) : 0;
    res.statusCode = m ? 206 : 200;
    if (m) res.setHeader('Content-Range', `bytes ${start}-${file.length - 1}/${file.length}`);
    fs.requests.push({ range, status: res.statusCode });
    res.setHeader('Content-Length', String(file.length - start));
    res.setHeader('ETag', '"fixture-v1"');
    res.setHeader('Cache-Control', 'no-store');
    const body = Buffer.from(file.subarray(start));
    const cut = fs.dropAfter ?? fs.stallAfter;
    if (cut !== undefined && cut < body.length) {
      const stall = fs.stallAfter !== undefined;
      fs.dropAfter = fs.stallAfter = undefined;
      res.write(body.subarray(0, cut), () => {
        if (!stall) setTimeout(() => res.socket?.destroy(), 50);
      });
      return;
    }
    res.end(body);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fs.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/visualrwkv.pth`;
  fs.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return fs;
}

describe('e2e model store and GPU-ready copies (built app, headless Chromium)', () => {
  let server: TestServer | undefined;
  let files: FileServer | undefined;
  let browser: Browser | undefined;
  const golden = readJson<E2eCase>(CASE);
  const modelBytes = new Uint8Array(readFileSync(MODEL_FILE));
  let goldenText = '';

  beforeAll(async () => {
    goldenText = (await loadDefaultTokenizer()).decode(golden.gen_ids);
    server = await startServer({ mounts: { '/fixtures/': 'tests/fixtures' } });
    files = await startFileServer(modelBytes);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await files?.close();
  });

  it('downloads into the store, keeps a GPU-ready copy, and the next visit loads that copy and answers the same', async () => {
    const { context, page, log } = await openPage(browser!, `${server!.url}?model=${MODEL_URL}&encoder=${ENCODER_URL}&${QUERY}`, { name: 'store' });
    try {
      await waitReady(page);
      expect(await page.locator('#engine').getAttribute('data-source')).toBe('original');
      expect(await page.locator('#model-note').textContent()).toMatch(/Kept a GPU-ready copy \([\d.]+ MB\): the next load of visualrwkv\.pth skips the conversion/);
      const model = `url:${server!.url}${MODEL_URL.slice(1)}`;
      const encoder = `url:${server!.url}${ENCODER_URL.slice(1)}`;
      const copyRow = await row(page, `gpu-ready:${model}`);
      await expect.poll(() => copyRow.getAttribute('data-state')).toBe('complete');
      expect((await copyRow.locator('td').allInnerTexts()).slice(0, 3)).toEqual([expect.stringContaining('visualrwkv.pth — GPU-ready copy'), expect.stringMatching(/^[\d.]+ MB$/), 'GPU-ready copy']);
      const modelRow = await row(page, model);
      expect(await modelRow.getAttribute('data-state')).toBe('complete');
      expect(await modelRow.locator('td').nth(1).innerText()).toBe('8.66 MB');
      expect(await (await row(page, encoder)).getAttribute('data-state')).toBe('complete');
      expect(await page.locator('#storage-summary').textContent()).toMatch(/^\([\d.]+ MB in 3 files · .* free · /);
      expect(await page.locator('#model-catalog optgroup[label="Stored on this device"] option').allTextContents()).toEqual([expect.stringMatching(/^visualrwkv\.pth · 8\.66 MB$/)]);

      // Next visit: the GPU-ready copy, no model or encoder fetched.
      await page.reload();
      await waitReady(page);
      expect(await page.locator('#engine').getAttribute('data-source')).toBe('gpu-ready');
      expect(await page.locator('#engine').textContent()).toMatch(/Loaded the GPU-ready copy \(no conversion\) in \d+ s/);
      expect(await page.locator('#progress-weights').getAttribute('data-state')).toBe('done');
      expect(await fetchedFiles(page)).toEqual([]);
      const text = await askAboutImage(page, golden.prompt.question);
      console.log(`[app-storage] answer from the GPU-ready copy: ${JSON.stringify(text)}`);
      expect(text).toBe(goldenText);

      // Delete the copy in the panel: the next load uses the stored original (no fetch either) and writes it again.
      const del = (await row(page, `gpu-ready:${model}`)).locator('button[data-action="delete"]');
      await del.click();
      await del.click(); // "Confirm delete"
      await expect.poll(async () => (await row(page, `gpu-ready:${model}`)).count()).toBe(0);
      await page.reload();
      await waitReady(page);
      expect(await page.locator('#engine').getAttribute('data-source')).toBe('original');
      expect(await fetchedFiles(page)).toEqual([]);
      await expect.poll(async () => (await row(page, `gpu-ready:${model}`)).getAttribute('data-state')).toBe('complete');

      // Delete the original to save space: the copy alone still loads the model (no fetch, no conversion).
      const delOriginal = (await row(page, model)).locator('button[data-action="delete"]');
      await delOriginal.click();
      await delOriginal.click(); // "Confirm delete"
      await expect.poll(async () => (await row(page, model)).count()).toBe(0);
      await page.reload();
      await waitReady(page);
      expect(await page.locator('#engine').getAttribute('data-source')).toBe('gpu-ready');
      expect(await fetchedFiles(page)).toEqual([]);
      expect(await askAboutImage(page, golden.prompt.question)).toBe(goldenText);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('a broken download keeps what arrived; Load resumes it with a Range request', async () => {
    const fs = files!;
    fs.requests.length = 0;
    fs.dropAfter = 3_000_000;
    const { context, page, log } = await openPage(browser!, `${server!.url}?model=${fs.url}&${QUERY}`, { name: 'resume' });
    try {
      expect(await waitLoaded(page)).toBe('error');
      expect(await page.locator('#engine').textContent()).toMatch(/the connection broke after \d+ of 8656813 bytes .*kept, download again to resume/);
      const partial = await row(page, `url:${fs.url}`);
      await expect.poll(() => partial.getAttribute('data-state')).toBe('partial');
      const status = await partial.locator('td').nth(2).innerText();
      const kept = Number(/Partial: ([\d.]+) MB/.exec(status)?.[1]) * 1e6;
      expect(kept).toBeGreaterThan(1e6);
      expect(kept).toBeLessThanOrEqual(3_000_000);
      expect(fs.requests).toEqual([{ range: undefined, status: 200 }]);

      await page.getByRole('button', { name: 'Load', exact: true }).click();
      await waitReady(page);
      expect(fs.requests).toHaveLength(2);
      expect(fs.requests[1]!.status).toBe(206);
      const from = Number(/^bytes=(\d+)-$/.exec(fs.requests[1]!.range ?? '')?.[1]);
      expect(Math.abs(from - kept)).toBeLessThan(10_000); // the panel showed it rounded to 10 kB
      expect(await (await row(page, `url:${fs.url}`)).getAttribute('data-state')).toBe('complete');
      expect(await page.locator('#engine').getAttribute('data-source')).toBe('original');
      // The failed load logged its error; nothing else.
      expect(log.errors().filter((e) => !/Failed to load resource|ERR_/.test(e))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('a stalled download shows its progress and can be paused; Load continues it', async () => {
    const fs = files!;
    fs.requests.length = 0;
    fs.stallAfter = 5_000_000;
    const url = fs.url.replace('/visualrwkv.pth', '/stalled/visualrwkv.pth'); // another id than the test above
    const { context, page, log } = await openPage(browser!, `${server!.url}?model=${url}&${QUERY}`, { name: 'pause' });
    try {
      const detail = page.locator('#progress-weights .progress-detail');
      await expect.poll(() => detail.textContent(), { timeout: LOAD_TIMEOUT_MS }).toMatch(/^Downloading: 5\.00 MB of 8\.66 MB \(57%\)/);
      const pause = page.getByRole('button', { name: 'Pause download' });
      await pause.click();
      expect(await waitLoaded(page)).toBe('paused');
      expect(await page.locator('#engine').textContent()).toMatch(/Download paused: the part downloaded so far is kept/);
      expect(await pause.isHidden()).toBe(true);
      await expect.poll(async () => (await row(page, `url:${url}`)).getAttribute('data-state')).toBe('partial');

      await page.getByRole('button', { name: 'Load', exact: true }).click();
      await waitReady(page);
      expect(fs.requests.map((r) => [r.range, r.status])).toEqual([[undefined, 200], ['bytes=5000000-', 206]]);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('a catalogue model goes through the store (its URL served by a route) and loads', async () => {
    const entry = CATALOG.find((e) => e.id === 'visualrwkv-v0700-0b1')!; // any checkpoint entry: the bytes are the fixture's
    const { context, page, log } = await openPage(browser!, `${server!.url}?${QUERY}`, { name: 'catalog' });
    try {
      const served: string[] = [];
      await context.route(entry.url, async (route) => {
        served.push(route.request().url());
        await route.fulfill({
          status: 200,
          body: Buffer.from(modelBytes),
          headers: { 'Content-Type': 'application/octet-stream', 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin', 'Content-Length': String(modelBytes.length) },
        });
      });
      await page.locator('#adapter[data-state="ready"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
      await page.getByLabel('Released or stored model').selectOption(entry.id);
      await page.getByRole('button', { name: 'Load', exact: true }).click();
      await waitReady(page);
      expect(served).toEqual([entry.url]);
      expect(new URL(page.url()).searchParams.get('model')).toBe(entry.id); // the share link names the entry
      expect(await (await row(page, entry.id)).getAttribute('data-state')).toBe('complete');
      expect(await (await row(page, `gpu-ready:${entry.id}`)).getAttribute('data-state')).toBe('complete');
      expect(await page.getByLabel('Released or stored model').locator(`option[value="${entry.id}"]`).textContent()).toMatch(/· stored$/);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('too little storage: a clear StorageQuotaError message and nothing stored', async () => {
    const stub = `Object.defineProperty(StorageManager.prototype, 'estimate', { value: async () => ({ quota: 5000000, usage: 1000000 }), configurable: true });`;
    const { context, page, log } = await openPage(browser!, `${server!.url}?model=${MODEL_URL}&${QUERY}`, { name: 'quota', initScript: stub });
    try {
      expect(await waitLoaded(page)).toBe('error');
      const text = (await page.locator('#engine').textContent()) ?? '';
      expect(text).toMatch(/^Could not load the model: Not enough storage for visualrwkv\.pth: it needs 8\.66 MB more .* but this site can store only 4\.00 MB more .*Nothing was written\./);
      expect(await page.locator('#progress-weights').getAttribute('data-state')).toBe('error');
      expect(await (await row(page, `url:${server!.url}${MODEL_URL.slice(1)}`)).count()).toBe(0);
      expect(log.errors().filter((e) => !/Failed to load resource|ERR_/.test(e))).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
