/**
 * The transcript: one `<article data-role="user|assistant">` per message. An assistant article streams its text,
 * shows what the engine is doing before the first token (encoding the image, reading the prompt) and the reply's
 * stats, and carries them as attributes for scripts and tests:
 * data-done ("false" → "true"), data-done-reason (stop | length | interrupted | error), data-tokens,
 * data-encoder-ran, data-tokens-per-second, data-ttft-ms.
 */
import type { ChunkStats, Progress, TokenChunk } from '../types';
import { formatDuration } from './progress';

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(2)} s` : formatDuration(ms / 1000);
}

const DONE_TEXT: Record<string, string> = {
  stop: 'finished',
  length: 'stopped at the token limit',
  interrupted: 'stopped',
  error: 'failed',
};

/** One streaming reply. */
export class AssistantMessage {
  readonly el: HTMLElement;
  private readonly text: HTMLElement;
  private readonly textNode = document.createTextNode('');
  private readonly activity: HTMLElement;
  private readonly stats: HTMLElement;
  private last: ChunkStats | null = null;

  constructor(
    private readonly log: Transcript,
    /** Whether this turn sent an image (the stats then say if the encoder ran or the cache answered). */
    private readonly withImage: boolean,
  ) {
    this.el = el('article', 'message assistant');
    this.el.dataset.role = 'assistant';
    this.el.dataset.done = 'false';
    this.el.setAttribute('aria-busy', 'true');
    this.el.append(el('h3', 'who', 'VisualRWKV'));
    this.activity = el('p', 'activity', withImage ? 'Preparing the image…' : 'Reading your message…');
    this.text = el('div', 'text');
    this.text.append(this.textNode);
    this.stats = el('p', 'stats');
    this.el.append(this.activity, this.text, this.stats);
  }

  /** Engine progress while this reply is being prepared (image encoding, prompt prefill). */
  progress(p: Progress): void {
    if (this.el.dataset.tokens) return;
    if (p.stage === 'image') {
      const steps = ['Decoding the image…', 'Running the image encoder…', 'Projecting the image features…', 'Image ready.'];
      this.activity.textContent = steps[Math.min(p.loaded, 3)]!;
    } else if (p.stage === 'prefill') {
      this.activity.textContent = p.loaded < p.total ? `Reading the prompt (${p.total} rows)…` : 'Thinking…';
    }
  }

  /** Add one streamed chunk. */
  push(c: TokenChunk): void {
    if (c.stats.tokens > 0) this.activity.hidden = true;
    this.textNode.appendData(c.text);
    this.setStats(c.stats);
    if (c.done) this.finish(c.done);
    this.log.follow();
  }

  /** Mark the reply as ended (idempotent). */
  finish(reason: 'stop' | 'length' | 'interrupted' | 'error'): void {
    if (this.el.dataset.done === 'true') return;
    this.activity.hidden = true;
    this.el.dataset.doneReason = reason;
    this.el.dataset.done = 'true';
    this.el.removeAttribute('aria-busy');
    this.setStats(this.last);
  }

  /** End the reply with an error message. */
  fail(message: string): void {
    const p = el('p', 'error', message);
    p.setAttribute('role', 'alert');
    this.el.insertBefore(p, this.stats);
    this.finish('error');
    this.log.follow();
  }

  /** The reply's text so far. */
  get textContent(): string {
    return this.text.textContent ?? '';
  }

  private setStats(s: ChunkStats | null): void {
    if (s) this.last = s;
    const parts: string[] = [];
    const d = this.el.dataset;
    if (s) {
      d.tokens = String(s.tokens);
      d.tokensPerSecond = s.tokensPerSecond.toFixed(2);
      d.ttftMs = String(Math.round(s.timeToFirstTokenMs));
      d.encoderRan = String(s.encoderRan);
      parts.push(`${s.tokens} token${s.tokens === 1 ? '' : 's'}`);
      if (s.tokensPerSecond > 0) parts.push(`${s.tokensPerSecond.toFixed(1)} tokens/s`);
      if (s.timeToFirstTokenMs > 0) parts.push(`first token after ${formatMs(s.timeToFirstTokenMs)}`);
      if (this.withImage) parts.push(s.encoderRan ? 'image encoder ran' : 'image encoder skipped (cached image)');
    }
    const reason = d.done === 'true' ? d.doneReason : undefined;
    if (reason) parts.push(DONE_TEXT[reason] ?? reason);
    this.stats.textContent = parts.join(' · ');
  }
}

/** The message list. */
export class Transcript {
  private urls: string[] = [];

  constructor(private readonly log: HTMLElement) {}

  /** Add the user's message (with a thumbnail of the image it sent, if any). */
  addUser(text: string, image?: { blob: Blob; name: string }): HTMLElement {
    const a = el('article', 'message user');
    a.dataset.role = 'user';
    a.append(el('h3', 'who', 'You'));
    if (image) {
      const url = URL.createObjectURL(image.blob);
      this.urls.push(url);
      const img = el('img', 'thumb');
      img.src = url;
      img.alt = `Image sent: ${image.name}`;
      a.append(img);
    }
    a.append(el('div', 'text', text));
    this.add(a);
    return a;
  }

  addAssistant(withImage: boolean): AssistantMessage {
    const m = new AssistantMessage(this, withImage);
    this.add(m.el);
    return m;
  }

  /** A note between messages (e.g. a new conversation started). */
  note(text: string): void {
    const p = el('p', 'divider', text);
    p.setAttribute('role', 'separator');
    this.add(p);
  }

  clear(): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
    this.log.replaceChildren();
  }

  get empty(): boolean {
    return this.log.childElementCount === 0;
  }

  /** Keep the newest text in view unless the reader scrolled up. */
  follow(): void {
    const box = this.log;
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 80) box.scrollTop = box.scrollHeight;
  }

  private add(e: HTMLElement): void {
    const stick = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
    this.log.append(e);
    if (stick) this.log.scrollTop = this.log.scrollHeight;
  }
}
