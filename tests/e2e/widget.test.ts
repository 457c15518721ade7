/**
 * `<visual-rwkv-chat>` from the library build, embedded exactly as examples/embed.html does it (one module script,
 * one element), in headless Chromium (WebGPU on SwiftShader). The library is built by this test (vite.lib.config.ts
 * into a temp dir served at /dist/lib/), the example page is served with its model/encoder attributes pointed at the
 * tiny fixtures. The widget must load, stream the official greedy answer about the fixture image into its shadow-DOM
 * transcript (articles with data-role / data-done, like the page), fire `ready`, `token` (one per token, their
 * texts adding up to the reply) and `done`, and follow the theme's custom properties. Without WebGPU it must say so
 * and fire `error`.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDefaultTokenizer } from '../../src/text/tokenizer';
import { launchBrowser, openPage } from '../helpers/browser';
import { readJson } from '../helpers/fixtures';
import { ROOT, startServer, type TestServer } from '../helpers/server';

/** Engine start in Chromium on SwiftShader (worker, device, pipelines, weights, ORT WASM). */
const LOAD_TIMEOUT_MS = 180_000;
/** One reply of 8 tokens with an image (encode + 611-row prefill) on SwiftShader. */
const REPLY_TIMEOUT_MS = 120_000;

const CASE = 'cases/rwkv6_vocab65536/e2e_image_0_middle_bidi.json';
const IMAGE = join(ROOT, 'tests/fixtures/vision/image_0.png');
const MODEL_URL = '/fixtures/models/rwkv6_vocab65536/visualrwkv.pth';
const ENCODER_URL = '/fixtures/vision/tiny_clip_vit_shared.onnx';
const EXAMPLE = join(ROOT, 'examples/embed.html');

/** Records the widget's events from before any page script runs (they bubble and are composed: document sees them). */
const RECORD_EVENTS = `
  window.__events = [];
  for (const type of ['ready', 'progress', 'token', 'done', 'error']) {
    document.addEventListener(type, (e) => {
      if (e.target?.tagName !== 'VISUAL-RWKV-CHAT') return;
      const d = e.detail;
      window.__events.push({ type, text: d?.text, reason: d?.reason, done: d?.done, message: d?.message, arch: d?.arch, t: performance.now() });
    });
  }`;
const NO_WEBGPU = `Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });`;

interface E2eCase {
  prompt: { question: string };
  gen_ids: number[];
}
interface Recorded {
  type: string;
  text?: string;
  reason?: string;
  done?: string;
  message?: string;
  arch?: string;
  t: number;
}

const events = (page: Page) => page.evaluate(() => (window as unknown as { __events: Recorded[] }).__events);

