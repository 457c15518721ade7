/**
 * A safe pickle reader for `torch.save` state dicts. It interprets only the opcodes a state dict uses and knows a
 * fixed allow-list of globals (OrderedDict, the tensor rebuild functions, the typed storage classes); every other
 * global is refused with UnsafePickleError as soon as it is named, before anything could use it. Nothing is ever
 * called: "calls" of allowed globals build plain data (PyDict, TensorRef). Malformed or truncated input gives
 * WeightsFormatError; the loop consumes at least one byte per opcode, so it always terminates.
 */
import { UnsafePickleError, WeightsFormatError } from '../errors';
import type { DType } from './dtype';

/** Python tuple. */
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}
/** Python list. */
export class PyList {
  readonly items: PyValue[] = [];
}
/** Python dict / OrderedDict (keys are primitives; insertion order kept). */
export class PyDict {
  readonly map = new Map<PyKey, PyValue>();
  /** Instance attributes set by BUILD (a state dict's `_metadata`); unused. */
  attrs?: PyDict;
}
/** A reference to an allowed global (`module.name`). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}
/** A torch storage, from the persistent id `('storage', cls, key, location, numel)`. */
export class StorageRef {
  constructor(
    readonly dtype: DType,
    /** Member name under `<archive>/data/`. */
    readonly key: string,
    readonly location: string,
    /** Element count. */
    readonly numel: number,
  ) {}
}
/** A tensor view of a storage, from `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    /** In elements. */
    readonly storageOffset: number,
    readonly shape: number[],
    /** In elements. */
    readonly stride: number[],
  ) {}
}

export type PyKey = string | number | bigint | boolean | null;
export type PyValue = PyKey | Uint8Array | PyTuple | PyList | PyDict | PyGlobal | StorageRef | TensorRef;

/** Typed storage class name → dtype. */
export const STORAGE_DTYPES: Record<string, DType> = {
  BFloat16Storage: 'BF16',
  HalfStorage: 'F16',
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const FUNCTIONS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
]);

/** True for the globals a state-dict pickle may name. */
export function isAllowedGlobal(module: string, name: string): boolean {
  return FUNCTIONS.has(`${module}.${name}`) || (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name));
}

const MAX_PROTO = 5;

function describe(v: PyValue | undefined): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (v instanceof PyGlobal) return v.qualified;
  if (typeof v === 'object') return v.constructor.name;
  return typeof v;
}

/**
 * Unpickle `data` with the allow-list above. Returns the top-level value (for a state dict, a PyDict of TensorRef).
 *
 * @example
 * const top = unpickle(await zip.readMember('archive/data.pkl'), 'model.pth');
 */
