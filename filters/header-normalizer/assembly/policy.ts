// The duplicate policy: which headers are singletons, how a repeated or comma-joined value is
// reduced to one, and when to refuse. Pure functions, no hostcalls.
import { splitList, trimOws } from "../../../runtime/assembly/httplist";

export enum HeaderClass { Singleton, List, Ignore }
export enum OnConflict { First, Last, Reject }

export const MAX_ELEMENTS: i32 = 64;

/**
 * How a value is split into the values of separate field lines. Envoy joins repeated inline
 * headers with "," and the filter sees one value either way, so a split is accepted only where
 * the pieces are whole values of the header's grammar: media types for content-type (so
 * `boundary=a,b` on one line stays one), credentials for authorization (a Digest credential's
 * own commas separate auth-params, not credentials).
 */
export enum Grammar { Plain, MediaType, Credentials }

export function grammarOf(name: string): Grammar {
  if (name == "content-type") return Grammar.MediaType;
  if (name == "authorization" || name == "proxy-authorization") return Grammar.Credentials;
  return Grammar.Plain;
}

export class Rule {
  nameBytes: ArrayBuffer;
  grammar: Grammar;
  /** Scratch: indexes of this request's entries with this name. */
  hits: Array<i32> = new Array<i32>();
  constructor(
    public name: string,
    public cls: HeaderClass,
    public onConflict: OnConflict,
    /** Whether a value may be split on top-level commas (its grammar has none of its own). */
    public split: bool,
    public request: bool,
    public response: bool,
  ) {
    this.nameBytes = String.UTF8.encode(name);
    this.grammar = grammarOf(name);
  }
}

/**
 * The built-in table. Singletons are header fields defined as one value; "split" only where the
 * grammar has no top-level comma of its own (a date, a URI or Digest credentials do).
 * content-encoding is deliberately absent: it is a list (RFC 9110 8.4), and "gzip, br" is a
 * legitimate layered encoding that "first" would corrupt.
 */
export function defaultRules(): Array<Rule> {
  const r = new Array<Rule>();
  const S = HeaderClass.Singleton;
  r.push(new Rule("content-type", S, OnConflict.First, true, true, true));
  r.push(new Rule("content-length", S, OnConflict.Reject, true, true, true));
  r.push(new Rule(":authority", S, OnConflict.Reject, true, true, false));
  r.push(new Rule("authorization", S, OnConflict.Reject, true, true, false));
  r.push(new Rule("proxy-authorization", S, OnConflict.Reject, true, true, false));
  r.push(new Rule("max-forwards", S, OnConflict.First, true, true, false));
  r.push(new Rule("referer", S, OnConflict.First, false, true, false));
  r.push(new Rule("if-modified-since", S, OnConflict.First, false, true, false));
  r.push(new Rule("if-unmodified-since", S, OnConflict.First, false, true, false));
  r.push(new Rule("location", S, OnConflict.First, false, false, true));
  r.push(new Rule("content-location", S, OnConflict.First, false, false, true));
  r.push(new Rule("etag", S, OnConflict.First, true, false, true));
  r.push(new Rule("last-modified", S, OnConflict.First, false, false, true));
  r.push(new Rule("expires", S, OnConflict.First, false, false, true));
  r.push(new Rule("date", S, OnConflict.First, false, false, true));
  r.push(new Rule("age", S, OnConflict.First, true, false, true));
  r.push(new Rule("retry-after", S, OnConflict.First, false, false, true));
  r.push(new Rule("content-range", S, OnConflict.First, false, false, true));
  return r;
}

export enum Action { Clean, Collapse, Resolve, Reject, Malformed }

export class Decision {
  constructor(public action: Action, public value: string = "", public reason: string = "") {}
}

const CLEAN = new Decision(Action.Clean);

/** A value Envoy could not carry safely (CR, LF, NUL), or one decoded from bad UTF-8 (U+FFFD). */
export function unsafeValue(v: string): bool {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c == 0x0d || c == 0x0a || c == 0x00 || c == 0xfffd) return true;
  }
  return false;
}

/**
 * Reduces every value a singleton arrived with (entries, and elements of comma-joined
 * entries when the rule splits) to at most one.
 */
export function decide(rule: Rule, values: Array<string>): Decision {
  const elements = new Array<string>();
  for (let i = 0; i < values.length; i++) {
    const v = unchecked(values[i]);
    if (rule.split) {
      const items = rule.grammar == Grammar.Credentials ? splitCredentials(v, MAX_ELEMENTS) : splitList(v, MAX_ELEMENTS);
      if (items === null) return new Decision(Action.Malformed, "", "unbalanced quotes or more than " + MAX_ELEMENTS.toString() + " elements");
      if (rule.grammar == Grammar.MediaType && items.length > 1 && !allMediaTypes(items)) {
        // One line whose comma is part of its value (an unquoted boundary=a,b): not a repeat.
        const t = trimOws(v);
        if (t.length > 0) elements.push(t);
        continue;
      }
      for (let k = 0; k < items.length; k++) elements.push(unchecked(items[k]));
    } else {
      const t = trimOws(v);
      if (t.length > 0) elements.push(t);
    }
  }
  if (elements.length <= 1 && values.length <= 1) return CLEAN;
  if (elements.length == 0) return CLEAN;
  let identical = true;
  const first = unchecked(elements[0]);
  for (let i = 1; i < elements.length; i++) {
    if (unchecked(elements[i]) != first) { identical = false; break; }
  }
  let d: Decision;
  if (identical) d = new Decision(Action.Collapse, first);
  else if (rule.onConflict == OnConflict.Reject) return new Decision(Action.Reject, "", "conflicting " + rule.name + " values");
  else d = new Decision(Action.Resolve, rule.onConflict == OnConflict.First ? first : unchecked(elements[elements.length - 1]));
  if (unsafeValue(d.value)) return new Decision(Action.Malformed, "", "value holds CR, LF, NUL or U+FFFD");
  return d;
}

