// Typed decoding of a JSON plugin configuration. The first problem found is kept with the
// path of the field that caused it ("rules[2].pid.kp: must be >= 0, got -1"), so a filter's
// on_configure can log one critical line naming the field and return false.
import { JsonArray, JsonBool, JsonKind, JsonNumber, JsonObject, JsonParser, JsonString, JsonValue } from "./json";

export function fieldPath(parent: string, key: string): string {
  return parent.length == 0 ? key : parent + "." + key;
}

export function indexPath(parent: string, index: i32): string {
  return parent + "[" + index.toString() + "]";
}

function numberText(v: f64): string {
  return v == Math.floor(v) && Math.abs(v) < 9007199254740992.0 ? (<i64>v).toString() : v.toString();
}

export class ConfigReader {
  /** The first error, "<path>: <reason>", or "" when all reads succeeded. */
  error: string = "";

  get ok(): bool { return this.error.length == 0; }

  fail(path: string, reason: string): void {
    if (this.error.length == 0) this.error = (path.length == 0 ? "configuration" : path) + ": " + reason;
  }

  /** Parses the configuration text; an empty text is an empty object. Null when not an object. */
  parse(text: string): JsonObject | null {
    let trimmed = text.trim();
    if (trimmed.length == 0) return new JsonObject();
    const parser = new JsonParser();
    const v = parser.parse(trimmed);
    if (v === null) { this.fail("", "invalid JSON " + parser.error); return null; }
    if (v.kind != JsonKind.Object) { this.fail("", "must be a JSON object, got " + v.typeName()); return null; }
    return changetype<JsonObject>(v);
  }

  /** Fails on any key of `obj` not listed in `allowed`: typos must not pass silently. */
  allowKeys(obj: JsonObject, path: string, allowed: Array<string>): void {
    for (let k = 0; k < obj.keys.length; k++) {
      const key = unchecked(obj.keys[k]);
      if (!allowed.includes(key)) this.fail(fieldPath(path, key), "unknown field (allowed: " + allowed.join(", ") + ")");
    }
  }

  private field(obj: JsonObject, path: string, key: string, required: bool, kind: JsonKind, kindName: string): JsonValue | null {
    const v = obj.get(key);
    if (v === null) {
      if (required) this.fail(fieldPath(path, key), "is required");
      return null;
    }
    if (v.kind != kind) {
      this.fail(fieldPath(path, key), "must be " + kindName + ", got " + v.typeName());
      return null;
    }
    return v;
  }

  str(obj: JsonObject, path: string, key: string, fallback: string, required: bool = false): string {
    const v = this.field(obj, path, key, required, JsonKind.String, "a string");
    return v === null ? fallback : changetype<JsonString>(v).value;
  }

  /** A non-empty string of at most `maxLen` characters. */
  name(obj: JsonObject, path: string, key: string, fallback: string, maxLen: i32, required: bool = false): string {
    const v = this.field(obj, path, key, required, JsonKind.String, "a string");
    if (v === null) return fallback;
    const s = changetype<JsonString>(v).value;
    if (s.length == 0) { this.fail(fieldPath(path, key), "must not be empty"); return fallback; }
    if (s.length > maxLen) { this.fail(fieldPath(path, key), "longer than " + maxLen.toString() + " characters"); return fallback; }
    return s;
  }

  bool(obj: JsonObject, path: string, key: string, fallback: bool): bool {
    const v = this.field(obj, path, key, false, JsonKind.Bool, "a boolean");
    return v === null ? fallback : changetype<JsonBool>(v).value;
  }

  num(obj: JsonObject, path: string, key: string, fallback: f64, min: f64, max: f64, required: bool = false): f64 {
    const v = this.field(obj, path, key, required, JsonKind.Number, "a number");
    if (v === null) return fallback;
    const n = changetype<JsonNumber>(v).value;
    if (n < min) { this.fail(fieldPath(path, key), "must be >= " + numberText(min) + ", got " + numberText(n)); return fallback; }
    if (n > max) { this.fail(fieldPath(path, key), "must be <= " + numberText(max) + ", got " + numberText(n)); return fallback; }
    return n;
  }

