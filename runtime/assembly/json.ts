// A small, strict JSON parser (RFC 8259) for plugin configuration. It never throws:
// malformed input yields null and an error message with the byte offset.

export const MAX_DEPTH: i32 = 64;
export const MAX_INPUT: i32 = 1 << 20;

export enum JsonKind { Null, Bool, Number, String, Array, Object }

export abstract class JsonValue {
  constructor(public kind: JsonKind) {}
  typeName(): string {
    switch (this.kind) {
      case JsonKind.Null: return "null";
      case JsonKind.Bool: return "boolean";
      case JsonKind.Number: return "number";
      case JsonKind.String: return "string";
      case JsonKind.Array: return "array";
      default: return "object";
    }
  }
}
export class JsonNull extends JsonValue { constructor() { super(JsonKind.Null); } }
export class JsonBool extends JsonValue { constructor(public value: bool) { super(JsonKind.Bool); } }
export class JsonNumber extends JsonValue {
  constructor(public value: f64, public isInteger: bool) { super(JsonKind.Number); }
}
export class JsonString extends JsonValue { constructor(public value: string) { super(JsonKind.String); } }
export class JsonArray extends JsonValue {
  items: Array<JsonValue> = new Array<JsonValue>();
  constructor() { super(JsonKind.Array); }
}
export class JsonObject extends JsonValue {
  keys: Array<string> = new Array<string>();
  values: Map<string, JsonValue> = new Map<string, JsonValue>();
  constructor() { super(JsonKind.Object); }
  has(key: string): bool { return this.values.has(key); }
  get(key: string): JsonValue | null { return this.values.has(key) ? this.values.get(key) : null; }
}

export class JsonParser {
  error: string = "";
  private s: string = "";
  private i: i32 = 0;

  parse(text: string): JsonValue | null {
    this.error = "";
    if (text.length > MAX_INPUT) { this.error = "input larger than " + MAX_INPUT.toString() + " characters"; return null; }
    this.s = text;
    this.i = 0;
    const v = this.value(0);
    if (v === null) return null;
    this.ws();
    if (this.i < this.s.length) return this.fail("unexpected trailing characters");
    return v;
  }

