/** Safe pickle reader: state-dict pickles (protocol 2 and 4), refused globals, malformed input. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { UnsafePickleError, WeightsFormatError } from '../../src/errors';
import { PyDict, PyList, PyTuple, TensorRef, isAllowedGlobal, unpickle, type PyValue } from '../../src/weights/pickle';
import { openCheckpoint } from '../../src/weights/checkpoint';
import { bytesSource } from '../../src/weights/source';
import { openZip } from '../../src/weights/zip';
import { fixturePath } from '../helpers/fixtures';
import { contiguousSpec, OP, PickleWriter, pthWithPickle, stateDictPickle, type TensorSpec } from '../helpers/pickle';

const spec = (storage: string, shape: number[], extra: Partial<TensorSpec> = {}): TensorSpec => ({
  ...contiguousSpec(storage, 'BF16', shape),
  ...extra,
});

/** Assert `fn` throws exactly this error class (WeightsFormatError must not be an UnsafePickleError and vice versa). */
function expectThrows(fn: () => unknown, cls: typeof WeightsFormatError | typeof UnsafePickleError, msg?: RegExp): Error {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(cls);
  if (msg) expect((err as Error).message).toMatch(msg);
  return err as Error;
}

/** A seeded PRNG (mulberry32) so fuzz cases are reproducible. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function fixturePickle(model: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(readFileSync(fixturePath(`models/${model}/visualrwkv.pth`)));
  const zip = await openZip(bytesSource(bytes, model));
  const name = [...zip.entries.keys()].find((n) => n.endsWith('/data.pkl'))!;
  return zip.readMember(name);
}

describe('state-dict pickles', () => {
  const entries: [string, TensorSpec][] = [
    ['a.weight', spec('0', [3, 4])],
    ['b', spec('1', [5])],
    ['big', spec('2', [70000, 2], { offset: 3_000_000_000, storageNumel: 3_000_140_000 })],
    ['t', spec('0', [4, 3], { stride: [1, 4] })],
  ];

  for (const protocol of [2, 4] as const) {
    for (const metadata of [false, true]) {
      for (const parameters of [false, true]) {
        it(`protocol ${protocol}, _metadata ${metadata}, nn.Parameter ${parameters}`, () => {
          const v = unpickle(stateDictPickle(entries, { protocol, metadata, parameters }));
          expect(v).toBeInstanceOf(PyDict);
          const d = v as PyDict;
          expect([...d.map.keys()]).toEqual(entries.map((e) => e[0]));
          for (const [name, s] of entries) {
            const t = d.map.get(name) as TensorRef;
            expect(t).toBeInstanceOf(TensorRef);
            expect(t.shape).toEqual(s.shape);
            expect(t.stride).toEqual(s.stride);
            expect(t.storageOffset).toBe(s.offset);
            expect(t.storage.key).toBe(s.storage);
            expect(t.storage.numel).toBe(s.storageNumel);
            expect(t.storage.dtype).toBe('BF16');
            expect(t.storage.location).toBe('cpu');
          }
          if (metadata) expect(d.attrs?.map.get('_metadata')).toBeInstanceOf(PyDict);
        });
      }
    }
  }

  it('reads every fixture data.pkl (as written by torch.save) into tensors', async () => {
    for (const m of ['rwkv6_tiny', 'rwkv7_tiny', 'rwkv6_vocab65536']) {
      const d = unpickle(await fixturePickle(m)) as PyDict;
      expect(d.map.size).toBeGreaterThan(50);
      for (const v of d.map.values()) expect(v).toBeInstanceOf(TensorRef);
      expect((d.map.get('rwkv.emb.weight') as TensorRef).storage.dtype).toBe('BF16');
    }
  });

  it('decodes scalars, strings, bytes, lists and memo references', () => {
    const w = new PickleWriter().proto(2).op(OP.EMPTY_LIST, OP.BINPUT, 0, OP.MARK);
    w.int(7).int(300).int(-5).int(2 ** 40).int(-(2 ** 40));
    w.op(OP.BINFLOAT, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0); // 1.5 big-endian
    w.str('héllo').op(OP.SHORT_BINSTRING, 2).ascii('ab').op(OP.BINSTRING).u32(1).ascii('c');
    w.op(OP.SHORT_BINBYTES, 2, 1, 2).op(OP.BINBYTES).u32(1).op(9);
    w.op(OP.NONE, OP.NEWTRUE, OP.NEWFALSE, OP.BINGET, 0, OP.LONG_BINPUT).u32(70000).op(OP.LONG_BINGET).u32(70000);
    w.op(OP.APPENDS, OP.STOP);
    const l = unpickle(w.bytes()) as PyList;
    expect(l).toBeInstanceOf(PyList);
    const items = l.items;
    expect(items.slice(0, 11)).toEqual([7, 300, -5, 2 ** 40, -(2 ** 40), 1.5, 'héllo', 'ab', 'c', new Uint8Array([1, 2]), new Uint8Array([9])]);
    expect(items.slice(11, 14)).toEqual([null, true, false]);
    expect(items[14]).toBe(l); // a list containing itself: no recursion, no hang
    expect(items[15]).toBe(l);
  });

  it('LONG1 beyond 2^53 stays exact as a bigint', () => {
    const w = new PickleWriter().proto(2).op(OP.LONG1, 9, 1, 0, 0, 0, 0, 0, 0, 0, 1, OP.STOP);
    expect(unpickle(w.bytes())).toBe(2n ** 64n + 1n);
  });
});

describe('refused globals (UnsafePickleError naming the global; nothing is called)', () => {
  /** `fn(arg)` the classic way: GLOBAL, arg tuple, REDUCE. */
  const callGlobal = (module: string, name: string, arg: string) =>
    new PickleWriter().proto(2).global(module, name).str(arg).op(OP.TUPLE1, OP.REDUCE, OP.STOP).bytes();
  const callStackGlobal = (module: string, name: string, arg: string) =>
    new PickleWriter().proto(4).op(OP.FRAME, 0, 0, 0, 0, 0, 0, 0, 0).stackGlobal(module, name).op(OP.MEMOIZE).str(arg, true).op(OP.TUPLE1, OP.REDUCE, OP.STOP).bytes();
  const cases: [string, string, string][] = [
    ['os', 'system', 'touch /tmp/pwned'],
    ['posix', 'system', 'touch /tmp/pwned'],
    ['builtins', 'eval', 'globalThis.__pwned = 1'],
    ['builtins', 'exec', 'globalThis.__pwned = 1'],
    ['__builtin__', 'getattr', 'x'],
    ['subprocess', 'Popen', 'id'],
    ['torch', 'load', 'x'],
    ['torch.storage', '_load_from_bytes', 'x'],
    ['torch._utils', '_rebuild_tensor_v3', 'x'],
    ['collections', 'defaultdict', 'x'],
  ];
  for (const [module, name, arg] of cases) {
    for (const [form, build] of [['GLOBAL', callGlobal], ['STACK_GLOBAL', callStackGlobal]] as const) {
      it(`${module}.${name} via ${form}, in a .pth`, async () => {
        const pkl = build(module, name, arg);
        const err = expectThrows(() => unpickle(pkl), UnsafePickleError) as UnsafePickleError;
        expect(err.global).toBe(`${module}.${name}`);
        expect(err.message).toContain(`${module}.${name}`);
        const src = bytesSource(pthWithPickle(pkl), 'evil.pth');
        await expect(openCheckpoint(src)).rejects.toThrow(UnsafePickleError);
        await expect(openCheckpoint(src)).rejects.toMatchObject({ global: `${module}.${name}` });
        expect((globalThis as Record<string, unknown>).__pwned).toBeUndefined();
      });
    }
  }

  it('refuses a bad global hidden after a valid state dict (checked when named, not when called)', () => {
    const ok = stateDictPickle([['x', spec('0', [2])]]);
    const w = new PickleWriter().op(...ok.subarray(0, ok.length - 1)).global('os', 'system').op(OP.POP, OP.STOP);
    expectThrows(() => unpickle(w.bytes()), UnsafePickleError, /os\.system/);
  });

  it('INST names its class: refused as unsafe, or as unsupported when allowed', () => {
    expectThrows(() => unpickle(new PickleWriter().proto(2).op(OP.MARK, OP.INST).ascii('os\nsystem\n').op(OP.STOP).bytes()), UnsafePickleError, /os\.system/);
    expectThrows(() => unpickle(new PickleWriter().proto(2).op(OP.MARK, OP.INST).ascii('collections\nOrderedDict\n').op(OP.STOP).bytes()), WeightsFormatError, /INST/);
  });

  it('the allow-list is exactly the state-dict globals', () => {
    expect(isAllowedGlobal('collections', 'OrderedDict')).toBe(true);
    expect(isAllowedGlobal('torch._utils', '_rebuild_tensor_v2')).toBe(true);
    expect(isAllowedGlobal('torch', 'BFloat16Storage')).toBe(true);
    expect(isAllowedGlobal('torch', 'toString')).toBe(false); // no prototype leaks
    expect(isAllowedGlobal('torch', 'constructor')).toBe(false);
    expect(isAllowedGlobal('torch', 'Tensor')).toBe(false);
  });
});

