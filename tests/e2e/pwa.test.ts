/**
 * The offline app: the built page in headless Chromium with a persistent profile (service worker + Cache API + OPFS),
 * the tiny VisualRWKV-6 fixture and the tiny ONNX CLIP tower preloaded from the URL. After one online visit (service
 * worker controlling the page; model and encoder downloaded into the page's model store in OPFS, plus the model's
 * GPU-ready copy), the network goes off AND the server stops; a reload must still load the app and the model (from
 * the GPU-ready copy in OPFS) and give the same greedy answer about the fixture image as online.
 * Also: the manifest and its icons (installability), stale shell caches removed on activation, the service worker's
 * URL cache (filled through its `cache-urls` message, as `keepOffline` does for pages without a model store):
 * Range requests answered from it offline (206 slices equal to the file), listed and cleared in the "Stored models"
 * panel; cross-origin isolation kept offline, an app update (new sw.js version: waits, offered with Reload, then the
 * only shell cache), and the Range parsing and build-version helpers.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng } from '../../src/vision/png';
import { MODEL_CACHE, SHELL_CACHE_PREFIX, isModelPath, parseRange } from '../../src/pwa/shared';
import { buildFiles, buildVersion } from '../../src/pwa/vite-plugin';
import { preview as vitePreview } from 'vite';
import { BASE_ARGS, CHROMIUM_PATH, WEBGPU_ARGS, launchBrowser, openPage } from '../helpers/browser';
import { readJson } from '../helpers/fixtures';
import { APP_DIR, ROOT, startServer, type TestServer } from '../helpers/server';

/** Engine start in Chromium on SwiftShader: worker, device, pipeline compiles, weights, ORT WASM. */
const LOAD_TIMEOUT_MS = 180_000;
/** One reply of ≤ 8 tokens (image encode + 611-row prefill included) on SwiftShader. */
const REPLY_TIMEOUT_MS = 120_000;
/** The service worker precaches ~30 MB (onnxruntime's .wasm is most of it) and then stores the model files. */
const STORE_TIMEOUT_MS = 120_000;

const CASE = 'cases/rwkv6_vocab65536/e2e_image_0_middle_bidi.json';
const IMAGE = join(ROOT, 'tests/fixtures/vision/image_0.png');
const MODEL_FILE = join(ROOT, 'tests/fixtures/models/rwkv6_vocab65536/visualrwkv.pth');
const MODEL_URL = '/fixtures/models/rwkv6_vocab65536/visualrwkv.pth';
const ENCODER_URL = '/fixtures/vision/tiny_clip_vit_shared.onnx';
const PAGE = `?model=${MODEL_URL}&encoder=${ENCODER_URL}&temperature=0&max_tokens=8`;
const STALE_CACHE = `${SHELL_CACHE_PREFIX}stale-test-version`;

interface E2eCase {
  prompt: { question: string };
}

