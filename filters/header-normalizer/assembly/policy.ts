// The duplicate policy: which headers are singletons, how a repeated or comma-joined value is
// reduced to one, and when to refuse. Pure functions, no hostcalls.
import { splitList, trimOws } from "../../../runtime/assembly/httplist";

export enum HeaderClass { Singleton, List, Ignore }
export enum OnConflict { First, Last, Reject }

export const MAX_ELEMENTS: i32 = 64;

export class Rule {
  nameBytes: ArrayBuffer;
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
  r.push(new Rule("authorization", S, OnConflict.Reject, false, true, false));
  r.push(new Rule("proxy-authorization", S, OnConflict.Reject, false, true, false));
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
      const items = splitList(v, MAX_ELEMENTS);
      if (items === null) return new Decision(Action.Malformed, "", "unbalanced quotes or more than " + MAX_ELEMENTS.toString() + " elements");
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
