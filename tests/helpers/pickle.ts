/**
 * Hand-assembled pickles for loader tests: a byte-level writer (opcodes by name) and a torch-like state-dict
 * pickle + `.pth` zip builder with arbitrary storage offsets and strides.
 */
import { numel, type DType } from '../../src/weights/dtype';
import { writeZip, type ZipInput, type ZipOptions } from './zip';

/** Opcode bytes used below (pickletools names). */
export const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, BINFLOAT: 0x47, BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d, NONE: 0x4e,
  BINPERSID: 0x51, REDUCE: 0x52, BINSTRING: 0x54, SHORT_BINSTRING: 0x55, BINUNICODE: 0x58, EMPTY_LIST: 0x5d,
  APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63, APPENDS: 0x65, BINGET: 0x68, INST: 0x69, LONG_BINGET: 0x6a, BINPUT: 0x71,
  LONG_BINPUT: 0x72, SETITEM: 0x73, TUPLE: 0x74, SETITEMS: 0x75, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29, PROTO: 0x80,
  NEWOBJ: 0x81, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a,
  SHORT_BINUNICODE: 0x8c, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95, SHORT_BINBYTES: 0x43, BINBYTES: 0x42,
} as const;

/** Append-only pickle byte writer. */
export class PickleWriter {
  private b: number[] = [];
  op(...codes: number[]) { this.b.push(...codes); return this; }
  u32(v: number) { this.b.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); return this; }
  proto(p: number) { return this.op(OP.PROTO, p); }
  global(module: string, name: string) { return this.op(OP.GLOBAL).ascii(`${module}\n${name}\n`); }
  stackGlobal(module: string, name: string) { return this.str(module).str(name).op(OP.STACK_GLOBAL); }
  ascii(s: string) { for (const c of s) this.b.push(c.charCodeAt(0)); return this; }
  /** BINUNICODE (or SHORT_BINUNICODE when short=true). */
  str(s: string, short = false) {
    const u = new TextEncoder().encode(s);
    if (short && u.length < 256) this.op(OP.SHORT_BINUNICODE, u.length);
    else this.op(OP.BINUNICODE).u32(u.length);
    this.b.push(...u);
    return this;
  }
  /** Smallest int opcode, as pickle does. */
  int(n: number) {
    if (n >= 0 && n < 256) return this.op(OP.BININT1, n);
    if (n >= 0 && n < 65536) return this.op(OP.BININT2, n & 0xff, n >>> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(OP.BININT).u32(n >>> 0);
    // LONG1 little-endian two's complement
    let v = BigInt(n);
    const bytes: number[] = [];
    do {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    } while (!((v === 0n && !(bytes[bytes.length - 1]! & 0x80)) || (v === -1n && bytes[bytes.length - 1]! & 0x80)));
    return this.op(OP.LONG1, bytes.length, ...bytes);
  }
  tupleOf(items: number[]) {
    if (items.length === 0) return this.op(OP.EMPTY_TUPLE);
    if (items.length <= 3) {
      for (const x of items) this.int(x);
      return this.op([OP.TUPLE1, OP.TUPLE2, OP.TUPLE3][items.length - 1]!);
    }
    this.op(OP.MARK);
    for (const x of items) this.int(x);
    return this.op(OP.TUPLE);
  }
  get length() { return this.b.length; }
  bytes() { return Uint8Array.from(this.b); }
}

const STORAGE_CLASS: Partial<Record<DType, string>> = {
  BF16: 'BFloat16Storage', F16: 'HalfStorage', F32: 'FloatStorage', F64: 'DoubleStorage', I64: 'LongStorage',
  I32: 'IntStorage', I16: 'ShortStorage', I8: 'CharStorage', U8: 'ByteStorage', BOOL: 'BoolStorage',
};

export interface TensorSpec {
  /** Storage key (member `<top>/data/<key>`). */
  storage: string;
  dtype: DType;
  /** Elements in the storage (the persistent id's numel). */
  storageNumel: number;
  offset: number;
  shape: number[];
  stride: number[];
}

/** A whole tensor alone in its storage, C-contiguous: what torch.save records for a plain tensor. */
export function contiguousSpec(storage: string, dtype: DType, shape: readonly number[]): TensorSpec {
  const stride = shape.map((_, i) => numel(shape.slice(i + 1)));
  return { storage, dtype, storageNumel: numel(shape), offset: 0, shape: [...shape], stride };
}

