import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';
import { InvalidArgumentError, WeightsFormatError } from '../../src/errors';
import {
  REPLACEMENT,
  StreamDecoder,
  WorldTokenizer,
  loadDefaultTokenizer,
  parsePythonLiteral,
} from '../../src/text/tokenizer';
import { readJson } from '../helpers/fixtures';

/** sha256 over `u8 byte_len ‖ bytes` for ids 1…65529, computed with Python `ast.literal_eval` + `str.encode`. */
const VOCAB_BYTES_SHA256 = 'f747db51f279e854ff92d888b7a051cda3ddd99d9befc492cf2355b25007f031';
/** Encoding 100 KB must stay interactive; measured ~10–20 ms on the CI container, 1 s leaves room for slow hosts. */
const ENCODE_100KB_MAX_MS = 1000;

interface EncodeCase { text: string; utf8_hex: string; ids: number[] }
interface DecodeCase {
  label: string;
  ids: number[];
  bytes_hex: string;
  valid_utf8: boolean;
  official_decode: string;
  replacement_decode: string;
}
const golden = readJson<{ encode: EncodeCase[]; decode: DecodeCase[] }>('tokenizer/tokenizer_golden.json');
const vocabText = readFileSync(fileURLToPath(new URL('../../data/rwkv_vocab_v20230424.txt', import.meta.url)), 'utf8');

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Deterministic PRNG for fuzz inputs (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random text mixing ASCII words, spaces/newlines, CJK, kana, Cyrillic, emoji (incl. ZWJ), and random BMP/astral. */
function randomText(r: () => number, n: number): string {
  const pools = [
    () => ['the', ' of', ' tower', 'User', ': ', 'Assistant', '\n\n', '  ', '\t', '123', ',', '.'][(r() * 12) | 0],
    () => String.fromCodePoint(0x4e00 + ((r() * 0x5000) | 0)),
    () => String.fromCodePoint(0x3041 + ((r() * 0x55) | 0)),
    () => String.fromCodePoint(0x0410 + ((r() * 0x40) | 0)),
    () => ['😀', '👨‍👩‍👧', '🇯🇵', '👍🏽', '\u200d', '\ufeff', '\ufffd'][(r() * 7) | 0],
    () => String.fromCodePoint((r() * 0xd7ff) | 0),
    () => String.fromCodePoint(0x10000 + ((r() * 0xfffff) | 0)),
    () => String.fromCharCode((r() * 128) | 0),
  ];
  let s = '';
  for (let i = 0; i < n; i++) s += pools[(r() * pools.length) | 0]();
  return s;
}

let tok: WorldTokenizer;
beforeAll(async () => {
  tok = await loadDefaultTokenizer();
});

describe('vocabulary', () => {
  test('ids, sizes and special tokens', () => {
    expect(tok.vocabSize).toBe(65530);
    expect(tok.has(0)).toBe(false);
    expect(tok.has(1)).toBe(true);
    expect(tok.has(65529)).toBe(true);
    expect(tok.has(65530)).toBe(false);
    expect(tok.has(1.5)).toBe(false);
    expect(tok.missingIds(65536)).toEqual([65530, 65531, 65532, 65533, 65534, 65535]);
    for (let b = 0; b < 256; b++) expect(Array.from(tok.tokenBytes(b + 1))).toEqual([b]);
    expect(tok.tokenBytes(261)).toEqual(new Uint8Array([10, 10]));
    expect(tok.tokenBytes(65529)).toEqual(new Uint8Array(128).fill(32));
    expect(() => tok.tokenBytes(0)).toThrow(InvalidArgumentError);
  });

  test('every token: bytes match Python literal_eval (sha256), byte lengths match the file, bytes are unique', () => {
    const lines = vocabText.split('\n').filter((l) => l.length > 0);
    expect(lines.length).toBe(65529);
    const h = createHash('sha256');
    const seen = new Set<string>();
    for (const line of lines) {
      const id = Number(line.slice(0, line.indexOf(' ')));
      const len = Number(line.slice(line.lastIndexOf(' ') + 1));
      const b = tok.tokenBytes(id);
      expect(b.length, `id ${id}`).toBe(len);
      expect(tok.decodeBytes([id])).toEqual(b);
      h.update(Uint8Array.of(len));
      h.update(b);
      seen.add(hex(b));
    }
    expect(h.digest('hex')).toBe(VOCAB_BYTES_SHA256);
    expect(seen.size).toBe(65529);
  });

  test('Python literal parsing', () => {
    const p = (s: string) => {
      const b = parsePythonLiteral(s);
      return b && hex(b);
    };
    expect(p(String.raw`'\x80'`)).toBe('c280'); // str: code point U+0080, not a raw byte
    expect(p(String.raw`b'\x80'`)).toBe('80'); // bytes: raw byte
    expect(p(String.raw`b'\xe4\xbd'`)).toBe('e4bd');
    expect(p(`"'"`)).toBe('27');
    expect(p(String.raw`'\''`)).toBe('27');
    expect(p(String.raw`'\"'`)).toBe('22');
    expect(p(String.raw`'\\'`)).toBe('5c');
    expect(p(String.raw`'\n\t\r'`)).toBe('0a090d');
    expect(p(String.raw`'\u2028'`)).toBe('e280a8');
    expect(p(String.raw`'\U0001f600'`)).toBe('f09f9880');
    expect(p(`'a b'`)).toBe('612062');
    expect(p(`'你'`)).toBe('e4bda0');
    expect(p(`'😀'`)).toBe('f09f9880');
    for (const bad of [`'abc`, `abc`, String.raw`'\q'`, String.raw`'\x8'`, String.raw`'\ud800'`, `b'é'`, `''x`]) {
      expect(parsePythonLiteral(bad), bad).toBeNull();
    }
  });

  test('malformed vocab files are rejected', () => {
    expect(() => new WorldTokenizer("1 'ab' 3\n")).toThrow(WeightsFormatError); // byte length mismatch
    expect(() => new WorldTokenizer("1 'a' 1\n1 'b' 1\n")).toThrow(/twice/);
    expect(() => new WorldTokenizer("1 'a' 1\n2 'a' 1\n")).toThrow(/same bytes/);
    expect(() => new WorldTokenizer("x 'a' 1\n")).toThrow(WeightsFormatError);
    expect(() => new WorldTokenizer("1 'a\n")).toThrow(WeightsFormatError);
    expect(() => new WorldTokenizer('')).toThrow(WeightsFormatError);
    expect(new WorldTokenizer("1 'a' 1\r\n2 'b c' 3\r\n").tokenBytes(2)).toEqual(new Uint8Array([98, 32, 99]));
  });
});

describe('encode', () => {
  test('spec §10.2 check vectors', () => {
    expect(tok.encode('The Eiffel tower is in the city of')).toEqual([
      6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706,
    ]);
    expect(tok.encode('User: ')).toEqual([24281, 59, 33]);
    expect(tok.encode('Assistant:')).toEqual([5585, 41693, 59]);
    expect(tok.encode('\n\n\n')).toEqual([3328]);
    expect(tok.encode('你好，世界')).toEqual([10464, 11685, 19137, 10267, 14610]);
    expect(tok.encode('')).toEqual([]);
  });

  test(`all ${golden.encode.length} golden encode entries`, () => {
    expect(golden.encode.length).toBe(193);
    for (const c of golden.encode) {
      expect(hex(new TextEncoder().encode(c.text)), c.text).toBe(c.utf8_hex);
      expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
      expect(tok.encodeBytes(Buffer.from(c.utf8_hex, 'hex')), JSON.stringify(c.text)).toEqual(c.ids);
      expect(tok.decode(c.ids)).toBe(c.text);
    }
  });

  test('greedy longest match backs off to the longest complete token (vocab without the intermediate prefix)', () => {
    let v = '';
    for (let b = 0; b < 256; b++) v += `${b + 1} b'\\x${b.toString(16).padStart(2, '0')}' 1\n`;
    v += "257 'abc' 3\n258 'abcde' 5\n259 'bcd' 3\n";
    const t = new WorldTokenizer(v);
    const a = (s: string) => s.charCodeAt(0) + 1;
    expect(t.encode('abcde')).toEqual([258]);
    expect(t.encode('abcdx')).toEqual([257, a('d'), a('x')]); // walks to "abcd", keeps "abc"; greedy, not optimal
    expect(t.encode('abcdabc')).toEqual([257, a('d'), 257]);
    expect(t.encode('xbcd')).toEqual([a('x'), 259]);
    expect(t.encode('ab')).toEqual([a('a'), a('b')]);
  });

  test('trie agrees with a naive longest-match over a Map on random text', () => {
    const byBytes = new Map<string, number>();
    for (let id = 1; id < tok.vocabSize; id++) byBytes.set(Buffer.from(tok.tokenBytes(id)).toString('latin1'), id);
    const naive = (bytes: Uint8Array): number[] => {
      const s = Buffer.from(bytes).toString('latin1');
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        for (let len = Math.min(128, s.length - i); len > 0; len--) {
          const id = byBytes.get(s.slice(i, i + len));
          if (id !== undefined) {
            out.push(id);
            i += len;
            break;
          }
        }
      }
      return out;
    };
    const r = prng(1);
    for (let k = 0; k < 200; k++) {
      const s = randomText(r, 1 + ((r() * 60) | 0));
      const bytes = new TextEncoder().encode(s);
      expect(tok.encodeBytes(bytes), JSON.stringify(s)).toEqual(naive(bytes));
    }
    const randomBytes = Uint8Array.from({ length: 4000 }, () => (r() * 256) | 0);
    expect(tok.encodeBytes(randomBytes)).toEqual(naive(randomBytes));
    const spaces = new Uint8Array(1000).fill(32); // whitespace runs longer than the longest token (128)
    expect(tok.encodeBytes(spaces)).toEqual(naive(spaces));
  });

  test('round trip decode(encode(s)) === s', () => {
    const fixed = [
      'Hello, world!',
      '\ufeffBOM at the start is kept',
      'NUL\u0000 and \u0001\u007f control',
      ' '.repeat(300) + '\n'.repeat(7) + '\t\t\r\n',
      '👨‍👩‍👧‍👦 🇯🇵 👍🏽 é e\u0301 Ω ℌ ﬁ',
      'User: <image>\n描述这张图片。\n\nAssistant:',
      'def f(x):\n    return x ** 2  # 注释\n',
      '안녕하세요 こんにちは Здравствуйте مرحبا שלום नमस्ते',
      '\ufffd literal replacement char',
      '\u{10ffff}\u{e0001}',
    ];
    for (const s of fixed) expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s);
    const r = prng(2);
    for (let k = 0; k < 300; k++) {
      const s = randomText(r, 1 + ((r() * 40) | 0));
      expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s);
    }
  });

  test('lone surrogates are sanitised to U+FFFD', () => {
    expect(tok.encode('a\ud800b')).toEqual(tok.encode('a\ufffdb'));
    expect(tok.encode('\udc00')).toEqual(tok.encode('\ufffd'));
    expect(tok.decode(tok.encode('x\ud83d'))).toBe('x\ufffd');
  });

  test(`encoding 100 KB takes < ${ENCODE_100KB_MAX_MS} ms`, () => {
    const r = prng(3);
    let s = '';
    while (s.length < 100_000) s += randomText(r, 50) + ' The quick brown fox jumps over the lazy dog. ';
    const n = new TextEncoder().encode(s).length;
    const t0 = performance.now();
    const ids = tok.encode(s);
    const ms = performance.now() - t0;
    console.log(`encode: ${s.length} chars / ${n} bytes → ${ids.length} ids in ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(ENCODE_100KB_MAX_MS);
    expect(tok.decode(ids)).toBe(s);
  });

  test('construction time', () => {
    const t0 = performance.now();
    const t = new WorldTokenizer(vocabText);
    const ms = performance.now() - t0;
    console.log(`new WorldTokenizer(vocab): ${ms.toFixed(0)} ms`);
    expect(t.encode('User: ')).toEqual([24281, 59, 33]);
  });
});

describe('decode', () => {
  test(`all ${golden.decode.length} golden decode entries (official and replacement)`, () => {
    expect(golden.decode.length).toBe(43);
    for (const c of golden.decode) {
      expect(tok.decode(c.ids), c.label).toBe(c.official_decode);
      expect(tok.decode(c.ids, 'official'), c.label).toBe(c.official_decode);
      expect(tok.decode(c.ids, 'replace'), c.label).toBe(c.replacement_decode);
      if (c.ids.every((id) => tok.has(id))) expect(hex(tok.decodeBytes(c.ids)), c.label).toBe(c.bytes_hex);
      else expect(() => tok.decodeBytes(c.ids), c.label).toThrow(InvalidArgumentError);
    }
  });

  test('unknown ids and a leading BOM', () => {
    expect(tok.decode([65530])).toBe(REPLACEMENT);
    expect(tok.decode([24281, 65535], 'replace')).toBe('User');
    expect(tok.decode([-1, 1922], 'replace')).toBe('hi');
    expect(tok.decode(tok.encode('\ufeff'))).toBe('\ufeff'); // Python keeps it; TextDecoder's default would strip it
    expect(tok.decode([])).toBe('');
    expect(tok.decode(new Int32Array([10464, 11685]))).toBe('你好');
  });
});

describe('StreamDecoder', () => {
  const stream = (ids: number[]) => {
    const sd = new StreamDecoder(tok);
    const chunks = ids.map((id) => sd.push(id));
    return { chunks, tail: sd.flush() };
  };

  test('golden encode texts fed one id at a time: no U+FFFD, concatenation equals decode', () => {
    for (const c of golden.encode) {
      const { chunks, tail } = stream(c.ids);
      if (!c.text.includes(REPLACEMENT)) for (const ch of chunks) expect(ch).not.toContain(REPLACEMENT);
      expect(chunks.join('') + tail, c.text).toBe(c.text);
      expect(tail).toBe('');
    }
  });

  test('emoji and CJK split across byte tokens are held back until complete', () => {
    // 😀😃 as f0 9f | 98 | 80 | f0 9f | 98 | 83
    expect(stream([3319, 153, 129, 3319, 153, 132]).chunks).toEqual(['', '', '😀', '', '', '😃']);
    // family emoji ZWJ sequence (golden prefixes)
    const fam = [3319, 146, 169, 9810, 3319, 146, 170, 9810, 3319, 146, 168];
    const f = stream(fam);
    expect(f.chunks.join('')).toBe('👨\u200d👩\u200d👧');
    for (const ch of f.chunks) expect(ch).not.toContain(REPLACEMENT);
    // 你 as three single-byte tokens; 你好世界 as whole-character tokens
    expect(stream([229, 190, 161]).chunks).toEqual(['', '', '你']);
    expect(stream([10464, 11685, 10267, 14610]).chunks).toEqual(['你', '好', '世', '界']);
    // emoji whose byte tokens the tokenizer really produces
    const e = tok.encode('🦄🌈 ok');
    expect(stream(e).chunks.join('')).toBe('🦄🌈 ok');
  });

  test('invalid sequences are emitted at once as U+FFFD and never stall', () => {
    // e6 then " world": e6 can still complete after the first push, not after the second
    expect(stream([231, 40213]).chunks).toEqual(['', '\ufffd world']);
    // c0 can never start a valid sequence: emitted immediately
    expect(stream([193, 129, 98]).chunks).toEqual(['\ufffd', '\ufffd', 'a']);
    // UTF-8 encoded surrogate ed a0 80: ed can start U+D000–U+D7FF, a0 rules that out
    expect(stream([238, 161, 129]).chunks).toEqual(['', '\ufffd\ufffd', '\ufffd']);
    expect(stream([256]).chunks).toEqual(['\ufffd']); // 0xff
    // truncated tail at the end: flushed as U+FFFD
    expect(stream([34550, 33, 231])).toEqual({ chunks: ['hello', ' ', ''], tail: '\ufffd' });
    // unknown ids add nothing
    expect(stream([0, 1922, 65535])).toEqual({ chunks: ['', 'hi', ''], tail: '' });
    // a held-back tail is not lost across many unknown ids
    expect(stream([3319, 0, 0, 153, 129]).chunks.join('')).toBe('😀');
  });

  test('fuzz: random ids; concatenation equals decode(ids, "replace"), nothing pending after an ASCII byte', () => {
    const r = prng(4);
    for (let k = 0; k < 300; k++) {
      const ids: number[] = [];
      const n = 1 + ((r() * 30) | 0);
      for (let i = 0; i < n; i++) {
        const u = r();
        ids.push(u < 0.6 ? 129 + ((r() * 128) | 0) : u < 0.8 ? 1 + ((r() * 256) | 0) : u < 0.95 ? (r() * 65536) | 0 : 0);
      }
      const sd = new StreamDecoder(tok);
      let out = '';
      for (let i = 0; i < ids.length; i++) {
        out += sd.push(ids[i]);
        if (tok.has(ids[i])) {
          const b = tok.tokenBytes(ids[i]);
          if (b[b.length - 1] < 0x80) expect(out).toBe(tok.decode(ids.slice(0, i + 1), 'replace'));
        }
      }
      out += sd.flush();
      expect(out, JSON.stringify(ids)).toBe(tok.decode(ids, 'replace'));
      if (!out.includes(REPLACEMENT) && ids.every((id) => tok.has(id))) expect(out).toBe(tok.decode(ids));
    }
  });

  test('reuse after flush and reset', () => {
    const sd = new StreamDecoder(tok);
    expect(sd.push(3319)).toBe('');
    expect(sd.flush()).toBe('\ufffd');
    expect(sd.push(3319) + sd.push(153) + sd.push(129)).toBe('😀');
    expect(sd.push(3319)).toBe('');
    sd.reset();
    expect(sd.push(98)).toBe('a');
    expect(tok.encode('\ufeffx').map((id) => sd.push(id)).join('') + sd.flush()).toBe('\ufeffx');
  });
});
