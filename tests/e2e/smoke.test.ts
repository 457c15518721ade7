/**
 * End-to-end smoke test: the built app in real headless Chromium (WebGPU on SwiftShader here).
 * The page must find an adapter, run a WGSL kernel and show the result, with no console errors; without WebGPU it
 * must say so helpfully. Also checks the test server itself (cross-origin isolation, mounted fixtures with Range).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, openPage } from '../helpers/browser';
import { ROOT, startServer, type TestServer } from '../helpers/server';

/** Generous: the first SwiftShader device + pipeline compile in Chromium takes a few seconds on 2 CPU cores. */
const READY_TIMEOUT_MS = 60_000;
const FIXTURE = 'index.json';

/** Removes navigator.gpu before any page script runs: how a browser without WebGPU looks. */
const NO_WEBGPU = `Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });`;

describe('e2e smoke (built app, headless Chromium)', () => {
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  let plainBrowser: Browser | undefined;

  beforeAll(async () => {
    server = await startServer({ mounts: { '/fixtures/': 'tests/fixtures' } });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await plainBrowser?.close();
    await browser?.close();
    await server?.close();
  });

  it('shows the WebGPU adapter and passes the in-browser kernel self-test', async () => {
    const { context, page, log } = await openPage(browser!, server!.url);
    try {
      expect(await page.title()).toBe('VisualRWKV');
      const adapter = page.locator('#adapter');
      const selftest = page.locator('#selftest');
      await page.locator('#adapter:not([data-state="pending"])').waitFor({ timeout: READY_TIMEOUT_MS });
      expect(await adapter.getAttribute('data-state'), (await adapter.textContent()) ?? '').toBe('ready');
      await page.locator('#selftest:not([data-state="pending"])').waitFor({ timeout: READY_TIMEOUT_MS });
      const selfText = (await selftest.textContent()) ?? '';
      expect(await selftest.getAttribute('data-state'), selfText).toBe('pass');
      const name = ((await adapter.textContent()) ?? '').trim();
      console.log(`[smoke] adapter: ${name} | ${await page.locator('#features').textContent()} | ${selfText}`);
      expect(name.length).toBeGreaterThan(0);
      expect(name).not.toBe('unknown adapter');
      // COOP/COEP from vite.config.ts reach the page (multi-threaded ORT WASM needs them later).
      expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('reads settings from a link whose path starts with // and rewrites the address without a page error', async () => {
    // `location.pathname` is then '//', which as a relative URL would mean another host (replaceState throws).
    const { context, page, log } = await openPage(browser!, `${server!.url}/?max_tokens=33&temperature=0.7`);
    try {
      await page.locator('#adapter:not([data-state="pending"])').waitFor({ timeout: READY_TIMEOUT_MS });
      expect(await page.locator('#max_tokens').inputValue()).toBe('33');
      await page.getByText('Settings', { exact: true }).click(); // open the settings panel
      await page.locator('#max_tokens').fill('34');
      await page.locator('#max_tokens').dispatchEvent('change');
      await expect.poll(() => new URL(page.url()).searchParams.get('max_tokens')).toBe('34');
      expect(new URL(page.url()).pathname).toBe('//');
      expect(new URL(page.url()).searchParams.get('temperature')).toBe('0.7');
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('fits a phone-sized screen (400 px) without horizontal scrolling, settings open', async () => {
    const { context, page, log } = await openPage(browser!, server!.url);
    try {
      await page.setViewportSize({ width: 400, height: 800 });
      await page.locator('#adapter:not([data-state="pending"])').waitFor({ timeout: READY_TIMEOUT_MS });
      await page.getByText('Settings', { exact: true }).click();
      const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      expect(scroll).toBeLessThanOrEqual(client);
      for (const box of await page.locator('fieldset').evaluateAll((fs) => fs.map((f) => f.getBoundingClientRect().right))) {
        expect(box).toBeLessThanOrEqual(client);
      }
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('serves mounted directories on the same origin, with Range requests', async () => {
    const disk = readFileSync(join(ROOT, 'tests/fixtures', FIXTURE));
    const { context, page, log } = await openPage(browser!, server!.url);
    try {
      const got = await page.evaluate(async (path) => {
        const part = await fetch(path, { headers: { Range: 'bytes=5-24' } });
        const full = await fetch(path);
        return {
          status: part.status,
          range: part.headers.get('content-range'),
          bytes: Array.from(new Uint8Array(await part.arrayBuffer())),
          fullStatus: full.status,
          fullLength: (await full.arrayBuffer()).byteLength,
        };
      }, `/fixtures/${FIXTURE}`);
      expect(got.status).toBe(206);
      expect(got.range).toBe(`bytes 5-24/${disk.length}`);
      expect(got.bytes).toEqual(Array.from(disk.subarray(5, 25)));
      expect(got.fullStatus).toBe(200);
      expect(got.fullLength).toBe(disk.length);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
    // Edge cases straight from Node: suffix range, unsatisfiable range, missing file, escaping the mount.
    const url = `${server!.url}fixtures/${FIXTURE}`;
    const suffix = await fetch(url, { headers: { Range: 'bytes=-7' } });
    expect(suffix.status).toBe(206);
    expect(Buffer.from(await suffix.arrayBuffer())).toEqual(disk.subarray(disk.length - 7));
    const past = await fetch(url, { headers: { Range: `bytes=${disk.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${disk.length}`);
    expect((await fetch(`${server!.url}fixtures/no-such-file.bin`)).status).toBe(404);
    expect((await fetch(`${server!.url}fixtures/..%2Fhelpers%2Fserver.ts`)).status).toBe(403);
  });

  it('explains how to get WebGPU when navigator.gpu is missing', async () => {
    const { context, page, log } = await openPage(browser!, server!.url, { initScript: NO_WEBGPU, name: 'no-gpu' });
    try {
      const adapter = page.locator('#adapter');
      await page.locator('#adapter:not([data-state="pending"])').waitFor({ timeout: READY_TIMEOUT_MS });
      expect(await adapter.getAttribute('data-state')).toBe('unavailable');
      const text = (await adapter.textContent()) ?? '';
      expect(text).toContain('navigator.gpu is undefined');
      expect(text).toMatch(/Chrome and Edge 113\+/);
      expect(text).toMatch(/--enable-unsafe-webgpu/);
      expect(await page.locator('#selftest').getAttribute('data-state')).toBe('skipped');
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('explains how to get WebGPU when the browser finds no adapter (Chromium without WebGPU flags)', async () => {
    // This Chromium exposes navigator.gpu on Linux but returns no adapter unless the WebGPU flags are given:
    // the same situation as a blocklisted GPU.
    plainBrowser = await launchBrowser({ webgpu: false });
    const { context, page, log } = await openPage(plainBrowser, server!.url, { name: 'no-adapter' });
    try {
      const adapter = page.locator('#adapter');
      await page.locator('#adapter:not([data-state="pending"])').waitFor({ timeout: READY_TIMEOUT_MS });
      expect(await adapter.getAttribute('data-state')).toBe('unavailable');
      const text = (await adapter.textContent()) ?? '';
      expect(text).toContain('no GPU adapter was found');
      expect(text).toMatch(/Safari 26\+/);
      expect(await page.locator('#selftest').getAttribute('data-state')).toBe('skipped');
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

describe('e2e smoke (vite dev server)', () => {
  let server: TestServer | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    server = await startServer({ mode: 'dev' });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('runs the same page from source (dev server, no build)', async () => {
    const { context, page, log } = await openPage(browser!, server!.url, { name: 'dev' });
    try {
      await page.locator('#selftest:not([data-state="pending"])').waitFor({ timeout: READY_TIMEOUT_MS });
      expect(await page.locator('#adapter').getAttribute('data-state')).toBe('ready');
      expect(await page.locator('#selftest').getAttribute('data-state')).toBe('pass');
      expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true);
      expect(log.errors()).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