export interface StateDictPickleOptions {
  /** 2 = torch.save style (GLOBAL, BINUNICODE, BINPUT); 4 = FRAME, STACK_GLOBAL, SHORT_BINUNICODE, MEMOIZE. */
  protocol?: 2 | 4;
  /** Add a state dict's `_metadata` via BUILD, as Module.state_dict() results carry. */
  metadata?: boolean;
  /** Wrap tensors in torch._utils._rebuild_parameter (nn.Parameter). */
  parameters?: boolean;
}

/** A state-dict pickle shaped like torch.save output. */
export function stateDictPickle(entries: [string, TensorSpec][], opts: StateDictPickleOptions = {}): Uint8Array {
  const p4 = opts.protocol === 4;
  const w = new PickleWriter().proto(p4 ? 4 : 2);
  const g = (m: string, n: string) => (p4 ? w.str(m, true).str(n, true).op(OP.STACK_GLOBAL) : w.global(m, n));
  const s = (x: string) => w.str(x, p4);
  g('collections', 'OrderedDict');
  w.op(OP.EMPTY_TUPLE, OP.REDUCE);
  if (p4) w.op(OP.MEMOIZE);
  w.op(OP.MARK);
  for (const [name, t] of entries) {
    s(name);
    if (opts.parameters) g('torch._utils', '_rebuild_parameter');
    g('torch._utils', '_rebuild_tensor_v2');
    w.op(OP.MARK);
    w.op(OP.MARK);
    s('storage');
    g('torch', STORAGE_CLASS[t.dtype]!);
    s(t.storage);
    s('cpu');
    w.int(t.storageNumel);
    w.op(OP.TUPLE, OP.BINPERSID);
    w.int(t.offset);
    w.tupleOf(t.shape);
    w.tupleOf(t.stride);
    w.op(OP.NEWFALSE);
    g('collections', 'OrderedDict');
    w.op(OP.EMPTY_TUPLE, OP.REDUCE);
    w.op(OP.TUPLE, OP.REDUCE);
    if (opts.parameters) w.op(OP.NEWFALSE).op(OP.EMPTY_DICT).op(OP.TUPLE3, OP.REDUCE);
  }
  w.op(OP.SETITEMS);
  if (opts.metadata) {
    // {'_metadata': OrderedDict([('', {'version': 1})])}
    w.op(OP.EMPTY_DICT);
    s('_metadata');
    g('collections', 'OrderedDict');
    w.op(OP.EMPTY_TUPLE, OP.REDUCE);
    s('');
    w.op(OP.EMPTY_DICT);
    s('version');
    w.int(1);
    w.op(OP.SETITEM, OP.SETITEM, OP.SETITEM, OP.BUILD);
  }
  w.op(OP.STOP);
  return w.bytes();
}

export interface PthOptions extends StateDictPickleOptions, ZipOptions {
  /** Top folder of the archive (torch uses the file stem or 'archive'). */
  top?: string;
  /** Replace data.pkl with these bytes. */
  pickle?: Uint8Array;
  /** Extra members (e.g. `<top>/byteorder`). */
  extra?: ZipInput[];
}

/** A `.pth` zip: `<top>/data.pkl`, `<top>/data/<key>` per storage, `<top>/version`. */
export function buildPth(entries: [string, TensorSpec][], storages: Record<string, Uint8Array>, opts: PthOptions = {}): Uint8Array {
  const top = opts.top ?? 'archive';
  const pkl = opts.pickle ?? stateDictPickle(entries, opts);
  const members: ZipInput[] = [{ name: `${top}/data.pkl`, data: pkl }];
  for (const [key, data] of Object.entries(storages)) members.push({ name: `${top}/data/${key}`, data });
  members.push({ name: `${top}/version`, data: new TextEncoder().encode('3\n') }, ...(opts.extra ?? []));
  return writeZip(members, opts);
}

/** A minimal .pth whose data.pkl is the given pickle bytes (for malicious-pickle tests). */
export function pthWithPickle(pkl: Uint8Array, top = 'archive'): Uint8Array {
  return buildPth([], {}, { pickle: pkl, top });
}