/** Rules indexed by name length, so a header name costs one array read to rule out. */
export class RuleIndex {
  private byLength: Array<Array<Rule> | null> = new Array<Array<Rule> | null>();
  all: Array<Rule> = new Array<Rule>();

  add(rule: Rule): void {
    const n = rule.nameBytes.byteLength;
    while (this.byLength.length <= n) this.byLength.push(null);
    let list = unchecked(this.byLength[n]);
    if (list === null) {
      list = new Array<Rule>();
      unchecked((this.byLength[n] = list));
    }
    list.push(rule);
    this.all.push(rule);
  }

  candidates(nameLength: i32): Array<Rule> | null {
    return nameLength < this.byLength.length ? unchecked(this.byLength[nameLength]) : null;
  }
}

function isTchar(c: i32): bool {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return true;
  return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2a || c == 0x2b || c == 0x2d || c == 0x2e || c == 0x5e || c == 0x5f || c == 0x60 || c == 0x7c || c == 0x7e;
}

function isOwsChar(c: i32): bool { return c == 0x20 || c == 0x09; }

/** End of the token starting at `i` (== i when there is none). */
function tokenEnd(s: string, i: i32): i32 {
  while (i < s.length && isTchar(s.charCodeAt(i))) i++;
  return i;
}

/** End of the quoted-string starting at `i` (a '"'), or -1 when it does not close. */
function quotedEnd(s: string, i: i32): i32 {
  for (i++; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x5c) { i++; continue; }
    if (c == 0x22) return i + 1;
  }
  return -1;
}

/** `type "/" subtype *( OWS ";" OWS [ token "=" ( token / quoted-string ) ] )` (RFC 9110 8.3.1). */
export function isMediaType(s: string): bool {
  let i = tokenEnd(s, 0);
  if (i == 0 || i >= s.length || s.charCodeAt(i) != 0x2f) return false;
  const sub = i + 1;
  i = tokenEnd(s, sub);
  if (i == sub) return false;
  for (;;) {
    while (i < s.length && isOwsChar(s.charCodeAt(i))) i++;
    if (i == s.length) return true;
    if (s.charCodeAt(i) != 0x3b) return false;
    i++;
    while (i < s.length && isOwsChar(s.charCodeAt(i))) i++;
    if (i == s.length || s.charCodeAt(i) == 0x3b) continue;
    const name = i;
    i = tokenEnd(s, i);
    if (i == name || i >= s.length || s.charCodeAt(i) != 0x3d) return false;
    i++;
    if (i < s.length && s.charCodeAt(i) == 0x22) {
      i = quotedEnd(s, i);
      if (i < 0) return false;
    } else {
      const v = i;
      i = tokenEnd(s, i);
      if (i == v) return false;
    }
  }
  return false;
}

function allMediaTypes(items: Array<string>): bool {
  for (let k = 0; k < items.length; k++) if (!isMediaType(unchecked(items[k]))) return false;
  return true;
}

/**
 * Splits a joined authorization value into credentials (RFC 9110 11.4): a top-level comma starts a
 * new credential only where an auth-scheme follows (a token not followed by "="); otherwise it
 * separates auth-params of the same credential. Pieces are kept as written (trimmed). Null when a
 * quote does not close or there are more than `maxItems` credentials.
 */
export function splitCredentials(v: string, maxItems: i32): Array<string> | null {
  const out = new Array<string>();
  let start = 0;
  let i = 0;
  const n = v.length;
  while (i <= n) {
    if (i < n) {
      const c = v.charCodeAt(i);
      if (c == 0x22) {
        const e = quotedEnd(v, i);
        if (e < 0) return null;
        i = e;
        continue;
      }
      if (c != 0x2c) { i++; continue; }
      // A comma: does a new credential (auth-scheme, then SP or nothing, never "=") begin?
      let j = i + 1;
      while (j < n && (isOwsChar(v.charCodeAt(j)) || v.charCodeAt(j) == 0x2c)) j++;
      const te = tokenEnd(v, j);
      let k = te;
      while (k < n && isOwsChar(v.charCodeAt(k))) k++;
      const startsCredential = te > j && (k == n || v.charCodeAt(k) != 0x3d);
      if (!startsCredential) { i++; continue; }
    }
    const piece = trimOws(v.substring(start, i));
    if (piece.length > 0) {
      if (out.length >= maxItems) return null;
      out.push(piece);
    }
    start = i + 1;
    i++;
  }
  return out;
}
