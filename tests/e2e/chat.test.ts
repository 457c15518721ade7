/**
 * End-to-end chat: the built app in headless Chromium (WebGPU on SwiftShader), the engine in its Web Worker, the
 * tiny real-vocabulary VisualRWKV-6 fixture (a released-format `.pth`) and the tiny ONNX CLIP tower, both preloaded
 * from the URL. The streamed answer must equal the official greedy answer decoded in this process; a new chat about
 * the same image must skip the encoder; Stop must end a long reply early and leave the chat usable; without WebGPU
 * the page must say so and not start loading.
 */
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDefaultTokenizer } from '../../src/text/tokenizer';
import { launchBrowser, openPage } from '../helpers/browser';
import { readJson } from '../helpers/fixtures';
import { ROOT, startServer, type TestServer } from '../helpers/server';

/** Engine start in Chromium on SwiftShader: worker, device, ~100 pipeline compiles, weights, ORT WASM. */
const LOAD_TIMEOUT_MS = 180_000;
/** One reply of ≤ 8 tokens (image encode + 611-row prefill included) on SwiftShader. */
const REPLY_TIMEOUT_MS = 120_000;

const CASE = 'cases/rwkv6_vocab65536/e2e_image_0_middle_bidi.json';
const IMAGE = join(ROOT, 'tests/fixtures/vision/image_0.png');
const MODEL_URL = '/fixtures/models/rwkv6_vocab65536/visualrwkv.pth';
const ENCODER_URL = '/fixtures/vision/tiny_clip_vit_shared.onnx';
/** Greedy, 8 new tokens: exactly the fixture's generation. */
const PAGE = `/?model=${MODEL_URL}&encoder=${ENCODER_URL}&temperature=0&max_tokens=8`;
/** Max tokens for the reply that is stopped: far more than can be generated before Stop lands. */
const LONG_REPLY = 400;

/** Removes navigator.gpu before any page script runs: how a browser without WebGPU looks. */
const NO_WEBGPU = `Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });`;

interface E2eCase {
  prompt: { question: string };
  gen_ids: number[];
}

const assistant = (page: Page) => page.locator('article[data-role="assistant"]');
const user = (page: Page) => page.locator('article[data-role="user"]');

