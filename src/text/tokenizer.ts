/**
 * RWKV "World" tokenizer (spec §10): the official `TRIE_TOKENIZER` — greedy longest match over UTF-8 bytes —
 * with a typed-array trie, the official strict decoder, a WHATWG replacement decoder and a streaming decoder.
 *
 * Vocabulary file `rwkv_vocab_v20230424.txt`: 65529 lines `<id> <python literal> <byte_len>`, ids 1…65529.
 * Id 0 is end-of-text (no bytes); the model head has 65536 rows, so ids 65530…65535 exist only there.
 *
 * @example
 * const tok = await loadDefaultTokenizer();
 * tok.encode('User: ');          // [24281, 59, 33]
 * tok.decode([10464, 11685]);    // '你好'
 */
import { InvalidArgumentError, WeightsFormatError } from '../errors';

/** Official decode result for invalid UTF-8 or an unknown id. */
export const REPLACEMENT = '\ufffd';

const utf8Encoder = new TextEncoder();
// ignoreBOM: Python's bytes.decode('utf-8') keeps a leading U+FEFF; TextDecoder would strip it by default.
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const replaceDecoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** How `decode` treats invalid UTF-8 / unknown ids. */
export type DecodeErrors =
  /** Python `TRIE_TOKENIZER.decode`: the single string "\ufffd" for the whole output on any error. */
  | 'official'
  /** WHATWG / Python `errors="replace"`: unknown ids add no bytes, each maximal invalid subpart → U+FFFD. */
  | 'replace';

/**
 * Parses one Python literal as written by `repr()` in the vocab file into its UTF-8 bytes (spec §10.1).
 * `'…'`/`"…"`: str literal — `\xHH` is the code point U+00HH (2 UTF-8 bytes when ≥ 0x80); `b'…'`: bytes literal —
 * `\xHH` is a raw byte. Escapes: \xHH \uHHHH \UHHHHHHHH \n \t \r \\ \' \". Returns null on a malformed literal.
 */
