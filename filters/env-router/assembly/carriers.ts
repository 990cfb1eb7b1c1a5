// Where an env tag travels: a header, a W3C baggage member, a cookie; and the trace ids used
// to recover a tag the application did not forward. Pure functions.
import { trimOws } from "../../../runtime/assembly/httplist";

/** W3C Baggage limits: 180 list members, 8192 bytes. Larger headers are ignored, not parsed. */
export const BAGGAGE_MAX_MEMBERS: i32 = 180;
export const BAGGAGE_MAX_BYTES: i32 = 8192;

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Percent-decodes an ASCII value; null on a bad escape or a decoded byte >= 0x80. */
export function percentDecode(s: string): string | null {
  if (s.indexOf("%") < 0) return s;
  let out = "";
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) != 0x25) continue;
    if (i + 2 >= s.length) return null;
    const h = hexValue(s.charCodeAt(i + 1)), l = hexValue(s.charCodeAt(i + 2));
    if (h < 0 || l < 0) return null;
    const b = (h << 4) | l;
    if (b >= 0x80) return null;
    out += s.substring(start, i) + String.fromCharCode(b);
    i += 2;
    start = i + 1;
  }
  return out + s.substring(start);
}

export class BaggageResult {
  constructor(public value: string | null, public tooLarge: bool) {}
}

/**
 * The value of member `key` in a baggage header (properties after ';' dropped, value
 * percent-decoded). tooLarge when the header breaks the W3C limits: then nothing is read.
 */
export function baggageMember(header: string, key: string): BaggageResult {
  if (header.length > BAGGAGE_MAX_BYTES) return new BaggageResult(null, true);
  const members = baggageMembers(header);
  if (members.length > BAGGAGE_MAX_MEMBERS) return new BaggageResult(null, true);
  for (let i = 0; i < members.length; i++) {
    const member = members[i];
    const semi = member.indexOf(";");
    const kv = semi >= 0 ? member.substring(0, semi) : member;
    const eq = kv.indexOf("=");
    if (eq <= 0) continue;
    if (trimOws(kv.substring(0, eq)) != key) continue;
    return new BaggageResult(percentDecode(trimOws(kv.substring(eq + 1))), false);
  }
  return new BaggageResult(null, false);
}

/** The non-empty list members of a baggage header: split on ',', OWS trimmed. */
function baggageMembers(header: string): Array<string> {
  const out = new Array<string>();
  let start = 0;
  for (let i = 0; i <= header.length; i++) {
    if (i < header.length && header.charCodeAt(i) != 0x2c) continue;
    const member = trimOws(header.substring(start, i));
    start = i + 1;
    if (member.length > 0) out.push(member);
  }
  return out;
}

/**
 * The baggage header with member `key` set to `value` (replacing any previous member of that
 * key). Null when the result would break the W3C limits.
 */
export function withBaggageMember(header: string | null, key: string, value: string): string | null {
  let out = "";
  let members = 0;
  if (header !== null) {
    const all = baggageMembers(header);
    for (let i = 0; i < all.length; i++) {
      const member = all[i];
      const eq = member.indexOf("=");
      if (eq > 0 && trimOws(member.substring(0, eq)) == key) continue;
      out += (out.length > 0 ? "," : "") + member;
      members++;
    }
  }
  out += (out.length > 0 ? "," : "") + key + "=" + value;
  members++;
  if (members > BAGGAGE_MAX_MEMBERS || out.length > BAGGAGE_MAX_BYTES) return null;
  return out;
}

/** The baggage header without member `key` (its properties too); null when no member is left. */
export function withoutBaggageMember(header: string, key: string): string | null {
  let out = "";
  const all = baggageMembers(header);
  for (let i = 0; i < all.length; i++) {
    const member = all[i];
    const semi = member.indexOf(";");
    const kv = semi >= 0 ? member.substring(0, semi) : member;
    const eq = kv.indexOf("=");
    if (eq > 0 && trimOws(kv.substring(0, eq)) == key) continue;
    out += (out.length > 0 ? "," : "") + member;
  }
  return out.length > 0 ? out : null;
}

/** The Cookie header without every cookie called `name`; null when no cookie is left. */
export function withoutCookie(header: string, name: string): string | null {
  let out = "";
  let start = 0;
  for (let i = 0; i <= header.length; i++) {
    if (i < header.length && header.charCodeAt(i) != 0x3b) continue;
    const pair = trimOws(header.substring(start, i));
    start = i + 1;
    if (pair.length == 0) continue;
    const eq = pair.indexOf("=");
    if (eq > 0 && pair.substring(0, eq) == name) continue;
    out += (out.length > 0 ? "; " : "") + pair;
  }
  return out.length > 0 ? out : null;
}

/** The value of cookie `name` in a Cookie header (`a=1; b=2`), or null. */
export function cookieValue(header: string, name: string): string | null {
  let start = 0;
  for (let i = 0; i <= header.length; i++) {
    if (i < header.length && header.charCodeAt(i) != 0x3b) continue;
    const pair = trimOws(header.substring(start, i));
    start = i + 1;
    const eq = pair.indexOf("=");
    if (eq <= 0 || pair.substring(0, eq) != name) continue;
    let v = pair.substring(eq + 1);
    if (v.length >= 2 && v.charCodeAt(0) == 0x22 && v.charCodeAt(v.length - 1) == 0x22) v = v.substring(1, v.length - 1);
    return v;
  }
  return null;
}

function isLowerHex(s: string): bool {
  for (let i = 0; i < s.length; i++) if (hexValue(s.charCodeAt(i)) < 0 || (s.charCodeAt(i) >= 0x41 && s.charCodeAt(i) <= 0x46)) return false;
  return true;
}

/** The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), or null; all-zero is invalid. */
export function traceparentTraceId(v: string): string | null {
  if (v.length < 55) return null;
  if (v.charCodeAt(2) != 0x2d || v.charCodeAt(35) != 0x2d || v.charCodeAt(52) != 0x2d) return null;
  const version = v.substring(0, 2);
  if (!isLowerHex(version) || version == "ff") return null;
  const id = v.substring(3, 35);
  if (!isLowerHex(id) || id == "00000000000000000000000000000000") return null;
  return id;
}

/** A B3 trace id (16 or 32 lowercase hex), or null. */
export function b3TraceId(v: string): string | null {
  if ((v.length != 16 && v.length != 32) || !isLowerHex(v)) return null;
  return v;
}

/** An x-request-id used as a correlation key: 8-128 characters of [0-9A-Za-z-_.], or null. */
export function requestIdKey(v: string): string | null {
  if (v.length < 8 || v.length > 128) return null;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f || c == 0x2e;
    if (!ok) return null;
  }
  return v;
}

/** FNV-1a over the UTF-16 code units: a stable slot for a trace id. */
export function fnv1a(s: string): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= <u32>s.charCodeAt(i);
    h *= 0x01000193;
  }
  return h;
}