/** Wait until the engine has loaded (or failed: then fail with the page's message). */
async function waitReady(page: Page): Promise<void> {
  const engine = page.locator('#engine');
  await page.locator('#engine[data-state="ready"], #engine[data-state="error"], #engine[data-state="unavailable"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
  expect(await engine.getAttribute('data-state'), (await engine.textContent()) ?? '').toBe('ready');
}

async function ask(page: Page, text: string): Promise<void> {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

/** The n-th assistant reply once it is done: its text and attributes. */
async function reply(page: Page, n: number) {
  const a = assistant(page).nth(n);
  await a.and(page.locator('[data-done="true"]')).waitFor({ timeout: REPLY_TIMEOUT_MS });
  const attr = async (name: string) => (await a.getAttribute(name)) ?? '';
  return {
    text: (await a.locator('.text').textContent()) ?? '',
    reason: await attr('data-done-reason'),
    tokens: Number(await attr('data-tokens')),
    encoderRan: await attr('data-encoder-ran'),
    stats: (await a.locator('.stats').textContent()) ?? '',
    error: await a.locator('.error').allTextContents(),
  };
}

describe('e2e chat (built app, headless Chromium)', () => {
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  const golden = readJson<E2eCase>(CASE);
  let goldenText = '';

  beforeAll(async () => {
    goldenText = (await loadDefaultTokenizer()).decode(golden.gen_ids);
    server = await startServer({ mounts: { '/fixtures/': 'tests/fixtures' } });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('streams the reference answer about an uploaded image; a new chat about the same image skips the encoder', async () => {
    const { context, page, log } = await openPage(browser!, server!.url + PAGE.slice(1), { name: 'chat' });
    try {
      await waitReady(page);
      // Loading showed byte progress for both files and finished.
      for (const id of ['progress-weights', 'progress-encoder']) {
        expect(await page.locator(`#${id}`).getAttribute('data-state')).toBe('done');
      }
      expect(await page.locator('#progress-weights .progress-detail').textContent()).toMatch(/\d(\.\d+)? MB of \d(\.\d+)? MB/);
      // The URL's sampling settings reached the form.
      expect(await page.getByLabel('Temperature').inputValue()).toBe('0');
      expect(await page.getByLabel('Max tokens').inputValue()).toBe('8');

      await page.getByLabel('Image', { exact: true }).setInputFiles(IMAGE);
      await expect.poll(() => page.locator('#image-preview').isVisible()).toBe(true);
      await ask(page, golden.prompt.question);
      const first = await reply(page, 0);
      console.log(`[chat] reply 1: ${JSON.stringify(first.text)} | ${first.stats}`);
      expect(first.error).toEqual([]);
      expect(first.text).toBe(goldenText);
      expect(first.reason).toBe('length');
      expect(first.tokens).toBe(golden.gen_ids.length);
      expect(first.encoderRan).toBe('true');
      expect(first.stats).toMatch(/tokens\/s/);
      expect(first.stats).toMatch(/first token after \d/);
      expect(first.stats).toMatch(/image encoder ran/);
      expect(await user(page).count()).toBe(1);
      expect(await user(page).locator('img').count()).toBe(1);

      // New chat, same image still selected: same answer from a reset state, image rows from the cache.
      await page.getByRole('button', { name: 'New chat' }).click();
      expect(await page.locator('article').count()).toBe(0);
      await ask(page, golden.prompt.question);
      const second = await reply(page, 0);
      console.log(`[chat] reply 2: ${JSON.stringify(second.text)} | ${second.stats}`);
      expect(second.error).toEqual([]);
      expect(second.text).toBe(goldenText);
      expect(second.encoderRan).toBe('false');
      expect(second.stats).toMatch(/image encoder skipped/);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('Stop ends a long reply early; the next question continues the chat', async () => {
    const { context, page, log } = await openPage(browser!, server!.url + PAGE.slice(1), { name: 'stop' });
    try {
      await waitReady(page);
      await page.getByText('Settings', { exact: true }).click();
      await page.getByLabel('Max tokens').fill(String(LONG_REPLY));
      await page.getByLabel('Max tokens').press('Tab'); // commit (change event)
      await page.getByLabel('Image', { exact: true }).setInputFiles(IMAGE);
      await ask(page, golden.prompt.question);
      const stop = page.getByRole('button', { name: 'Stop', exact: true });
      // Stop right after the first token.
      await assistant(page).nth(0).and(page.locator('[data-tokens]:not([data-tokens="0"])')).waitFor({ timeout: REPLY_TIMEOUT_MS });
      await stop.click();
      const stopped = await reply(page, 0);
      console.log(`[chat] stopped after ${stopped.tokens} tokens: ${stopped.stats}`);
      expect(stopped.error).toEqual([]);
      expect(stopped.reason).toBe('interrupted');
      expect(stopped.tokens).toBeGreaterThanOrEqual(1);
      expect(stopped.tokens).toBeLessThan(LONG_REPLY);
      expect(await stop.isDisabled()).toBe(true);

      // A follow-up in the same conversation (no new chat, no encoder run), short again.
      await page.getByLabel('Max tokens').fill('4');
      await page.getByLabel('Max tokens').press('Tab');
      await ask(page, 'What else is in the picture?');
      const next = await reply(page, 1);
      console.log(`[chat] follow-up: ${JSON.stringify(next.text)} | ${next.stats}`);
      expect(next.error).toEqual([]);
      expect(['stop', 'length']).toContain(next.reason);
      expect(next.tokens).toBeGreaterThanOrEqual(1);
      expect(next.tokens).toBeLessThanOrEqual(4);
      expect(next.encoderRan).toBe('false');
      expect(await user(page).count()).toBe(2);
      expect(await page.locator('#messages .divider').count()).toBe(0);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('without WebGPU, explains how to get it and does not start loading the model', async () => {
    const { context, page, log } = await openPage(browser!, server!.url + PAGE.slice(1), { initScript: NO_WEBGPU, name: 'no-gpu' });
    try {
      await page.locator('#adapter:not([data-state="pending"])').waitFor({ timeout: LOAD_TIMEOUT_MS });
      expect(await page.locator('#adapter').getAttribute('data-state')).toBe('unavailable');
      const text = (await page.locator('#adapter').textContent()) ?? '';
      expect(text).toContain('navigator.gpu is undefined');
      expect(text).toMatch(/Chrome and Edge 113\+/);
      expect(text).toMatch(/--enable-unsafe-webgpu/);
      expect(await page.locator('#engine').getAttribute('data-state')).toBe('unavailable');
      expect(await page.locator('#engine').textContent()).toMatch(/needs WebGPU/);
      expect(await page.getByRole('button', { name: 'Send', exact: true }).isDisabled()).toBe(true);
      expect(await page.getByRole('button', { name: 'Load', exact: true }).isDisabled()).toBe(true);
      const fetched = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
      expect(fetched.filter((u) => u.includes('/fixtures/'))).toEqual([]);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