  int(obj: JsonObject, path: string, key: string, fallback: i64, min: i64, max: i64, required: bool = false): i64 {
    const v = this.field(obj, path, key, required, JsonKind.Number, "an integer");
    if (v === null) return fallback;
    const num = changetype<JsonNumber>(v);
    if (!num.isInteger || num.value != Math.floor(num.value)) {
      this.fail(fieldPath(path, key), "must be an integer, got " + num.value.toString());
      return fallback;
    }
    const n = num.value;
    if (n < <f64>min) { this.fail(fieldPath(path, key), "must be >= " + min.toString() + ", got " + numberText(n)); return fallback; }
    if (n > <f64>max) { this.fail(fieldPath(path, key), "must be <= " + max.toString() + ", got " + numberText(n)); return fallback; }
    return <i64>n;
  }

  /** One of `allowed`; `fallback` when absent. */
  oneOf(obj: JsonObject, path: string, key: string, allowed: Array<string>, fallback: string): string {
    const v = this.field(obj, path, key, false, JsonKind.String, "a string");
    if (v === null) return fallback;
    const s = changetype<JsonString>(v).value;
    if (!allowed.includes(s)) { this.fail(fieldPath(path, key), "must be one of " + allowed.join(", ") + ", got \"" + s + "\""); return fallback; }
    return s;
  }

  object(obj: JsonObject, path: string, key: string, required: bool = false): JsonObject | null {
    const v = this.field(obj, path, key, required, JsonKind.Object, "an object");
    return v === null ? null : changetype<JsonObject>(v);
  }

  array(obj: JsonObject, path: string, key: string, maxItems: i32, required: bool = false): JsonArray | null {
    const v = this.field(obj, path, key, required, JsonKind.Array, "an array");
    if (v === null) return null;
    const arr = changetype<JsonArray>(v);
    if (arr.items.length > maxItems) {
      this.fail(fieldPath(path, key), "more than " + maxItems.toString() + " items (" + arr.items.length.toString() + ")");
      return null;
    }
    return arr;
  }

  /** Item `index` of `arr` as an object (fails with the item's path otherwise). */
  itemObject(arr: JsonArray, path: string, index: i32): JsonObject | null {
    const v = unchecked(arr.items[index]);
    if (v.kind != JsonKind.Object) { this.fail(indexPath(path, index), "must be an object, got " + v.typeName()); return null; }
    return changetype<JsonObject>(v);
  }

  /** An array of strings; `fallback` when absent. */
  strings(obj: JsonObject, path: string, key: string, maxItems: i32, fallback: Array<string>): Array<string> {
    const arr = this.array(obj, path, key, maxItems);
    if (arr === null) return fallback;
    const out = new Array<string>();
    const p = fieldPath(path, key);
    for (let k = 0; k < arr.items.length; k++) {
      const v = unchecked(arr.items[k]);
      if (v.kind != JsonKind.String) { this.fail(indexPath(p, k), "must be a string, got " + v.typeName()); return fallback; }
      out.push(changetype<JsonString>(v).value);
    }
    return out;
  }

  /** An object whose values are all strings, as ordered key/value lists. */
  stringMap(obj: JsonObject, path: string, key: string, maxItems: i32): Map<string, string> {
    const out = new Map<string, string>();
    const o = this.object(obj, path, key);
    if (o === null) return out;
    const p = fieldPath(path, key);
    if (o.keys.length > maxItems) { this.fail(p, "more than " + maxItems.toString() + " entries"); return out; }
    for (let k = 0; k < o.keys.length; k++) {
      const name = unchecked(o.keys[k]);
      const v = o.values.get(name);
      if (v.kind != JsonKind.String) { this.fail(fieldPath(p, name), "must be a string, got " + v.typeName()); return out; }
      out.set(name, changetype<JsonString>(v).value);
    }
    return out;
  }
}
