/**
 * End-to-end text-only chat with an RWKV-7 model in the built page (headless Chromium, WebGPU on SwiftShader, the
 * engine in its Web Worker): a synthetic VisualRWKV-7 `.pth` with the real 65536-token vocabulary, generated into
 * a temp dir and served by URL (`?model=…`, no encoder). The page must recognise RWKV-7 from the checkpoint alone,
 * and its streamed answers (a question and a follow-up in the same chat) must equal the Node engine's answers for
 * the same requests — the request the page builds from its settings, computed in this process first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, openPage } from '../helpers/browser';
import { startServer, type TestServer } from '../helpers/server';
import { testGpu } from '../helpers/gpu';
import { TEST_RWKV7, writeSyntheticRwkv7 } from '../helpers/synthetic7';
import { minTop2Gap } from '../reference/common';
import { VisualRwkvEngine } from '../../src/worker/api';
import { DEFAULT_SETTINGS, requestSettings } from '../../src/ui/settings';
import type { ChatRequest } from '../../src/types';

/** Engine start in Chromium on SwiftShader: worker, device, pipeline compiles, 17 MB of weights. */
const LOAD_TIMEOUT_MS = 180_000;
/** One reply of ≤ 6 tokens on SwiftShader (65536-row head per token). */
const REPLY_TIMEOUT_MS = 120_000;
const MAX_TOKENS = 6;
const PAGE_QUERY = `temperature=0&max_tokens=${MAX_TOKENS}`;
/** Top-2 logit gaps below this would make greedy answers depend on float rounding (Dawn vs Chromium's Dawn). */
const MIN_MARGIN = 0.01;
const QUESTIONS = ['What is the capital of France?', 'And of Italy?'];

interface Expected {
  text: string;
  tokens: number;
  reason: string;
  margin: number;
}

/** The requests the page sends for these questions with `?temperature=0&max_tokens=6` (first turn starts a new chat). */
function pageRequests(): ChatRequest[] {
  const settings = requestSettings({ ...DEFAULT_SETTINGS, temperature: 0, maxTokens: MAX_TOKENS });
  return QUESTIONS.map((text, i) => ({ text, ...settings, ...(i === 0 ? { newChat: true } : {}) }));
}

async function waitReady(page: Page): Promise<void> {
  const engine = page.locator('#engine');
  await page.locator('#engine[data-state="ready"], #engine[data-state="error"], #engine[data-state="unavailable"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
  expect(await engine.getAttribute('data-state'), (await engine.textContent()) ?? '').toBe('ready');
}

async function ask(page: Page, text: string): Promise<void> {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

async function reply(page: Page, n: number) {
  const a = page.locator('article[data-role="assistant"]').nth(n);
  await a.and(page.locator('[data-done="true"]')).waitFor({ timeout: REPLY_TIMEOUT_MS });
  return {
    text: (await a.locator('.text').textContent()) ?? '',
    reason: (await a.getAttribute('data-done-reason')) ?? '',
    tokens: Number(await a.getAttribute('data-tokens')),
    error: await a.locator('.error').allTextContents(),
  };
}

describe('e2e RWKV-7 text chat (built app, headless Chromium)', () => {
  let dir = '';
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  const expected: Expected[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'visualrwkv-e2e-rwkv7-'));
    const files = writeSyntheticRwkv7(dir, TEST_RWKV7);
    // The Node engine's answers for the page's requests (Dawn in this process).
    const engine = await VisualRwkvEngine.create({ model: files.pth }, await testGpu());
    try {
      expect(engine.info.arch).toBe('rwkv7');
      for (const req of pageRequests()) {
        let text = '';
        let tokens = 0;
        let reason = '';
        const logits: Float32Array[] = [];
        for await (const c of engine.chat({ ...req, recordLogits: true })) {
          text += c.text;
          tokens = c.stats.tokens;
          reason = c.done ?? reason;
          if (c.logits) logits.push(c.logits);
        }
        expected.push({ text, tokens, reason, margin: minTop2Gap(logits) });
      }
    } finally {
      engine.dispose();
    }
    console.log(`[rwkv7 e2e] Node engine answers: ${expected.map((e) => `${JSON.stringify(e.text)} (${e.reason}, margin ${e.margin.toFixed(3)})`).join(' | ')}`);
    server = await startServer({ mounts: { '/synthetic/': dir } });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loads an RWKV-7 .pth by URL without an encoder; a question and a follow-up stream the Node engine answers', async () => {
    for (const e of expected) expect(e.margin, 'the synthetic model has a near-tie: pick other questions').toBeGreaterThan(MIN_MARGIN);
    const { context, page, log } = await openPage(browser!, `${server!.url}?model=/synthetic/visualrwkv7.pth&${PAGE_QUERY}`, { name: 'rwkv7' });
    try {
      await waitReady(page);
      const status = (await page.locator('#engine').textContent()) ?? '';
      expect(status).toMatch(/RWKV-7, 2 layers, width 64, vocabulary 65536/);
      expect(status).toMatch(/without an image encoder/);
      expect(await page.getByLabel('Temperature').inputValue()).toBe('0');

      for (let i = 0; i < QUESTIONS.length; i++) {
        await ask(page, QUESTIONS[i]!);
        const r = await reply(page, i);
        console.log(`[rwkv7 e2e] page reply ${i + 1}: ${JSON.stringify(r.text)} (${r.reason}, ${r.tokens} tokens)`);
        expect(r.error).toEqual([]);
        expect(r.text).toBe(expected[i]!.text);
        expect(r.tokens).toBe(expected[i]!.tokens);
        expect(r.reason).toBe(expected[i]!.reason);
      }
      expect(await page.locator('article[data-role="user"]').count()).toBe(2);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