  private fail(msg: string): JsonValue | null {
    if (this.error.length == 0) this.error = "at offset " + this.i.toString() + ": " + msg;
    return null;
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d) this.i++;
      else break;
    }
  }

  private value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return this.fail("nesting deeper than " + MAX_DEPTH.toString());
    this.ws();
    if (this.i >= this.s.length) return this.fail("unexpected end of input");
    const c = this.s.charCodeAt(this.i);
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) {
      const str = this.string();
      return str === null ? null : new JsonString(str);
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.word("true")) return new JsonBool(true);
    if (this.word("false")) return new JsonBool(false);
    if (this.word("null")) return new JsonNull();
    return this.fail("unexpected character '" + String.fromCharCode(c) + "'");
  }

  private word(w: string): bool {
    if (this.s.length - this.i < w.length) return false;
    for (let k = 0; k < w.length; k++) if (this.s.charCodeAt(this.i + k) != w.charCodeAt(k)) return false;
    this.i += w.length;
    return true;
  }

  private object(depth: i32): JsonValue | null {
    this.i++; // {
    const obj = new JsonObject();
    this.ws();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x7d) { this.i++; return obj; }
    while (true) {
      this.ws();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x22) return this.fail("expected a string key");
      const keyStart = this.i;
      const key = this.string();
      if (key === null) return null;
      if (obj.values.has(key)) { this.i = keyStart; return this.fail("duplicate key \"" + key + "\""); }
      this.ws();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x3a) return this.fail("expected ':'");
      this.i++;
      const v = this.value(depth + 1);
      if (v === null) return null;
      obj.keys.push(key);
      obj.values.set(key, v);
      this.ws();
      if (this.i >= this.s.length) return this.fail("unexpected end of input");
      const c = this.s.charCodeAt(this.i);
      this.i++;
      if (c == 0x7d) return obj;
      if (c != 0x2c) { this.i--; return this.fail("expected ',' or '}'"); }
    }
  }

  private array(depth: i32): JsonValue | null {
    this.i++; // [
    const arr = new JsonArray();
    this.ws();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x5d) { this.i++; return arr; }
    while (true) {
      const v = this.value(depth + 1);
      if (v === null) return null;
      arr.items.push(v);
      this.ws();
      if (this.i >= this.s.length) return this.fail("unexpected end of input");
      const c = this.s.charCodeAt(this.i);
      this.i++;
      if (c == 0x5d) return arr;
      if (c != 0x2c) { this.i--; return this.fail("expected ',' or ']'"); }
    }
  }

  private hex4(): i32 {
    if (this.s.length - this.i < 4) return -1;
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.s.charCodeAt(this.i + k);
      let d: i32;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      else return -1;
      v = (v << 4) | d;
    }
    this.i += 4;
    return v;
  }

  private string(): string | null {
    this.i++; // opening quote
    const s = this.s;
    let out = "";
    let start = this.i;
    while (true) {
      if (this.i >= s.length) { this.fail("unterminated string"); return null; }
      const c = s.charCodeAt(this.i);
      if (c == 0x22) {
        out += s.substring(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) { this.fail("control character in string"); return null; }
      if (c != 0x5c) { this.i++; continue; }
      out += s.substring(start, this.i);
      this.i++;
      if (this.i >= s.length) { this.fail("unterminated escape"); return null; }
      const e = s.charCodeAt(this.i);
      this.i++;
      if (e == 0x22) out += "\"";
      else if (e == 0x5c) out += "\\";
      else if (e == 0x2f) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6e) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        const u = this.hex4();
        if (u < 0) { this.fail("bad \\u escape"); return null; }
        out += String.fromCharCode(u);
      } else { this.i--; this.fail("bad escape"); return null; }
      start = this.i;
    }
  }

  private number(): JsonValue | null {
    const s = this.s;
    const start = this.i;
    let integer = true;
    if (s.charCodeAt(this.i) == 0x2d) this.i++;
    if (this.i >= s.length) return this.fail("bad number");
    let c = s.charCodeAt(this.i);
    if (c == 0x30) {
      this.i++;
    } else if (c >= 0x31 && c <= 0x39) {
      while (this.i < s.length && isDigit(s.charCodeAt(this.i))) this.i++;
    } else return this.fail("bad number");
    if (this.i < s.length && s.charCodeAt(this.i) == 0x2e) {
      integer = false;
      this.i++;
      if (this.i >= s.length || !isDigit(s.charCodeAt(this.i))) return this.fail("bad number");
      while (this.i < s.length && isDigit(s.charCodeAt(this.i))) this.i++;
    }
    if (this.i < s.length) {
      c = s.charCodeAt(this.i);
      if (c == 0x65 || c == 0x45) {
        integer = false;
        this.i++;
        if (this.i < s.length && (s.charCodeAt(this.i) == 0x2b || s.charCodeAt(this.i) == 0x2d)) this.i++;
        if (this.i >= s.length || !isDigit(s.charCodeAt(this.i))) return this.fail("bad number");
        while (this.i < s.length && isDigit(s.charCodeAt(this.i))) this.i++;
      }
    }
    const v = parseFloat(s.substring(start, this.i));
    if (!isFinite(v)) return this.fail("number out of range");
    return new JsonNumber(v, integer);
  }
}

// @ts-ignore: decorator
@inline function isDigit(c: i32): bool { return c >= 0x30 && c <= 0x39; }

/** Parses `text`; on failure returns null and leaves the reason in `parser.error`. */
export function parseJson(text: string, parser: JsonParser = new JsonParser()): JsonValue | null {
  return parser.parse(text);
}

/** JSON text of a string, with the escapes JSON requires. */
export function quoteJson(s: string): string {
  let out = "\"";
  let start = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    let esc: string | null = null;
    if (c == 0x22) esc = "\\\"";
    else if (c == 0x5c) esc = "\\\\";
    else if (c == 0x0a) esc = "\\n";
    else if (c == 0x0d) esc = "\\r";
    else if (c == 0x09) esc = "\\t";
    else if (c < 0x20) {
      const h = c.toString(16);
      esc = "\\u" + "0000".substring(h.length) + h;
    }
    if (esc !== null) {
      out += s.substring(start, k) + esc;
      start = k + 1;
    }
  }
  return out + s.substring(start) + "\"";
}