export function parsePythonLiteral(lit: string): Uint8Array | null {
  const isBytes = lit.charCodeAt(0) === 0x62; // 'b'
  const body = isBytes ? lit.slice(1) : lit;
  const q = body[0];
  if ((q !== "'" && q !== '"') || body.length < 2 || body[body.length - 1] !== q) return null;
  const s = body.slice(1, -1);
  if (!isBytes && s.indexOf('\\') < 0) return utf8Encoder.encode(s);

  const hex = (from: number, n: number): number => {
    const h = s.slice(from, from + n);
    return h.length === n && /^[0-9a-fA-F]+$/.test(h) ? parseInt(h, 16) : -1;
  };
  const out: number[] = []; // bytes (bytes literal) or code points (str literal)
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    if (c !== 0x5c) {
      if (isBytes && c > 0x7f) return null; // bytes literals hold only ASCII characters
      const cp = s.codePointAt(i)!;
      out.push(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = s[i + 1];
    let v: number;
    let len = 2;
    switch (e) {
      case 'x': v = hex(i + 2, 2); len = 4; break;
      case 'u': v = isBytes ? -1 : hex(i + 2, 4); len = 6; break;
      case 'U': v = isBytes ? -1 : hex(i + 2, 8); len = 10; break;
      case 'n': v = 0x0a; break;
      case 't': v = 0x09; break;
      case 'r': v = 0x0d; break;
      case '\\': v = 0x5c; break;
      case "'": v = 0x27; break;
      case '"': v = 0x22; break;
      default: v = -1;
    }
    // Lone surrogates cannot be UTF-8 encoded (Python's encode raises), so they are malformed here too.
    if (v < 0 || v > 0x10ffff || (!isBytes && v >= 0xd800 && v <= 0xdfff)) return null;
    out.push(v);
    i += len;
  }
  return isBytes ? Uint8Array.from(out) : utf8Encoder.encode(String.fromCodePoint(...out));
}

/** Smallest power of two ≥ n. */
function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * The World tokenizer. Build it from the vocab text (`new WorldTokenizer(text)`) or use `loadDefaultTokenizer()`.
 *
 * Storage: every token's bytes in one pool (`offsets[id]…offsets[id+1]`); the byte trie is a node → token table plus
 * an open-addressing hash of edges keyed by `node·256 + byte`, so encoding costs one hash probe per byte walked.
 */
export class WorldTokenizer {
  /** Number of id slots, 0…max id (65530 for the World vocab). Id 0 is end-of-text and has no bytes. */
  readonly vocabSize: number;
  private readonly pool: Uint8Array;
  private readonly offsets: Uint32Array; // (vocabSize + 1); token `id` is pool[offsets[id] .. offsets[id+1])
  private readonly known: Uint8Array; // (vocabSize) 1 when the id is in the vocab file
  private readonly nodeToken: Int32Array; // (nodes) id ending at this trie node, 0 = none; node 0 is the root
  private readonly edgeKeys: Int32Array; // (table) node·256 + byte, −1 = empty slot
  private readonly edgeNext: Int32Array; // (table) child node
  private readonly edgeShift: number;
  private readonly edgeMask: number;

  /**
   * @param vocabText contents of `rwkv_vocab_v20230424.txt` (or another vocab in the same format)
   * @param source name used in error messages
   * @throws WeightsFormatError on a malformed line, a byte-length mismatch, a duplicate id or duplicate bytes
   */
  constructor(vocabText: string, source = 'rwkv_vocab_v20230424.txt') {
    const entries: { id: number; bytes: Uint8Array }[] = [];
    let maxId = 0;
    let total = 0;
    const lines = vocabText.split('\n');
    for (let ln = 0; ln < lines.length; ln++) {
      let line = lines[ln];
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.length === 0) continue;
      const bad = (why: string): never => {
        throw new WeightsFormatError(`${source} line ${ln + 1}: ${why}: ${JSON.stringify(line.slice(0, 80))}`);
      };
      const a = line.indexOf(' ');
      const b = line.lastIndexOf(' ');
      if (a <= 0 || b <= a) bad('expected "<id> <literal> <byte_len>"');
      const idText = line.slice(0, a);
      const lenText = line.slice(b + 1);
      if (!/^\d+$/.test(idText) || !/^\d+$/.test(lenText)) bad('id and byte length must be integers');
      const id = Number(idText);
      const bytes = parsePythonLiteral(line.slice(a + 1, b));
      if (!bytes) bad('malformed Python literal');
      if (bytes!.length !== Number(lenText)) bad(`literal is ${bytes!.length} bytes, line says ${lenText}`);
      if (bytes!.length === 0 || id === 0) bad('empty token or id 0');
      entries.push({ id, bytes: bytes! });
      if (id > maxId) maxId = id;
      total += bytes!.length;
    }
    if (entries.length === 0) throw new WeightsFormatError(`${source}: empty vocabulary`);

    this.vocabSize = maxId + 1;
    this.pool = new Uint8Array(total);
    this.offsets = new Uint32Array(this.vocabSize + 1);
    this.known = new Uint8Array(this.vocabSize);
    const lens = new Uint32Array(this.vocabSize);
    const byId: (Uint8Array | undefined)[] = new Array(this.vocabSize);
    for (const { id, bytes } of entries) {
      if (byId[id]) throw new WeightsFormatError(`${source}: id ${id} appears twice`);
      byId[id] = bytes;
      lens[id] = bytes.length;
      this.known[id] = 1;
    }
    for (let id = 0, off = 0; id < this.vocabSize; id++) {
      this.offsets[id] = off;
      if (byId[id]) this.pool.set(byId[id]!, off);
      off += lens[id];
      this.offsets[id + 1] = off;
    }

    // Trie: at most one node per pool byte (+ root).
    const maxNodes = total + 1;
    const table = pow2AtLeast(2 * maxNodes);
    this.edgeShift = 32 - Math.log2(table);
    this.edgeMask = table - 1;
    this.edgeKeys = new Int32Array(table).fill(-1);
    this.edgeNext = new Int32Array(table);
    const nodeToken = new Int32Array(maxNodes);
    let nodes = 1;
    for (let id = 1; id < this.vocabSize; id++) {
      if (!this.known[id]) continue;
      let node = 0;
      for (let p = this.offsets[id]; p < this.offsets[id + 1]; p++) {
        const key = node * 256 + this.pool[p];
        let h = Math.imul(key, 0x9e3779b1) >>> this.edgeShift;
        while (this.edgeKeys[h] !== -1 && this.edgeKeys[h] !== key) h = (h + 1) & this.edgeMask;
        if (this.edgeKeys[h] === -1) {
          this.edgeKeys[h] = key;
          this.edgeNext[h] = nodes++;
        }
        node = this.edgeNext[h];
      }
      if (nodeToken[node] !== 0) {
        throw new WeightsFormatError(`${source}: ids ${nodeToken[node]} and ${id} have the same bytes`);
      }
      nodeToken[node] = id;
    }
    this.nodeToken = nodeToken.slice(0, nodes);
  }

  /** True when `id` is in the vocabulary (1…65529 for the World vocab; never 0). */
  has(id: number): boolean {
    return Number.isInteger(id) && id > 0 && id < this.vocabSize && this.known[id] === 1;
  }

  /**
   * Ids in 1…headSize−1 that have no bytes (65530…65535 for the World vocab with a 65536-row head) — candidates for
   * the sampler's `maskIds`. Id 0 is not listed: it is the end-of-text / stop token.
   */
  missingIds(headSize: number): number[] {
    const out: number[] = [];
    for (let id = 1; id < headSize; id++) if (!this.has(id)) out.push(id);
    return out;
  }

  /** A copy of the bytes of token `id`. @throws InvalidArgumentError if `id` is not in the vocabulary. */
  tokenBytes(id: number): Uint8Array {
    if (!this.has(id)) throw new InvalidArgumentError(`token id ${id} is not in the vocabulary`);
    return this.pool.slice(this.offsets[id], this.offsets[id + 1]);
  }

  /**
   * UTF-8 encodes `text` and tokenizes it. Lone surrogates become U+FFFD (where Python's `str.encode` would raise).
   * @example tok.encode('\n\n\n') // [3328]
   */
  encode(text: string): number[] {
    return this.encodeBytes(utf8Encoder.encode(text));
  }

  /** Greedy longest match over the byte trie (spec §10.2); every single byte is a token, so it always advances. */
  encodeBytes(bytes: Uint8Array): number[] {
    const out: number[] = [];
    const { edgeKeys, edgeNext, edgeShift, edgeMask, nodeToken } = this;
    const n = bytes.length;
    let i = 0;
    while (i < n) {
      let node = 0;
      let best = 0;
      let bestEnd = i + 1;
      for (let j = i; j < n; j++) {
        const key = node * 256 + bytes[j];
        let h = Math.imul(key, 0x9e3779b1) >>> edgeShift;
        let k: number;
        while ((k = edgeKeys[h]) !== key && k !== -1) h = (h + 1) & edgeMask;
        if (k === -1) break;
        node = edgeNext[h];
        const t = nodeToken[node];
        if (t !== 0) {
          best = t;
          bestEnd = j + 1;
        }
      }
      if (best === 0) throw new WeightsFormatError(`byte 0x${bytes[i].toString(16)} has no token in this vocabulary`);
      out.push(best);
      i = bestEnd;
    }
    return out;
  }

  /**
   * The concatenated bytes of `ids`.
   * @throws InvalidArgumentError on an id not in the vocabulary (as Python's `idx2token[i]` raises KeyError)
   */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return this.concat(ids, false);
  }

  /**
   * Bytes → text. `'official'` (default): the Python decoder — the single string "\ufffd" when the bytes are not
   * valid UTF-8 or an id is unknown (e.g. 0). `'replace'`: unknown ids are skipped, invalid bytes become U+FFFD.
   * @example tok.decode([229, 190]) // '\ufffd' (2 of the 3 bytes of 你)
   */
  decode(ids: ArrayLike<number>, errors: DecodeErrors = 'official'): string {
    if (errors === 'replace') return replaceDecoder.decode(this.concat(ids, true));
    for (let i = 0; i < ids.length; i++) if (!this.has(ids[i])) return REPLACEMENT;
    try {
      return strictDecoder.decode(this.concat(ids, false));
    } catch {
      return REPLACEMENT;
    }
  }

  /** Bytes of `ids`; unknown ids are skipped (`skipUnknown`) or throw. */
  private concat(ids: ArrayLike<number>, skipUnknown: boolean): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (this.has(id)) total += this.offsets[id + 1] - this.offsets[id];
      else if (!skipUnknown) throw new InvalidArgumentError(`token id ${id} (position ${i}) is not in the vocabulary`);
    }
    const out = new Uint8Array(total);
    for (let i = 0, o = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!this.has(id)) continue;
      const a = this.offsets[id];
      const b = this.offsets[id + 1];
      out.set(this.pool.subarray(a, b), o);
      o += b - a;
    }
    return out;
  }
}