describe('<visual-rwkv-chat> from the library build (headless Chromium)', () => {
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  let libDir = '';
  let pageDir = '';
  const golden = readJson<E2eCase>(CASE);
  let goldenText = '';

  beforeAll(async () => {
    goldenText = (await loadDefaultTokenizer()).decode(golden.gen_ids);
    libDir = mkdtempSync(join(tmpdir(), 'visualrwkv-lib-'));
    pageDir = mkdtempSync(join(tmpdir(), 'visualrwkv-embed-'));
    const env = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      await build({ configFile: join(ROOT, 'vite.lib.config.ts'), root: ROOT, logLevel: 'warn', mode: 'production', build: { outDir: libDir, emptyOutDir: true } });
    } finally {
      if (env === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = env;
    }
    // The example page as shipped, with its model and encoder pointed at the fixtures (greedy, 8 tokens).
    const html = readFileSync(EXAMPLE, 'utf8');
    expect(html.match(/<script\b/g)).toHaveLength(1);
    expect(html.match(/<visual-rwkv-chat\b/g)).toHaveLength(1);
    expect(html).toContain('src="../dist/lib/widget.js"');
    const page = html
      .replace(/\bmodel="[^"]*"/, `model="${MODEL_URL}"`)
      .replace(/\bencoder="[^"]*"/, `encoder="${ENCODER_URL}"`)
      .replace(/\bmax-tokens="[^"]*"/, 'max-tokens="8" temperature="0"');
    expect(page).toContain(`model="${MODEL_URL}"`);
    expect(page).toContain('temperature="0"');
    writeFileSync(join(pageDir, 'embed.html'), page);
    server = await startServer({ mounts: { '/fixtures/': 'tests/fixtures', '/dist/lib/': libDir, '/examples/': pageDir } });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    for (const d of [libDir, pageDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('loads from its attributes, streams the reference answer about an image, fires token/done events, takes the theme', async () => {
    const { context, page, log } = await openPage(browser!, 'about:blank', { name: 'widget', initScript: RECORD_EVENTS });
    try {
      await page.goto(`${server!.url}examples/embed.html`);
      const chat = page.locator('visual-rwkv-chat');
      await page.locator('visual-rwkv-chat:is([data-state="ready"], [data-state="error"], [data-state="unavailable"])').waitFor({ timeout: LOAD_TIMEOUT_MS });
      const status = (await chat.locator('.status').textContent()) ?? '';
      console.log(`[widget] ${status}`);
      expect(await chat.getAttribute('data-state'), status).toBe('ready');
      expect(status).toMatch(/Ready: visualrwkv\.pth \(RWKV-6, 2 layers, with an image encoder\)/);
      expect((await events(page)).filter((e) => e.type === 'ready')).toMatchObject([{ arch: 'rwkv6' }]);
      // Everything lives in the shadow root.
      expect(await chat.evaluate((el) => !!el.shadowRoot && el.shadowRoot.querySelector('form') !== null && el.querySelector('form') === null)).toBe(true);

      await chat.getByLabel('Image', { exact: true }).setInputFiles(IMAGE);
      await expect.poll(() => chat.locator('img.preview').isVisible()).toBe(true);
      await chat.getByLabel('Message', { exact: true }).fill(golden.prompt.question);
      await chat.getByRole('button', { name: 'Send', exact: true }).click();
      await expect.poll(() => chat.getAttribute('data-state')).toBe('generating');
      expect(await chat.getByRole('button', { name: 'Stop', exact: true }).isEnabled()).toBe(true);

      const reply = chat.locator('article[data-role="assistant"]');
      await reply.and(page.locator('[data-done="true"]')).waitFor({ timeout: REPLY_TIMEOUT_MS });
      const text = (await reply.locator('.text').textContent()) ?? '';
      console.log(`[widget] reply: ${JSON.stringify(text)} | ${await reply.locator('.stats').textContent()}`);
      expect(await reply.locator('.error').allTextContents()).toEqual([]);
      expect(text).toBe(goldenText);
      expect(await reply.getAttribute('data-done-reason')).toBe('length');
      expect(await reply.getAttribute('data-tokens')).toBe(String(golden.gen_ids.length));
      expect(await reply.getAttribute('data-encoder-ran')).toBe('true');
      expect(await chat.locator('article[data-role="user"] img').count()).toBe(1);
      expect(await chat.locator('article[data-role="user"] .text').textContent()).toBe(golden.prompt.question);
      await expect.poll(() => chat.getAttribute('data-state')).toBe('ready');

      // Events: one `token` per token, streamed (several distinct times), adding up to the reply; one `done`.
      const ev = await events(page);
      const tokens = ev.filter((e) => e.type === 'token');
      expect(tokens).toHaveLength(golden.gen_ids.length);
      expect(tokens.map((e) => e.text).join('')).toBe(text);
      expect(tokens.at(-1)!.done).toBe('length');
      expect(new Set(tokens.map((e) => e.t)).size).toBeGreaterThan(1);
      expect(ev.filter((e) => e.type === 'done')).toMatchObject([{ reason: 'length', text }]);
      expect(ev.filter((e) => e.type === 'error')).toEqual([]);
      expect(ev.some((e) => e.type === 'progress')).toBe(true);

      // Theming from outside the shadow root: the accent colours the Send button, the font reaches the text.
      await chat.evaluate((el: HTMLElement) => {
        el.style.setProperty('--vrwkv-accent', 'rgb(10, 120, 90)');
        el.style.setProperty('--vrwkv-font', 'monospace');
      });
      const look = await chat.evaluate((el) => {
        const send = el.shadowRoot!.querySelector('button.send')!;
        const msg = el.shadowRoot!.querySelector('textarea')!;
        return { bg: getComputedStyle(send).backgroundColor, font: getComputedStyle(msg).fontFamily };
      });
      expect(look).toEqual({ bg: 'rgb(10, 120, 90)', font: 'monospace' });

      // New chat clears the transcript.
      await chat.getByRole('button', { name: 'New chat', exact: true }).click();
      await expect.poll(() => chat.locator('article').count()).toBe(0);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('after a failed load, Retry loads again without reloading the page', async () => {
    // The model is missing at first (HTTP 404), then appears on the server: Retry must pick it up.
    const html = readFileSync(join(pageDir, 'embed.html'), 'utf8').replace(/\bmodel="[^"]*"/, 'model="/examples/late.pth"').replace(/\bencoder="[^"]*"/, '');
    writeFileSync(join(pageDir, 'late.html'), html);
    const { context, page } = await openPage(browser!, 'about:blank', { name: 'widget-retry', initScript: RECORD_EVENTS });
    try {
      await page.goto(`${server!.url}examples/late.html`);
      const chat = page.locator('visual-rwkv-chat');
      const retry = chat.getByRole('button', { name: 'Retry', exact: true });
      await page.locator('visual-rwkv-chat:is([data-state="error"], [data-state="unavailable"], [data-state="ready"])').waitFor({ timeout: LOAD_TIMEOUT_MS });
      expect(await chat.getAttribute('data-state')).toBe('error');
      const status = (await chat.locator('.status').textContent()) ?? '';
      // The message starts with the file's URL or name, and keeps its case (not 'Http://…' / 'Late.pth').
      expect(status).toMatch(/^Could not load the model: (http:\/\/\S+\/)?late\.pth\b/);
      expect(await retry.isVisible()).toBe(true);
      expect((await events(page)).filter((e) => e.type === 'error')).toHaveLength(1);

      copyFileSync(join(ROOT, 'tests/fixtures', MODEL_URL.replace('/fixtures/', '')), join(pageDir, 'late.pth'));
      await retry.click();
      await page.locator('visual-rwkv-chat:is([data-state="ready"], [data-state="error"])').waitFor({ timeout: LOAD_TIMEOUT_MS });
      expect(await chat.getAttribute('data-state'), (await chat.locator('.status').textContent()) ?? '').toBe('ready');
      expect(await retry.isVisible()).toBe(false);
      expect((await events(page)).filter((e) => e.type === 'ready')).toHaveLength(1);
    } finally {
      await context.close();
    }
  });

  it('without WebGPU, says so and fires `error` without loading the model', async () => {
    const { context, page, log } = await openPage(browser!, 'about:blank', { name: 'widget-no-gpu', initScript: NO_WEBGPU + RECORD_EVENTS });
    try {
      await page.goto(`${server!.url}examples/embed.html`);
      const chat = page.locator('visual-rwkv-chat');
      await page.locator('visual-rwkv-chat:is([data-state="error"], [data-state="unavailable"], [data-state="ready"])').waitFor({ timeout: LOAD_TIMEOUT_MS });
      expect(await chat.getAttribute('data-state')).toBe('unavailable');
      expect(await chat.locator('.status').textContent()).toMatch(/no WebGPU/);
      expect((await events(page)).filter((e) => e.type === 'error')).toMatchObject([{ message: expect.stringMatching(/WebGPU/) }]);
      expect(await chat.getByRole('button', { name: 'Send', exact: true }).isDisabled()).toBe(true);
      const fetched = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
      expect(fetched.filter((u) => u.includes('/fixtures/'))).toEqual([]);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
