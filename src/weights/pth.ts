/**
 * PyTorch `.pth` (zip) checkpoints: `<top>/data.pkl` (a state-dict pickle read by the safe reader in pickle.ts)
 * plus one stored member `<top>/data/<key>` per storage. `<top>` varies (`archive`, the file stem, ...).
 * Each tensor is read on demand from its storage member, honouring storage_offset and strides.
 */
import { WeightsFormatError } from '../errors';
import { DTYPE_BYTES, numel, type HostTensor } from './dtype';
import { PyDict, TensorRef, unpickle, type PyValue } from './pickle';
import type { ByteSource } from './source';
import { crc32, openZip, type ZipArchive } from './zip';
import type { Checkpoint, TensorInfo } from './checkpoint';

/** data.pkl above this is not a state dict (a 16 GB checkpoint's pickle is ~100 KB). */
const MAX_PICKLE = 512 << 20;

/** Find `<top>/data.pkl` (exactly one, at depth ≤ 1) and return `<top>/` ('' if at the root). */
function findPickle(zip: ZipArchive, file: string): string {
  const tops = [...zip.entries.keys()].filter((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
  if (tops.length === 0) throw new WeightsFormatError(`${file}: zip archive has no '<folder>/data.pkl'; it is not a torch.save checkpoint`);
  if (tops.length > 1) throw new WeightsFormatError(`${file}: zip archive has several data.pkl members (${tops.join(', ')})`);
  return tops[0]!.slice(0, -'data.pkl'.length);
}

/** The state dict inside the unpickled top value (a dict of tensors, or {'state_dict': dict}). */
function stateDict(top: PyValue, file: string): PyDict {
  if (!(top instanceof PyDict)) throw new WeightsFormatError(`${file}: data.pkl holds ${top === null ? 'None' : typeof top === 'object' ? top.constructor.name : typeof top}, not a state dict`);
  const inner = top.map.get('state_dict');
  if (inner instanceof PyDict && ![...top.map.values()].some((v) => v instanceof TensorRef)) return inner;
  return top;
}

/**
 * Open a `.pth` checkpoint from a ByteSource: reads the zip directory and data.pkl (checking its CRC), and checks
 * every tensor's storage member exists and is large enough for its view — all before any tensor data is read.
 */
export async function openPth(source: ByteSource): Promise<Checkpoint> {
  const file = source.name;
  const zip = await openZip(source);
  const top = findPickle(zip, file);

  const bo = zip.entries.get(top + 'byteorder');
  if (bo) {
    const order = new TextDecoder().decode(await zip.readMember(bo.name)).trim();
    if (order !== 'little') throw new WeightsFormatError(`${file}: storages are stored ${order}-endian; only little-endian is supported`);
  }

  const pklEntry = zip.entries.get(top + 'data.pkl')!;
  if (pklEntry.size > MAX_PICKLE) throw new WeightsFormatError(`${file}: data.pkl is ${pklEntry.size} bytes, too large for a state dict`);
  const pkl = await zip.readMember(pklEntry.name);
  if (crc32(pkl) !== pklEntry.crc32) {
    throw new WeightsFormatError(`${file}: CRC mismatch in '${pklEntry.name}' (the file is corrupt)`);
  }
  const dict = stateDict(unpickle(pkl, `${file}:${pklEntry.name}`), file);

  const tensors = new Map<string, TensorInfo>();
  for (const [key, value] of dict.map) {
    if (!(value instanceof TensorRef)) continue; // non-tensor entries (e.g. a version number) are not weights
    const name = String(key);
    const t = value;
    const { dtype } = t.storage;
    const item = DTYPE_BYTES[dtype];
    const member = `${top}data/${t.storage.key}`;
    const ent = zip.entries.get(member);
    if (!ent) throw new WeightsFormatError(`${file}: tensor '${name}' needs storage member '${member}', which is missing`);
    const storageBytes = t.storage.numel * item;
    if (ent.size < storageBytes) {
      throw new WeightsFormatError(`${file}: storage '${member}' of tensor '${name}' has ${ent.size} bytes, needs ${storageBytes} (${t.storage.numel} × ${dtype})`);
    }
    const n = numel(t.shape);
    // Highest element index the view touches (+1); 0 for empty tensors.
    const extent = n === 0 ? 0 : t.storageOffset + t.shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, 0) + 1;
    if (extent > t.storage.numel || !Number.isSafeInteger(extent * item)) {
      throw new WeightsFormatError(
        `${file}: tensor '${name}' (shape [${t.shape}], stride [${t.stride}], offset ${t.storageOffset}) reaches element ${extent - 1} of storage '${t.storage.key}', which has only ${t.storage.numel} elements`,
      );
    }
    const byteLength = n * item;
    if (!Number.isSafeInteger(byteLength)) throw new WeightsFormatError(`${file}: tensor '${name}' has an implausible shape [${t.shape}]`);
    tensors.set(name, {
      name,
      dtype,
      shape: [...t.shape],
      byteLength,
      read: () => readView(zip, member, t, name),
    });
  }
  return { name: file, format: 'pth', tensors };
}

/** True if `stride` is the C-order stride of `shape` (dims of size 1 may have any stride). */
export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i]!;
  }
  return true;
}

