// RFC 9110 section 5.6.1 list parsing: elements are separated by commas outside
// quoted-strings (section 5.6.4, with backslash quoted-pairs), surrounding whitespace is
// trimmed, empty elements are ignored.

export const MAX_LIST_ITEMS: i32 = 256;

/**
 * Splits a field value into its list elements. Returns null when the value is malformed
 * (an unterminated quoted-string) or holds more than `maxItems` elements.
 */
export function splitList(value: string, maxItems: i32 = MAX_LIST_ITEMS): Array<string> | null {
  const out = new Array<string>();
  const n = value.length;
  let start = 0;
  let inQuote = false;
  for (let i = 0; i <= n; i++) {
    if (i < n) {
      const c = value.charCodeAt(i);
      if (inQuote) {
        if (c == 0x5c) i++; // quoted-pair: skip the escaped character
        else if (c == 0x22) inQuote = false;
        continue;
      }
      if (c == 0x22) { inQuote = true; continue; }
      if (c != 0x2c) continue;
    }
    const item = trimOws(value.substring(start, i));
    if (item.length > 0) {
      if (out.length >= maxItems) return null;
      out.push(item);
    }
    start = i + 1;
  }
  return inQuote ? null : out;
}

/** Trims optional whitespace (SP and HTAB) from both ends. */
export function trimOws(s: string): string {
  let a = 0, b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return a == 0 && b == s.length ? s : s.substring(a, b);
}

// @ts-ignore: decorator
@inline function isOws(c: i32): bool { return c == 0x20 || c == 0x09; }

/**
 * True when the value holds more than one list element (e.g. a comma-joined duplicate), or
 * cannot be split safely (an unterminated quoted-string): such a value is not one clean element.
 */
export function isMultiValued(value: string): bool {
  const items = splitList(value, 2);
  return items === null || items.length > 1;
}

/** ASCII lowercase (header names and tokens are case-insensitive ASCII). */
export function asciiLower(s: string): string {
  let needs = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) { needs = true; break; }
  }
  if (!needs) return s;
  let out = "";
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) {
      out += s.substring(start, i) + String.fromCharCode(c + 32);
      start = i + 1;
    }
  }
  return out + s.substring(start);
}
