/**
 * Headless Chromium for end-to-end tests (playwright-core driving the system Chromium; browsers are never
 * downloaded). WebGPU runs on SwiftShader here; on a machine with a GPU set VISUALRWKV_REAL_GPU=1 to let Chromium
 * use it. A missing Chromium is a test failure, never a skip.
 *
 * @example
 * const browser = await launchBrowser();
 * const { page, log } = await openPage(browser, server.url);
 * await page.locator('#adapter[data-state="ready"]').waitFor();
 * expect(log.errors()).toEqual([]);
 * await browser.close();
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** The system Chromium (Debian's `chromium` package); override with CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags for a quiet, offline-friendly headless Chromium that does not touch the network on its own. */
export const BASE_ARGS = [
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Flags that turn WebGPU on in headless Chromium on Linux, backed by SwiftShader (CPU Vulkan). */
export const WEBGPU_ARGS = process.env.VISUALRWKV_REAL_GPU
  ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan']
  : [
      '--enable-unsafe-webgpu',
      '--enable-features=Vulkan',
      '--use-vulkan=swiftshader',
      '--use-webgpu-adapter=swiftshader',
      '--use-angle=swiftshader',
    ];

export interface LaunchOptions {
  /** Add WEBGPU_ARGS (default true). Without them this Chromium exposes `navigator.gpu` but finds no adapter. */
  webgpu?: boolean;
  /** More command-line flags. */
  args?: string[];
}

/** Launch headless Chromium. Throws a clear error if the executable is missing. */
export async function launchBrowser(options: LaunchOptions = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: end-to-end tests need it. ` +
        'Install it with `apt-get install -y chromium` (Debian) or set CHROMIUM_PATH. Browser downloads are not used.',
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...BASE_ARGS, ...(options.webgpu === false ? [] : WEBGPU_ARGS), ...(options.args ?? [])],
  });
}

/** What a page said: every console message and every uncaught error, in order. */
export interface PageLog {
  messages: { type: string; text: string }[];
  pageErrors: string[];
  /** Console messages of type 'error' plus uncaught page errors. */
  errors(): string[];
}

export interface OpenPageOptions {
  /** Script run in every frame before the page's own scripts (e.g. to stub `navigator.gpu`). */
  initScript?: string;
  /** Prefix for forwarded log lines (default 'page'). */
  name?: string;
}

/**
 * Open `url` in a fresh (incognito) context. Console messages and page errors are forwarded to the test output
 * and collected in `log`. Close the context (or the browser) when done.
 */
export async function openPage(
  browser: Browser,
  url: string,
  options: OpenPageOptions = {},
): Promise<{ context: BrowserContext; page: Page; log: PageLog }> {
  const name = options.name ?? 'page';
  const context = await browser.newContext();
  if (options.initScript) await context.addInitScript(options.initScript);
  const page = await context.newPage();
  const log: PageLog = {
    messages: [],
    pageErrors: [],
    errors() {
      return [...this.messages.filter((m) => m.type === 'error').map((m) => m.text), ...this.pageErrors];
    },
  };
  page.on('console', (m) => {
    log.messages.push({ type: m.type(), text: m.text() });
    console.log(`[${name} console.${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => {
    log.pageErrors.push(e.stack ?? e.message);
    console.log(`[${name} pageerror] ${e.stack ?? e.message}`);
  });
  page.on('crash', () => {
    log.pageErrors.push('page crashed');
    console.log(`[${name}] page crashed`);
  });
  page.on('requestfailed', (r) => console.log(`[${name} requestfailed] ${r.url()} ${r.failure()?.errorText ?? ''}`));
  await page.goto(url);
  return { context, page, log };
}