/**
 * Incremental detokenizer for streaming generation.
 *
 * Rule (the WHATWG UTF-8 decoder in streaming mode): text is released as soon as it is known.
 * - Complete, valid characters are emitted at once.
 * - A trailing prefix of a character that may still complete (at most 3 bytes, e.g. the first 2 bytes of an emoji)
 *   is held back until the next token.
 * - A sequence that can never become valid (stray continuation byte, 0xC0/0xC1/0xF5–0xFF, overlong / surrogate /
 *   > U+10FFFF prefixes, a lead byte followed by a non-continuation byte) is emitted immediately as U+FFFD per
 *   maximal invalid subpart, so an invalid byte never blocks the stream.
 * - Unknown ids (0, 65530…) add no bytes. `flush()` emits a held-back tail as U+FFFD.
 *
 * Hence the concatenation of every `push` and the final `flush` equals `tok.decode(ids, 'replace')`, and equals the
 * official `tok.decode(ids)` whenever the bytes are valid UTF-8. (The official app instead waits until the pending
 * tokens decode without U+FFFD, which stalls forever after an invalid byte or a literal U+FFFD in the output.)
 *
 * @example
 * const sd = new StreamDecoder(tok);
 * sd.push(3319); // '' (f0 9f: half an emoji)
 * sd.push(153);  // ''
 * sd.push(129);  // '😀'
 */
