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

/**
 * A read-only view over a pairs buffer that decodes nothing until asked: a filter can scan
 * header names by length and bytes, and decode only the values it needs.
 */
export class PairsView {
  private constructor(private buf: ArrayBuffer, private offsets: StaticArray<u32>, public count: i32) {}

  /** Validates the buffer once; null when malformed. The view keeps `buf` alive. */
  static parse(buf: ArrayBuffer): PairsView | null {
    const len = <usize>buf.byteLength;
    const ptr = changetype<usize>(buf);
    if (len == 0) return new PairsView(buf, new StaticArray<u32>(0), 0);
    if (len < 4) return null;
    const count = load<u32>(ptr);
    if (count > MAX_PAIRS) return null;
    const table = <usize>4 + <usize>count * 8;
    if (table > len) return null;
    // Per entry: name offset, name length, value offset, value length.
    const offsets = new StaticArray<u32>(<i32>count * 4);
    let data = table;
    for (let i: u32 = 0; i < count; i++) {
      const klen = <usize>load<u32>(ptr + 4 + <usize>i * 8);
      const vlen = <usize>load<u32>(ptr + 8 + <usize>i * 8);
      if (klen + vlen + 2 > len - data) return null;
      if (load<u8>(ptr + data + klen) != 0 || load<u8>(ptr + data + klen + 1 + vlen) != 0) return null;
      unchecked((offsets[<i32>i * 4] = <u32>data));
      unchecked((offsets[<i32>i * 4 + 1] = <u32>klen));
      unchecked((offsets[<i32>i * 4 + 2] = <u32>(data + klen + 1)));
      unchecked((offsets[<i32>i * 4 + 3] = <u32>vlen));
      data += klen + vlen + 2;
    }
    if (data != len) return null;
    return new PairsView(buf, offsets, <i32>count);
  }

  nameLength(i: i32): i32 { return <i32>unchecked(this.offsets[i * 4 + 1]); }
  valueLength(i: i32): i32 { return <i32>unchecked(this.offsets[i * 4 + 3]); }

  /** Whether entry i's name is exactly `name` (UTF-8 bytes). */
  nameIs(i: i32, name: ArrayBuffer): bool {
    const n = this.nameLength(i);
    if (n != name.byteLength) return false;
    return memory.compare(changetype<usize>(this.buf) + <usize>unchecked(this.offsets[i * 4]), changetype<usize>(name), <usize>n) == 0;
  }

  /** Whether entry i's value holds the byte `b`. */
  valueHasByte(i: i32, b: u8): bool {
    const start = changetype<usize>(this.buf) + <usize>unchecked(this.offsets[i * 4 + 2]);
    const n = <usize>this.valueLength(i);
    for (let k: usize = 0; k < n; k++) if (load<u8>(start + k) == b) return true;
    return false;
  }

  name(i: i32): string {
    return String.UTF8.decodeUnsafe(changetype<usize>(this.buf) + <usize>unchecked(this.offsets[i * 4]), <usize>this.nameLength(i));
  }

  value(i: i32): string {
    return String.UTF8.decodeUnsafe(changetype<usize>(this.buf) + <usize>unchecked(this.offsets[i * 4 + 2]), <usize>this.valueLength(i));
  }

  /** Whether entry i's value is well-formed UTF-8 (so decoding and re-encoding keeps its bytes). */
  valueIsUtf8(i: i32): bool {
    return isUtf8(changetype<usize>(this.buf) + <usize>unchecked(this.offsets[i * 4 + 2]), <usize>this.valueLength(i));
  }

  /** Index of the first entry named `name`, or -1. */
  find(name: ArrayBuffer): i32 {
    for (let i = 0; i < this.count; i++) if (this.nameIs(i, name)) return i;
    return -1;
  }
}

/** RFC 3629 well-formedness: no overlongs, no surrogates, nothing above U+10FFFF, no truncation. */
export function isUtf8(ptr: usize, len: usize): bool {
  let i: usize = 0;
  while (i < len) {
    const b0 = <u32>load<u8>(ptr + i);
    if (b0 < 0x80) { i++; continue; }
    let need: usize, min: u32, cp: u32;
    if ((b0 & 0xe0) == 0xc0) { need = 1; min = 0x80; cp = b0 & 0x1f; }
    else if ((b0 & 0xf0) == 0xe0) { need = 2; min = 0x800; cp = b0 & 0x0f; }
    else if ((b0 & 0xf8) == 0xf0) { need = 3; min = 0x10000; cp = b0 & 0x07; }
    else return false;
    for (let k: usize = 1; k <= need; k++) {
      if (i + k >= len) return false;
      const b = <u32>load<u8>(ptr + i + k);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += need + 1;
  }
  return true;
}
