// The proxy-wasm wire formats the host and a module exchange (reference section 2.4): byte
// strings (one JS char per byte, latin1) and the header-pairs encoding.

/** Header lines as name/value pairs of byte strings, in order. */
export type HeaderList = Array<[string, string]>;

export function toBytes(s: string): Buffer {
  return Buffer.from(s, "latin1");
}
export function fromBytes(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
}
/** A JS (UTF-16) string as a byte string of its UTF-8 encoding. */
export function utf8ToBytes(s: string): string {
  return Buffer.from(s, "utf8").toString("latin1");
}
/** A byte string decoded as UTF-8, for reporting to tests. */
export function bytesToUtf8(s: string): string {
  return Buffer.from(s, "latin1").toString("utf8");
}

// ---------------------------------------------------------------- pairs wire format (section 2.4)

export const MAX_PAIRS = 1024;
export const MAX_PAIRS_BYTES = 1 << 20;

export function encodePairs(list: HeaderList): Buffer {
  let size = 4;
  for (const [k, v] of list) size += 8 + k.length + 1 + v.length + 1;
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(list.length, 0);
  let off = 4;
  for (const [k, v] of list) {
    buf.writeUInt32LE(k.length, off);
    buf.writeUInt32LE(v.length, off + 4);
    off += 8;
  }
  for (const [k, v] of list) {
    buf.write(k, off, "latin1");
    off += k.length + 1;
    buf.write(v, off, "latin1");
    off += v.length + 1;
  }
  return buf;
}

/** Strict decoding: any malformation gives an empty list, as Envoy's toPairs does. */
export function decodePairs(buf: Uint8Array): HeaderList {
  if (buf.length === 0 || buf.length > MAX_PAIRS_BYTES || buf.length < 4) return [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getUint32(0, true);
  if (n > MAX_PAIRS) return [];
  let data = 4 + n * 8;
  if (data > buf.length) return [];
  const out: HeaderList = [];
  for (let i = 0; i < n; i++) {
    const kl = view.getUint32(4 + i * 8, true);
    const vl = view.getUint32(8 + i * 8, true);
    if (data + kl + 1 + vl + 1 > buf.length) return [];
    if (buf[data + kl] !== 0 || buf[data + kl + 1 + vl] !== 0) return [];
    out.push([fromBytes(buf.subarray(data, data + kl)), fromBytes(buf.subarray(data + kl + 1, data + kl + 1 + vl))]);
    data += kl + vl + 2;
  }
  return data === buf.length ? out : [];
}
