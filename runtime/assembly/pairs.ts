// The proxy-wasm header-pairs wire format:
//   u32 count, then count x (u32 key_len, u32 value_len), then key\0value\0 ...
// Decoding is strict (as Envoy is): a malformed buffer yields null, never a trap.

export class Header {
  constructor(public name: string, public value: string) {}
}

export const MAX_PAIRS: u32 = 1024;

/** Decodes `len` bytes at `ptr`. Returns null when the buffer is malformed. */
export function decodePairs(ptr: usize, len: usize): Array<Header> | null {
  const out = new Array<Header>();
  if (len == 0) return out;
  if (len < 4) return null;
  const count = load<u32>(ptr);
  if (count > MAX_PAIRS) return null;
  const table = <usize>4 + <usize>count * 8;
  if (table > len) return null;
  let data = ptr + table;
  const end = ptr + len;
  for (let i: u32 = 0; i < count; i++) {
    const klen = <usize>load<u32>(ptr + 4 + <usize>i * 8);
    const vlen = <usize>load<u32>(ptr + 8 + <usize>i * 8);
    if (klen + vlen + 2 > end - data) return null;
    if (load<u8>(data + klen) != 0 || load<u8>(data + klen + 1 + vlen) != 0) return null;
    const name = String.UTF8.decodeUnsafe(data, klen);
    const value = String.UTF8.decodeUnsafe(data + klen + 1, vlen);
    out.push(new Header(name, value));
    data += klen + vlen + 2;
  }
  if (data != end) return null;
  return out;
}

/** Encodes headers into the pairs wire format. */
export function encodePairs(headers: Array<Header>): ArrayBuffer {
  const n = headers.length;
  const names = new Array<ArrayBuffer>(n);
  const values = new Array<ArrayBuffer>(n);
  let size: usize = 4 + <usize>n * 8;
  for (let i = 0; i < n; i++) {
    const k = String.UTF8.encode(unchecked(headers[i]).name);
    const v = String.UTF8.encode(unchecked(headers[i]).value);
    unchecked((names[i] = k));
    unchecked((values[i] = v));
    size += <usize>k.byteLength + <usize>v.byteLength + 2;
  }
  const buf = new ArrayBuffer(<i32>size);
  const base = changetype<usize>(buf);
  store<u32>(base, n);
  let data = base + 4 + <usize>n * 8;
  for (let i = 0; i < n; i++) {
    const k = unchecked(names[i]);
    const v = unchecked(values[i]);
    store<u32>(base + 4 + <usize>i * 8, k.byteLength);
    store<u32>(base + 8 + <usize>i * 8, v.byteLength);
    memory.copy(data, changetype<usize>(k), k.byteLength);
    data += k.byteLength;
    store<u8>(data, 0);
    data++;
    memory.copy(data, changetype<usize>(v), v.byteLength);
    data += v.byteLength;
    store<u8>(data, 0);
    data++;
  }
  return buf;
}
