// The plugin configuration: defaults that fix the common case with `{}`, and validation that
// names the field of anything wrong. Mirrors ../config.schema.json.
import { ConfigReader, fieldPath, indexPath } from "../../../runtime/assembly/config";
import { JsonObject } from "../../../runtime/assembly/json";
import { HeaderClass, OnConflict, Rule, RuleIndex, defaultRules } from "./policy";

export const MAX_RULES: i32 = 64;
export const MAX_ALIASES: i32 = 32;

export class Alias {
  fromBytes: ArrayBuffer;
  constructor(public from: string, public to: string, public rename: bool, public request: bool, public response: bool) {
    this.fromBytes = String.UTF8.encode(from);
  }
}

export class Settings {
  dryRun: bool = false;
  requestRules: RuleIndex = new RuleIndex();
  responseRules: RuleIndex = new RuleIndex();
  requestAliases: Array<Alias> = new Array<Alias>();
  responseAliases: Array<Alias> = new Array<Alias>();
  diagnoseProtocolErrors: bool = true;
  diagnosticHeader: string = "";
  stampBuild: bool = false;
}

/** RFC 9110 token characters, lowercase only (Envoy lowercases every name). */
export function validHeaderName(name: string): bool {
  if (name.length == 0 || name.length > 128) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
      c == 0x21 || c == 0x23 || c == 0x24 || c == 0x25 || c == 0x26 || c == 0x27 || c == 0x2a || c == 0x2b ||
      c == 0x2d || c == 0x2e || c == 0x5e || c == 0x5f || c == 0x60 || c == 0x7c || c == 0x7e;
    if (!ok) return false;
  }
  return true;
}

function headerName(r: ConfigReader, obj: JsonObject, path: string, key: string): string {
  const name = r.str(obj, path, key, "", true);
  if (!r.ok) return "";
  if (name == "host") return ":authority";
  if (name == ":authority") return name;
  if (!validHeaderName(name)) {
    const lower = name.toLowerCase();
    r.fail(fieldPath(path, key), validHeaderName(lower)
      ? "header names must be lowercase (Envoy lowercases every name), got \"" + name + "\""
      : "not a valid header name: \"" + name + "\"");
  }
  return name;
}

function directions(r: ConfigReader, obj: JsonObject, path: string): i32 {
  const d = r.oneOf(obj, path, "direction", ["request", "response", "both"], "both");
  return d == "request" ? 1 : d == "response" ? 2 : 3;
}

/** Decodes the configuration. Returns "" and fills `out`, or "<field path>: <reason>". */
export function parseSettings(text: string, out: Settings): string {
  const r = new ConfigReader();
  const obj = r.parse(text);
  if (obj === null) return r.error;
  r.allowKeys(obj, "", ["dry_run", "request", "response", "headers", "aliases", "diagnose_upstream_protocol_errors", "diagnostic_header", "stamp_build"]);
  out.dryRun = r.bool(obj, "", "dry_run", false);
  const doRequest = r.bool(obj, "", "request", true);
  const doResponse = r.bool(obj, "", "response", true);
  out.diagnoseProtocolErrors = r.bool(obj, "", "diagnose_upstream_protocol_errors", true);
  out.stampBuild = r.bool(obj, "", "stamp_build", false);
  const diag = r.str(obj, "", "diagnostic_header", "");
  if (diag.length > 0 && !validHeaderName(diag)) r.fail("diagnostic_header", "not a valid lowercase header name: \"" + diag + "\"");
  out.diagnosticHeader = diag;

  const rules = defaultRules();
  const list = r.array(obj, "", "headers", MAX_RULES);
  if (list !== null) {
    for (let i = 0; i < list.items.length; i++) {
      const p = indexPath("headers", i);
      const item = r.itemObject(list, "headers", i);
      if (item === null) break;
      r.allowKeys(item, p, ["name", "class", "on_conflict", "split", "direction"]);
      const name = headerName(r, item, p, "name");
      if (!r.ok) break;
      let existing: Rule | null = null;
      for (let k = 0; k < rules.length; k++) if (rules[k].name == name) existing = rules[k];
      const clsName = r.oneOf(item, p, "class", ["singleton", "list", "ignore"], "singleton");
      const cls = clsName == "list" ? HeaderClass.List : clsName == "ignore" ? HeaderClass.Ignore : HeaderClass.Singleton;
      if (name == "set-cookie" && cls == HeaderClass.Singleton) { r.fail(fieldPath(p, "class"), "set-cookie is never merged (each cookie is its own field line)"); break; }
      const conflictName = r.oneOf(item, p, "on_conflict", ["first", "last", "reject"],
        existing === null ? "first" : existing.onConflict == OnConflict.Reject ? "reject" : existing.onConflict == OnConflict.Last ? "last" : "first");
      const onConflict = conflictName == "reject" ? OnConflict.Reject : conflictName == "last" ? OnConflict.Last : OnConflict.First;
      const split = r.bool(item, p, "split", existing === null ? false : existing.split);
      const dirs = item.has("direction") ? directions(r, item, p) : existing === null ? 3 : (existing.request ? 1 : 0) | (existing.response ? 2 : 0);
      const rule = new Rule(name, cls, onConflict, split, (dirs & 1) != 0, (dirs & 2) != 0);
      if (existing !== null) rules[rules.indexOf(existing)] = rule;
      else rules.push(rule);
    }
  }
  if (rules.length > MAX_RULES) r.fail("headers", "more than " + MAX_RULES.toString() + " rules in all");

  const aliases = r.array(obj, "", "aliases", MAX_ALIASES);
  if (aliases !== null) {
    for (let i = 0; i < aliases.items.length && r.ok; i++) {
      const p = indexPath("aliases", i);
      const item = r.itemObject(aliases, "aliases", i);
      if (item === null) break;
      r.allowKeys(item, p, ["from", "to", "mode", "direction"]);
      const from = headerName(r, item, p, "from");
      const to = headerName(r, item, p, "to");
      if (!r.ok) break;
      if (from.startsWith(":") || to.startsWith(":")) { r.fail(p, "pseudo-headers cannot be aliased"); break; }
      if (from == to) { r.fail(fieldPath(p, "to"), "must differ from \"from\""); break; }
      const mode = r.oneOf(item, p, "mode", ["copy", "rename"], "copy");
      const dirs = directions(r, item, p);
      const alias = new Alias(from, to, mode == "rename", (dirs & 1) != 0, (dirs & 2) != 0);
      if (alias.request) out.requestAliases.push(alias);
      if (alias.response) out.responseAliases.push(alias);
    }
  }
  if (!r.ok) return r.error;

  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i];
    if (rule.cls != HeaderClass.Singleton) continue;
    if (doRequest && rule.request) out.requestRules.add(rule);
    if (doResponse && rule.response) out.responseRules.add(new Rule(rule.name, rule.cls, rule.onConflict, rule.split, rule.request, rule.response));
  }
  return "";
}
