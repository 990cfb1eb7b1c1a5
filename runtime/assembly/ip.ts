// IPv4/IPv6 addresses and CIDR blocks, accepted in canonical text form only: the form an
// address formats back to (dotted decimal without leading zeros; RFC 5952 for IPv6:
// lowercase, no leading zeros, longest zero run compressed). Everything else (octal, hex,
// integer, short or zero-padded IPv4, zone ids, embedded dotted quads, uppercase,
// surrounding brackets or whitespace) is rejected.

export class IpAddr {
  constructor(public v6: bool, public hi: u64, public lo: u64) {}

  static v4(bits: u32): IpAddr { return new IpAddr(false, 0, <u64>bits); }

  /** The IPv4 value (valid when !v6). */
  get v4bits(): u32 { return <u32>this.lo; }

  equals(o: IpAddr): bool { return this.v6 == o.v6 && this.hi == o.hi && this.lo == o.lo; }

  /** ::ffff:0:0/96, an IPv4 address disguised as IPv6. */
  isV4Mapped(): bool { return this.v6 && this.hi == 0 && (this.lo >> 32) == 0xffff; }

  toString(): string { return this.v6 ? formatV6(this.hi, this.lo) : formatV4(<u32>this.lo); }
}

function formatV4(b: u32): string {
  return (b >> 24).toString() + "." + ((b >> 16) & 255).toString() + "." + ((b >> 8) & 255).toString() + "." + (b & 255).toString();
}

function group(hi: u64, lo: u64, i: i32): u32 {
  return i < 4 ? <u32>((hi >> (<u64>(48 - 16 * i))) & 0xffff) : <u32>((lo >> (<u64>(48 - 16 * (i - 4)))) & 0xffff);
}

function formatV6(hi: u64, lo: u64): string {
  // RFC 5952 section 4.2: compress the longest run (>= 2) of zero groups, the first on ties.
  let bestStart = -1, bestLen = 0, runStart = -1;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && group(hi, lo, i) == 0) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      const len = i - runStart;
      if (len > bestLen && len >= 2) { bestStart = runStart; bestLen = len; }
      runStart = -1;
    }
  }
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (i == bestStart) {
      out += "::";
      i += bestLen - 1;
      continue;
    }
    if (out.length > 0 && !out.endsWith(":")) out += ":";
    out += group(hi, lo, i).toString(16);
  }
  return out;
}

/** Parses dotted-decimal IPv4 (any leading-zero or non-decimal form fails). -1 when invalid. */
function parseV4(s: string): i64 {
  let bits: u32 = 0;
  let parts = 0;
  let i = 0;
  const n = s.length;
  while (parts < 4) {
    const start = i;
    let v: u32 = 0;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + <u32>(c - 0x30);
      if (v > 255) return -1;
      i++;
    }
    const len = i - start;
    if (len == 0 || len > 3) return -1;
    if (len > 1 && s.charCodeAt(start) == 0x30) return -1;
    bits = (bits << 8) | v;
    parts++;
    if (parts < 4) {
      if (i >= n || s.charCodeAt(i) != 0x2e) return -1;
      i++;
    }
  }
  return i == n ? <i64>bits : -1;
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Parses RFC 4291 hex notation (no zone id, no dotted-quad tail). Null when invalid. */
function parseV6(s: string): IpAddr | null {
  const n = s.length;
  if (n < 2 || n > 39) return null;
  const groups = new StaticArray<u32>(8);
  let count = 0;
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) == 0x3a) {
    if (s.charCodeAt(1) != 0x3a) return null;
    gap = 0;
    i = 2;
    if (i == n) return new IpAddr(true, 0, 0);
  }
  while (i < n) {
    if (count == 8) return null;
    let v = 0, digits = 0;
    while (i < n) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      digits++;
      if (digits > 4) return null;
      i++;
    }
    if (digits == 0) return null;
    groups[count++] = <u32>v;
    if (i == n) break;
    if (s.charCodeAt(i) != 0x3a) return null; // '.', '%', or anything else
    i++;
    if (i < n && s.charCodeAt(i) == 0x3a) {
      if (gap >= 0) return null;
      gap = count;
      i++;
      if (i == n) break;
    } else if (i == n) return null; // trailing single ':'
  }
  if (gap < 0 && count != 8) return null;
  if (gap >= 0 && count > 7) return null;
  const full = new StaticArray<u32>(8);
  if (gap < 0) {
    for (let k = 0; k < 8; k++) full[k] = groups[k];
  } else {
    const tail = count - gap;
    for (let k = 0; k < gap; k++) full[k] = groups[k];
    for (let k = 0; k < tail; k++) full[8 - tail + k] = groups[gap + k];
  }
  let hi: u64 = 0, lo: u64 = 0;
  for (let k = 0; k < 4; k++) hi = (hi << 16) | <u64>full[k];
  for (let k = 4; k < 8; k++) lo = (lo << 16) | <u64>full[k];
  return new IpAddr(true, hi, lo);
}

/** Parses an address in any notation this module understands (canonical or not). */
export function parseIpLenient(s: string): IpAddr | null {
  if (s.indexOf(":") >= 0) return parseV6(s);
  const v4 = parseV4(s);
  return v4 < 0 ? null : IpAddr.v4(<u32>v4);
}

/** Parses an address only if `s` is exactly its canonical text. */
export function parseIp(s: string): IpAddr | null {
  const a = parseIpLenient(s);
  if (a === null) return null;
  return a.toString() == s ? a : null;
}

export class Cidr {
  constructor(public addr: IpAddr, public prefix: i32) {}

  contains(ip: IpAddr): bool {
    if (ip.v6 != this.addr.v6) return false;
    if (!ip.v6) {
      if (this.prefix == 0) return true;
      const mask: u32 = this.prefix >= 32 ? 0xffffffff : ~(<u32>0xffffffff >> <u32>this.prefix);
      return (ip.v4bits & mask) == (this.addr.v4bits & mask);
    }
    const hiMask = maskBits(this.prefix);
    const loMask = maskBits(this.prefix - 64);
    return (ip.hi & hiMask) == (this.addr.hi & hiMask) && (ip.lo & loMask) == (this.addr.lo & loMask);
  }

  toString(): string { return this.addr.toString() + "/" + this.prefix.toString(); }
}

function maskBits(prefix: i32): u64 {
  if (prefix <= 0) return 0;
  if (prefix >= 64) return 0xffffffffffffffff;
  return ~(<u64>0xffffffffffffffff >> <u64>prefix);
}

/** Parses "addr/len" with a canonical address, a decimal length in range, and no host bits set. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf("/");
  if (slash <= 0 || slash == s.length - 1) return null;
  const addr = parseIp(s.substring(0, slash));
  if (addr === null) return null;
  const lenText = s.substring(slash + 1);
  if (lenText.length > 3 || (lenText.length > 1 && lenText.charCodeAt(0) == 0x30)) return null;
  let len = 0;
  for (let i = 0; i < lenText.length; i++) {
    const c = lenText.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return null;
    len = len * 10 + (c - 0x30);
  }
  if (len > (addr.v6 ? 128 : 32)) return null;
  const block = new Cidr(addr, len);
  // Host bits set ("10.0.0.1/8") usually means a typo; require the network address.
  const network = addr.v6
    ? new IpAddr(true, addr.hi & maskBits(len), addr.lo & maskBits(len - 64))
    : IpAddr.v4(len == 0 ? 0 : addr.v4bits & (len >= 32 ? 0xffffffff : ~(<u32>0xffffffff >> <u32>len)));
  return network.equals(addr) ? block : null;
}