describe('malformed pickles → WeightsFormatError', () => {
  const odReduce = () => new PickleWriter().proto(2).global('collections', 'OrderedDict').op(OP.EMPTY_TUPLE, OP.REDUCE);
  const bad: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /empty/],
    ['unknown opcode', new Uint8Array([0x80, 2, 0xff, 0x2e]), /unsupported opcode/],
    ['protocol 0 text INT', new Uint8Array([0x49, 0x31, 0x0a, 0x2e]), /unsupported opcode/],
    ['protocol 9', new Uint8Array([0x80, 9, 0x2e]), /protocol 9/],
    ['stack underflow', new Uint8Array([0x80, 2, OP.TUPLE2, 0x2e]), /underflow/],
    ['no MARK', new Uint8Array([0x80, 2, OP.NONE, OP.TUPLE, 0x2e]), /MARK/],
    ['no STOP', new Uint8Array([0x80, 2, OP.NONE]), /no STOP/],
    ['BINGET of unset memo', new Uint8Array([0x80, 2, OP.BINGET, 3, 0x2e]), /memo key 3/],
    ['BINUNICODE past the end', new PickleWriter().proto(2).op(OP.BINUNICODE).u32(0xffffffff).bytes(), /truncated/],
    ['invalid UTF-8', new Uint8Array([0x80, 2, OP.SHORT_BINUNICODE, 2, 0xc3, 0x28, 0x2e]), /UTF-8/],
    ['unterminated GLOBAL', new Uint8Array([0x80, 2, OP.GLOBAL, 0x6f, 0x73]), /unterminated/],
    ['SETITEM on a list', new Uint8Array([0x80, 2, OP.EMPTY_LIST, OP.NONE, OP.NONE, OP.SETITEM, 0x2e]), /not a dict/],
    ['APPEND on a dict', new Uint8Array([0x80, 2, OP.EMPTY_DICT, OP.NONE, OP.APPEND, 0x2e]), /not a list/],
    ['list as dict key', new Uint8Array([0x80, 2, OP.EMPTY_DICT, OP.EMPTY_LIST, OP.NONE, OP.SETITEM, 0x2e]), /dict key/],
    ['REDUCE of a non-global', new Uint8Array([0x80, 2, OP.NONE, OP.EMPTY_TUPLE, OP.REDUCE, 0x2e]), /call of None/],
    ['OrderedDict with args', odReduce().op(OP.POP).global('collections', 'OrderedDict').op(OP.EMPTY_LIST, OP.TUPLE1, OP.REDUCE, OP.STOP).bytes(), /arguments/],
    ['REDUCE of a storage class', new PickleWriter().proto(2).global('torch', 'FloatStorage').op(OP.EMPTY_TUPLE, OP.REDUCE, OP.STOP).bytes(), /cannot be called/],
    ['NEWOBJ of a rebuild function', new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v2').op(OP.EMPTY_TUPLE, OP.NEWOBJ, OP.STOP).bytes(), /NEWOBJ/],
    ['BUILD on a list', new Uint8Array([0x80, 2, OP.EMPTY_LIST, OP.NONE, OP.BUILD, 0x2e]), /BUILD on PyList/],
    ['BUILD with tuple state', odReduce().op(OP.EMPTY_TUPLE, OP.BUILD, OP.STOP).bytes(), /tuple|PyTuple/],
    ['persistent id not a storage tuple', new Uint8Array([0x80, 2, OP.NONE, OP.BINPERSID, 0x2e]), /persistent id/],
    ['rebuild with a non-storage', new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v2').op(OP.MARK, OP.NONE).int(0).tupleOf([2]).tupleOf([1]).op(OP.NEWFALSE, OP.NONE, OP.TUPLE, OP.REDUCE, OP.STOP).bytes(), /not a storage/],
  ];
  for (const [what, bytes, msg] of bad) it(what, () => expectThrows(() => unpickle(bytes), WeightsFormatError, msg));

  it('NEWOBJ of OrderedDict builds a dict', () => {
    const v = unpickle(new PickleWriter().proto(2).global('collections', 'OrderedDict').op(OP.EMPTY_TUPLE, OP.NEWOBJ, OP.STOP).bytes());
    expect(v).toBeInstanceOf(PyDict);
  });

  it('a state dict cut at every byte is refused cleanly', () => {
    const pkl = stateDictPickle([['a', spec('0', [3, 4])], ['b', spec('1', [5], { storageNumel: 9, offset: 4 })]], { metadata: true });
    for (let cut = 0; cut < pkl.length; cut++) expectThrows(() => unpickle(pkl.subarray(0, cut)), WeightsFormatError);
  });

  it('a real torch.save pickle cut at 300 points is refused cleanly', async () => {
    const pkl = await fixturePickle('rwkv7_tiny');
    for (let i = 0; i < 300; i++) {
      const cut = Math.floor((i * pkl.length) / 300);
      expectThrows(() => unpickle(pkl.subarray(0, cut)), WeightsFormatError);
    }
  });

  it('random byte corruption gives only WeightsFormatError / UnsafePickleError, or a value', async () => {
    const pkl = await fixturePickle('rwkv6_tiny');
    const rand = rng(1234);
    const counts = { ok: 0, format: 0, unsafe: 0 };
    for (let trial = 0; trial < 1500; trial++) {
      const b = pkl.slice();
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      let v: PyValue | undefined;
      try {
        v = unpickle(b);
        counts.ok++;
      } catch (e) {
        if (e instanceof UnsafePickleError) counts.unsafe++;
        else if (e instanceof WeightsFormatError) counts.format++;
        else throw new Error(`trial ${trial}: unexpected ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      }
      void v;
    }
    expect(counts.format).toBeGreaterThan(100);
    expect(counts.ok + counts.format + counts.unsafe).toBe(1500);
  });

  it('tuples keep identity semantics', () => {
    const v = unpickle(new PickleWriter().proto(2).int(1).int(2).op(OP.TUPLE2, OP.STOP).bytes());
    expect(v).toBeInstanceOf(PyTuple);
    expect((v as PyTuple).items).toEqual([1, 2]);
  });
});