function watch(page: Page, name: string): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
    console.log(`[${name} console.${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => {
    errors.push(e.stack ?? e.message);
    console.log(`[${name} pageerror] ${e.stack ?? e.message}`);
  });
  return errors;
}

async function waitReady(page: Page): Promise<void> {
  await page.locator('#engine[data-state="ready"], #engine[data-state="error"], #engine[data-state="unavailable"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
  expect(await page.locator('#engine').getAttribute('data-state'), (await page.locator('#engine').textContent()) ?? '').toBe('ready');
}

/** Ask about the fixture image; the first reply's text once done. */
async function askAboutImage(page: Page, question: string): Promise<{ text: string; reason: string; encoderRan: string }> {
  await page.getByLabel('Image', { exact: true }).setInputFiles(IMAGE);
  await page.getByLabel('Message', { exact: true }).fill(question);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const a = page.locator('article[data-role="assistant"]').nth(0);
  await a.and(page.locator('[data-done="true"]')).waitFor({ timeout: REPLY_TIMEOUT_MS });
  expect(await a.locator('.error').allTextContents()).toEqual([]);
  return {
    text: (await a.locator('.text').textContent()) ?? '',
    reason: (await a.getAttribute('data-done-reason')) ?? '',
    encoderRan: (await a.getAttribute('data-encoder-ran')) ?? '',
  };
}

describe('offline PWA (built app, persistent Chromium profile)', () => {
  let server: TestServer | undefined;
  let serverOpen = false;
  let context: BrowserContext | undefined;
  let profile = '';
  const golden = readJson<E2eCase>(CASE);

  beforeAll(async () => {
    server = await startServer({ mounts: { '/fixtures/': 'tests/fixtures' } });
    serverOpen = true;
    profile = mkdtempSync(join(tmpdir(), 'visualrwkv-pwa-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...BASE_ARGS, ...WEBGPU_ARGS],
    });
  });

  afterAll(async () => {
    await context?.close();
    if (serverOpen) await server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('after one online visit, the app loads and answers with the network off and the server gone', async () => {
    const page = context!.pages()[0] ?? (await context!.newPage());
    const errors = watch(page, 'pwa');
    const base = server!.url;

    // A shell cache of an "older version", made before any service worker exists: activation must delete it.
    await page.goto(`${base}manifest.webmanifest`);
    await page.evaluate(async (name) => {
      const c = await caches.open(name);
      await c.put('/old-file.js', new Response('old'));
    }, STALE_CACHE);

    // --- Online visit -------------------------------------------------------------------------------------
    errors.length = 0; // (the manifest "page" has no icon link: its favicon.ico 404 does not count)
    await page.goto(base + PAGE);
    // Installable: the manifest is linked and names 192 and 512 px PNG icons that exist and have those sizes.
    const manifestHref = await page.locator('link[rel="manifest"]').getAttribute('href');
    expect(manifestHref).toBeTruthy();
    const manifest = await page.evaluate(async (href) => (await fetch(href)).json(), manifestHref!);
    expect(manifest).toMatchObject({ name: 'VisualRWKV', display: 'standalone', start_url: './' });
    const sizes: string[] = [];
    for (const icon of manifest.icons as { src: string; sizes: string; type: string }[]) {
      const bytes = readFileSync(join(APP_DIR, icon.src));
      const png = await decodePng(new Uint8Array(bytes));
      expect(`${png.width}x${png.height}`).toBe(icon.sizes);
      expect(icon.type).toBe('image/png');
      sizes.push(icon.sizes);
    }
    expect(sizes).toEqual(expect.arrayContaining(['192x192', '512x512']));

    await waitReady(page);
    await page.waitForFunction(() => !!navigator.serviceWorker.controller, undefined, { timeout: STORE_TIMEOUT_MS });
    // The page asked the service worker to keep the model and the encoder; both are stored.
    await page.locator('#offline[data-state="models"], #offline[data-state="error"]').waitFor({ timeout: STORE_TIMEOUT_MS });
    const status = (await page.locator('#offline').textContent()) ?? '';
    console.log(`[pwa] ${status}`);
    expect(await page.locator('#offline').getAttribute('data-state'), status).toBe('models');
    expect(status).toMatch(/visualrwkv\.pth, tiny_clip_vit_shared\.onnx/);

    // Model, encoder and the model's GPU-ready copy are in the page's model store (OPFS), not in the URL cache.
    await page.locator('#storage-panel summary').click();
    for (const id of [`url:${base}${MODEL_URL.slice(1)}`, `url:${base}${ENCODER_URL.slice(1)}`, `gpu-ready:url:${base}${MODEL_URL.slice(1)}`]) {
      await expect.poll(() => page.locator(`.vr-cache tr[data-id="${id}"]`).getAttribute('data-state')).toBe('complete');
    }
    const caches1 = await page.evaluate(async (models) => ({ keys: await caches.keys(), urlEntries: (await (await caches.open(models)).keys()).length }), MODEL_CACHE);
    const shells = caches1.keys.filter((k) => k.startsWith(SHELL_CACHE_PREFIX));
    expect(shells).toHaveLength(1);
    expect(shells[0]).not.toBe(STALE_CACHE);
    expect(caches1.urlEntries).toBe(0); // stored once, in the model store
    // The service worker's URL cache (what keepOffline fills where there is no model store): store the model there.
    const cached = await page.evaluate(async (url) => {
      const reg = await navigator.serviceWorker.ready;
      return new Promise<unknown>((resolve) => {
        const ch = new MessageChannel();
        ch.port1.onmessage = (e) => resolve(e.data);
        reg.active!.postMessage({ type: 'cache-urls', urls: [new URL(url, location.href).href] }, [ch.port2]);
      });
    }, MODEL_URL);
    expect(cached).toMatchObject({ type: 'cache-result', results: [{ status: 'cached' }] });
    // The shell cache is named after the build version written into sw.js.
    const sw = readFileSync(join(APP_DIR, 'sw.js'), 'utf8');
    const version = /version ([0-9a-f]{16})/.exec(sw)?.[1];
    expect(shells[0]).toBe(`${SHELL_CACHE_PREFIX}${version}`);

    const online = await askAboutImage(page, golden.prompt.question);
    console.log(`[pwa] online answer: ${JSON.stringify(online.text)}`);
    // (The exact greedy answer is chat.test.ts's business; here the offline answer must equal this one.)
    expect(online.text.length).toBeGreaterThan(0);
    expect(online.reason).toBe('length');
    expect(online.encoderRan).toBe('true');

    // --- Offline --------------------------------------------------------------------------------------------
    await context!.setOffline(true);
    await server!.close();
    serverOpen = false;
    await expect(fetch(base, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();

    await page.reload();
    expect(await page.evaluate(() => !!navigator.serviceWorker.controller)).toBe(true);
    expect(await page.evaluate(() => navigator.onLine)).toBe(false);
    // The shell came from the service worker with COOP/COEP: still cross-origin isolated.
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await waitReady(page);
    expect(await page.locator('#engine').getAttribute('data-source')).toBe('gpu-ready');

    // Range requests are answered from the stored model: 206 slices equal to the file's bytes.
    const file = readFileSync(MODEL_FILE);
    const slice = await page.evaluate(async (url) => {
      const r = await fetch(url, { headers: { Range: 'bytes=100-163' } });
      const tail = await fetch(url, { headers: { Range: 'bytes=-16' } });
      const bad = await fetch(url, { headers: { Range: 'bytes=999999999-' } });
      return {
        status: r.status,
        range: r.headers.get('content-range'),
        bytes: Array.from(new Uint8Array(await r.arrayBuffer())),
        tailStatus: tail.status,
        tail: Array.from(new Uint8Array(await tail.arrayBuffer())),
        badStatus: bad.status,
      };
    }, MODEL_URL);
    expect(slice.status).toBe(206);
    expect(slice.range).toBe(`bytes 100-163/${file.length}`);
    expect(slice.bytes).toEqual(Array.from(file.subarray(100, 164)));
    expect(slice.tailStatus).toBe(206);
    expect(slice.tail).toEqual(Array.from(file.subarray(file.length - 16)));
    expect(slice.badStatus).toBe(416);
    // Chromium logs the 416 it was asked for as a failed resource load.
    const expected416 = errors.findIndex((e) => /status of 416/.test(e));
    expect(expected416).toBeGreaterThanOrEqual(0);
    errors.splice(expected416, 1);

    const offline = await askAboutImage(page, golden.prompt.question);
    console.log(`[pwa] offline answer: ${JSON.stringify(offline.text)}`);
    expect(offline.text).toBe(online.text);
    expect(offline.reason).toBe(online.reason);
    expect(offline.encoderRan).toBe('true');

    // The panel lists the URL cache's entry and clears it.
    await page.locator('#storage-panel summary').click();
    const urlRow = page.locator(`.vr-cache tr[data-url="${base}${MODEL_URL.slice(1)}"]`);
    await urlRow.waitFor();
    expect(await urlRow.locator('td').nth(1).innerText()).toBe('8.66 MB');
    await page.locator('.vr-cache button[data-action="clear-urls"]').click();
    await expect.poll(() => urlRow.count()).toBe(0);
    expect(await page.evaluate((name) => caches.has(name), MODEL_CACHE)).toBe(false);
    expect(errors).toEqual([]);
  });
});

describe('app updates (built app copy, incognito Chromium)', () => {
  it('a new build waits, is offered with a Reload button, then replaces the old shell cache', async () => {
    // Make sure dist/app is built (startServer builds it), then serve a private copy that this test can change.
    const built = await startServer();
    await built.close();
    const dir = mkdtempSync(join(tmpdir(), 'visualrwkv-update-'));
    cpSync(APP_DIR, dir, { recursive: true });
    const preview = await vitePreview({
      configFile: join(ROOT, 'vite.config.ts'),
      root: ROOT,
      logLevel: 'warn',
      build: { outDir: dir },
      preview: { host: '127.0.0.1', port: 0, strictPort: true, open: false },
    });
    const url = `http://127.0.0.1:${(preview.httpServer.address() as { port: number }).port}/`;
    const browser = await launchBrowser();
    try {
      const { page, log } = await openPage(browser, url, { name: 'update' });
      await page.locator('#offline[data-state="app"]').waitFor({ timeout: STORE_TIMEOUT_MS });
      const v1 = /version ([0-9a-f]{16})/.exec(readFileSync(join(dir, 'sw.js'), 'utf8'))![1]!;
      expect(await page.locator('#offline').textContent()).toContain(`version ${v1.slice(0, 8)}`);
      const shellCaches = () => page.evaluate((prefix) => caches.keys().then((k) => k.filter((n) => n.startsWith(prefix))), SHELL_CACHE_PREFIX);
      expect(await shellCaches()).toEqual([`${SHELL_CACHE_PREFIX}${v1}`]);

      // "Deploy" a new version: different page, new sw.js version.
      const v2 = 'feedfacecafe0123';
      writeFileSync(join(dir, 'index.html'), readFileSync(join(dir, 'index.html'), 'utf8').replace('<head>', '<head><meta name="build" content="two" />'));
      writeFileSync(join(dir, 'sw.js'), readFileSync(join(dir, 'sw.js'), 'utf8').replaceAll(v1, v2));
      await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r!.update()));

      // Installed but waiting: the running page keeps the old version and offers the new one.
      const update = page.locator('#update');
      await update.getByRole('button', { name: 'Reload' }).waitFor({ timeout: STORE_TIMEOUT_MS });
      expect(await update.textContent()).toMatch(/new version/);
      expect(await page.locator('meta[name="build"]').count()).toBe(0);
      expect((await shellCaches()).sort()).toEqual([`${SHELL_CACHE_PREFIX}${v1}`, `${SHELL_CACHE_PREFIX}${v2}`].sort());

      await Promise.all([page.waitForEvent('load', { timeout: STORE_TIMEOUT_MS }), update.getByRole('button', { name: 'Reload' }).click()]);
      await page.locator('#offline[data-state="app"]').waitFor({ timeout: STORE_TIMEOUT_MS });
      expect(await page.locator('meta[name="build"]').getAttribute('content')).toBe('two');
      expect(await page.locator('#offline').textContent()).toContain(`version ${v2.slice(0, 8)}`);
      expect(await shellCaches()).toEqual([`${SHELL_CACHE_PREFIX}${v2}`]);
      expect(await page.locator('#update').isHidden()).toBe(true);
      expect(log.errors()).toEqual([]);
    } finally {
      await browser.close();
      await preview.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('service worker helpers', () => {
  it('parseRange: single ranges, suffixes, open ends, ignored and unsatisfiable headers', () => {
    expect(parseRange('bytes=0-0', 100)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=10-19', 100)).toEqual({ start: 10, end: 19 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=90-500', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-500', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=-0', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-0', 0)).toBe('unsatisfiable');
    expect(parseRange(null, 100)).toBeNull();
    expect(parseRange('bytes=5-2', 100)).toBeNull();
    expect(parseRange('bytes=0-1,5-6', 100)).toBeNull();
    expect(parseRange('items=0-1', 100)).toBeNull();
  });

  it('isModelPath: .pth, .safetensors and .onnx, any case', () => {
    expect(['/a/m.pth', '/m.SAFETENSORS', '/v/vision_model.onnx'].map(isModelPath)).toEqual([true, true, true]);
    expect(['/', '/index.html', '/assets/x.wasm', '/m.pth.json'].map(isModelPath)).toEqual([false, false, false, false]);
  });

  it('the build version changes with any built file and lists every file but sw.js, dotfiles and maps', async () => {
    const { mkdirSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'visualrwkv-version-'));
    try {
      mkdirSync(join(dir, 'assets'));
      for (const [f, text] of [['index.html', '<!doctype html>'], ['assets/a.js', 'a'], ['assets/a.js.map', '{}'], ['.stamp', 'x'], ['sw.js', 'old']]) {
        writeFileSync(join(dir, f!), text!);
      }
      const files = buildFiles(dir, 'sw.js');
      expect(files).toEqual(['assets/a.js', 'index.html']);
      const v1 = buildVersion(dir, files);
      expect(v1).toMatch(/^[0-9a-f]{16}$/);
      expect(buildVersion(dir, files)).toBe(v1);
      writeFileSync(join(dir, 'assets/a.js'), 'b');
      expect(buildVersion(dir, files)).not.toBe(v1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