export function unpickle(data: Uint8Array, file = 'pickle'): PyValue {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  let op = 0;
  let opAt = 0;
  let stack: PyValue[] = [];
  const metastack: PyValue[][] = [];
  const memo = new Map<number, PyValue>();

  const fail = (msg: string): never => {
    throw new WeightsFormatError(`${file}: bad pickle at byte ${opAt} (opcode 0x${op.toString(16).padStart(2, '0')}): ${msg}`);
  };
  const need = (n: number): number => {
    if (!Number.isSafeInteger(n) || n < 0 || pos + n > data.length) fail(`truncated (needs ${n} more bytes, ${data.length - pos} left)`);
    const p = pos;
    pos += n;
    return p;
  };
  const u8 = () => data[need(1)]!;
  const u16 = () => dv.getUint16(need(2), true);
  const i32 = () => dv.getInt32(need(4), true);
  const u32 = () => dv.getUint32(need(4), true);
  const u64 = () => {
    const v = dv.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} out of range`);
    return Number(v);
  };
  const bytes = (n: number) => data.slice(need(n), pos);
  const utf8 = (n: number) => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(need(n), pos));
    } catch (e) {
      if (e instanceof WeightsFormatError) throw e;
      return fail('invalid UTF-8 string');
    }
  };
  const latin1 = (n: number) => {
    const p = need(n);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(data[p + i]!);
    return s;
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('truncated (unterminated line)');
    const s = latin1(end - pos);
    pos++;
    return s;
  };
  const push = (v: PyValue) => stack.push(v);
  const pop = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1]!;
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) fail('no MARK on the stack');
    stack = prev!;
    return items;
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) fail(`memo key ${i} was never stored`);
    return memo.get(i)!;
  };
  const global = (module: string, name: string): PyGlobal => {
    if (!isAllowedGlobal(module, name)) throw new UnsafePickleError(`${module}.${name}`);
    return new PyGlobal(module, name);
  };
  const asKey = (k: PyValue): PyKey => {
    if (k === null || typeof k !== 'object') return k;
    return fail(`unsupported dict key type ${describe(k)}`);
  };
  const setItems = (d: PyValue, kv: PyValue[]) => {
    if (!(d instanceof PyDict)) fail(`SETITEM(S) on ${describe(d)}, not a dict`);
    if (kv.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < kv.length; i += 2) (d as PyDict).map.set(asKey(kv[i]!), kv[i + 1]!);
  };
  const appendItems = (l: PyValue, items: PyValue[]) => {
    if (!(l instanceof PyList)) fail(`APPEND(S) on ${describe(l)}, not a list`);
    for (const v of items) (l as PyList).items.push(v);
  };
  const call = (fn: PyValue, args: PyValue): PyValue => {
    if (!(fn instanceof PyGlobal)) return fail(`call of ${describe(fn)}, not an allowed global`);
    if (!(args instanceof PyTuple)) return fail(`arguments of ${fn.qualified} are ${describe(args)}, not a tuple`);
    return construct(fn, args.items, fail);
  };

  if (data.length === 0) fail('empty pickle');
  for (;;) {
    if (pos >= data.length) fail('truncated (no STOP opcode)');
    opAt = pos;
    op = data[pos++]!;
    switch (op) {
      case 0x80: { // PROTO
        const p = u8();
        if (p > MAX_PROTO) fail(`unsupported protocol ${p}`);
        break;
      }
      case 0x95: u64(); break; // FRAME (length only; the data follows inline)
      case 0x2e: // STOP
        return pop();
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x7d: push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: push(new PyList()); break; // EMPTY_LIST
      case 0x29: push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x74: push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(), a = pop(); push(new PyTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(), a = pop(); push(new PyTuple([a, b, c])); break; } // TUPLE3
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: push(memoGet(u8())); break; // BINGET
      case 0x6a: push(memoGet(u32())); break; // LONG_BINGET
      case 0x63: { const m = line(); push(global(m, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        push(global(module as string, name as string));
        break;
      }
      case 0x69: { // INST: names a class and instantiates it — refused even when the class is allowed
        const m = line(), n = line();
        global(m, n);
        fail(`INST of ${m}.${n} is not supported`);
        break;
      }
      case 0x51: push(persistentLoad(pop(), fail)); break; // BINPERSID
      case 0x4a: push(i32()); break; // BININT
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: push(longLE(bytes(u8()))); break; // LONG1
      case 0x8b: { const n = i32(); if (n < 0) fail('negative LONG4 length'); push(longLE(bytes(n))); break; } // LONG4
      case 0x58: push(utf8(u32())); break; // BINUNICODE
      case 0x8c: push(utf8(u8())); break; // SHORT_BINUNICODE
      case 0x8d: push(utf8(u64())); break; // BINUNICODE8
      case 0x54: { const n = i32(); if (n < 0) fail('negative BINSTRING length'); push(latin1(n)); break; } // BINSTRING
      case 0x55: push(latin1(u8())); break; // SHORT_BINSTRING
      case 0x43: push(bytes(u8())); break; // SHORT_BINBYTES
      case 0x42: push(bytes(u32())); break; // BINBYTES
      case 0x8e: push(bytes(u64())); break; // BINBYTES8
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4e: push(null); break; // NONE
      case 0x47: push(dv.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x52: { const args = pop(); push(call(pop(), args)); break; } // REDUCE
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args) — only OrderedDict
        const args = pop(), cls = pop();
        if (!(cls instanceof PyGlobal) || cls.qualified !== 'collections.OrderedDict') fail(`NEWOBJ of ${describe(cls)} is not supported`);
        push(call(cls, args));
        break;
      }
      case 0x62: { // BUILD: only a dict's instance attributes (None or a dict, e.g. a state dict's _metadata)
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict)) fail(`BUILD on ${describe(obj)} is not supported`);
        if (state !== null && !(state instanceof PyDict)) fail(`BUILD with ${describe(state)} state is not supported`);
        if (state instanceof PyDict) (obj as PyDict).attrs = state;
        break;
      }
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      default:
        fail('unsupported opcode (not used by torch.save state dicts)');
    }
  }
}

/** Little-endian two's-complement integer → number (or bigint beyond 2^53). */
function longLE(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function isIndex(v: PyValue): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function intTuple(v: PyValue, what: string, fail: (m: string) => never): number[] {
  if (!(v instanceof PyTuple) || !v.items.every(isIndex)) return fail(`${what} must be a tuple of non-negative integers, got ${describe(v)}`);
  return v.items as number[];
}

/** `('storage', cls, key, location, numel)` → StorageRef. */
function persistentLoad(pid: PyValue, fail: (m: string) => never): StorageRef {
  if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
    return fail(`persistent id must be ('storage', cls, key, location, numel), got ${describe(pid)}`);
  }
  const [, cls, key, location, numel] = pid.items;
  if (!(cls instanceof PyGlobal) || cls.module !== 'torch' || !Object.hasOwn(STORAGE_DTYPES, cls.name)) {
    return fail(`persistent id names ${describe(cls)}, not a torch storage class`);
  }
  if (typeof key !== 'string' && !isIndex(key as PyValue)) return fail(`storage key must be a string, got ${describe(key)}`);
  if (typeof location !== 'string') return fail(`storage location must be a string, got ${describe(location)}`);
  if (!isIndex(numel as PyValue)) return fail(`storage size must be a non-negative integer, got ${describe(numel)}`);
  return new StorageRef(STORAGE_DTYPES[cls.name]!, String(key), location, numel as number);
}

/** The "call" of an allowed global: builds data, executes nothing. */
function construct(fn: PyGlobal, args: readonly PyValue[], fail: (m: string) => never): PyValue {
  switch (fn.qualified) {
    case 'collections.OrderedDict': {
      if (args.length !== 0) return fail('OrderedDict(...) with arguments is not supported');
      return new PyDict();
    }
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2': {
      const v2 = fn.name === '_rebuild_tensor_v2';
      if (v2 ? args.length < 6 || args.length > 7 : args.length !== 4) return fail(`${fn.qualified} with ${args.length} arguments`);
      const [storage, offset, size, stride] = args;
      if (!(storage instanceof StorageRef)) return fail(`${fn.qualified}: first argument is ${describe(storage)}, not a storage`);
      if (!isIndex(offset!)) return fail(`${fn.qualified}: storage_offset must be a non-negative integer`);
      const shape = intTuple(size!, 'size', fail);
      const st = intTuple(stride!, 'stride', fail);
      if (shape.length !== st.length) return fail(`${fn.qualified}: size has ${shape.length} dims but stride has ${st.length}`);
      return new TensorRef(storage, offset, [...shape], [...st]);
    }
    case 'torch._utils._rebuild_parameter': {
      if (args.length !== 3 || !(args[0] instanceof TensorRef)) return fail('_rebuild_parameter(data, requires_grad, hooks) expects a tensor');
      return args[0];
    }
    default:
      return fail(`${fn.qualified} cannot be called`);
  }
}