/** Read a tensor view as contiguous C-order bytes: one range read, then a gather if the strides are not C-order. */
async function readView(zip: ZipArchive, member: string, t: TensorRef, name: string): Promise<HostTensor> {
  const { dtype } = t.storage;
  const item = DTYPE_BYTES[dtype];
  const shape = [...t.shape];
  const n = numel(shape);
  if (n === 0) return { dtype, shape, bytes: new Uint8Array(0) };
  let bytes: Uint8Array;
  try {
    if (isContiguous(shape, t.stride)) {
      bytes = await zip.readMember(member, t.storageOffset * item, n * item);
    } else {
      const extent = shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, 0) + 1;
      const src = await zip.readMember(member, t.storageOffset * item, extent * item);
      bytes = gather(src, shape, t.stride, item);
    }
  } catch (e) {
    if (e instanceof RangeError) {
      // allocation failure: e.g. a stride-0 view whose shape is far larger than its storage
      throw new WeightsFormatError(`${zip.source.name}: tensor '${name}' ([${shape}], ${n * item} bytes) is too large to read in one piece`, { cause: e });
    }
    if (e instanceof WeightsFormatError && !e.message.includes(`'${name}'`)) {
      throw new WeightsFormatError(`${e.message} (reading tensor '${name}')`, { cause: e });
    }
    throw e;
  }
  return { dtype, shape, bytes };
}

/** Copy a strided view (element strides) out of `src` into C order. Runs of the last dim are copied whole if stride 1. */
export function gather(src: Uint8Array, shape: readonly number[], stride: readonly number[], item: number): Uint8Array {
  const nd = shape.length;
  const n = numel(shape);
  const out = new Uint8Array(n * item);
  if (nd === 0) {
    out.set(src.subarray(0, item));
    return out;
  }
  const last = shape[nd - 1]!;
  const lastStride = stride[nd - 1]!;
  const idx = new Array<number>(nd).fill(0);
  let base = 0; // element offset of idx[0..nd-2], 0 in the last dim
  for (let o = 0; o < n; o += last) {
    if (lastStride === 1) {
      out.set(src.subarray(base * item, (base + last) * item), o * item);
    } else {
      for (let j = 0; j < last; j++) {
        const s = (base + j * lastStride) * item;
        for (let b = 0; b < item; b++) out[(o + j) * item + b] = src[s + b]!;
      }
    }
    // increment the outer index (odometer over dims nd-2..0)
    for (let d = nd - 2; d >= 0; d--) {
      idx[d] = idx[d]! + 1;
      base += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= idx[d]! * stride[d]!;
      idx[d] = 0;
    }
  }
  return out;
}