export class StreamDecoder {
  private decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  constructor(private readonly tokenizer: WorldTokenizer) {}

  /** Adds one token; returns the text that became final (possibly ''). */
  push(id: number): string {
    if (!this.tokenizer.has(id)) return '';
    return this.decoder.decode(this.tokenizer.tokenBytes(id), { stream: true });
  }

  /** Ends the stream: returns any held-back incomplete tail as U+FFFD and resets for reuse. */
  flush(): string {
    return this.decoder.decode();
  }

  /** Drops any held-back bytes without emitting them. */
  reset(): void {
    this.decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  }
}

let defaultTokenizer: Promise<WorldTokenizer> | undefined;

/**
 * The World tokenizer from the bundled `data/rwkv_vocab_v20230424.txt` (inlined with `?raw` into a separate chunk
 * of the browser and Node builds, loaded on first call; parsed once and cached).
 * @example const tok = await loadDefaultTokenizer();
 */
export function loadDefaultTokenizer(): Promise<WorldTokenizer> {
  defaultTokenizer ??= import('../../data/rwkv_vocab_v20230424.txt?raw').then(
    (m) => new WorldTokenizer(m.default, 'rwkv_vocab_v20230424.txt'),
    (e: unknown) => {
      defaultTokenizer = undefined; // let a later call retry
      throw e;
    },
  );
  return defaultTokenizer;
}
