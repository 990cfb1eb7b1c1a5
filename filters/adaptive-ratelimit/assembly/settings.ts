// adaptive-ratelimit configuration. Mirrors ../config.schema.json.
import { ConfigReader, fieldPath, indexPath } from "../../../runtime/assembly/config";
import { JsonObject } from "../../../runtime/assembly/json";
import { PidParams } from "./pid";

export const MAX_RULES: i32 = 64;
export const MAX_CLASSES: i32 = 8;
/** A latency percentile q is read only from at least TAIL_SAMPLES / (1 - q) completions. */
export const TAIL_SAMPLES: f64 = 1;

export enum Signal { Latency, ErrorRatio }

export class Rule {
  name: string = "";
  pathPrefix: string = "";
  method: string = "";
  headerName: string = "";
  headerValue: string = "";
  signal: Signal = Signal.Latency;
  percentile: f64 = 0.9;
  pid: PidParams = new PidParams();
  burstMs: f64 = 200;
  /**
   * Latency rules: at most rate x setpoint x this many requests in flight (Little's law: the
   * mean latency may reach this share of the setpoint before the guard holds); 0: no guard.
   */
  inflightGuard: f64 = 0.5;

  matches(path: string, method: string, header: string | null): bool {
    if (this.pathPrefix.length > 0 && !path.startsWith(this.pathPrefix)) return false;
    if (this.method.length > 0 && this.method != method) return false;
    if (this.headerName.length > 0 && (header === null || (this.headerValue.length > 0 && header != this.headerValue))) return false;
    return true;
  }

  /** What identifies the controller: changing these starts it afresh; other changes are bumpless. */
  identity(): string {
    return this.name + "|" + (this.signal == Signal.Latency ? "latency" : "error_ratio");
  }
}

export class PriorityClass {
  /** `reserve`: the share of the bucket held back from this class (0 for the most critical). */
  constructor(public name: string, public reserve: f64) {}
}

export enum PrioritySourceKind { Header, RouteMetadata, FilterState }

/** Where a request's class is read from: a request header, the route's metadata, or filter state. */
export class PrioritySource {
  /** The header name as bytes (header sources). */
  headerBytes: ArrayBuffer = new ArrayBuffer(0);
  /** The property path (route metadata and filter state sources). */
  path: Array<string> = new Array<string>();
  constructor(public kind: PrioritySourceKind, public name: string, public namespace: string = "") {
    if (kind == PrioritySourceKind.Header) this.headerBytes = String.UTF8.encode(name);
    else if (kind == PrioritySourceKind.RouteMetadata) this.path = ["xds", "route_metadata", "filter_metadata", namespace, name];
    else this.path = ["filter_state", name];
  }
}

/** The route metadata namespace a `route_metadata` source reads by default. */
export const METADATA_NAMESPACE = "adaptive-ratelimit";

export class Settings {
  rules: Array<Rule> = new Array<Rule>();
  classes: Array<PriorityClass> = new Array<PriorityClass>();
  /** In order: the first source that names a known class gives the request's class. */
  prioritySources: Array<PrioritySource> = new Array<PrioritySource>();
  priorityHeader: string = "x-priority";
  defaultClass: i32 = 0;
  rejectStatus: u32 = 429;
  dryRun: bool = false;
  tickMs: u32 = 100;
  quotaHeaders: bool = true;
  stampBuild: bool = false;
}

function defaultClasses(): Array<PriorityClass> {
  const c = new Array<PriorityClass>();
  c.push(new PriorityClass("critical", 0));
  c.push(new PriorityClass("normal", 0.2));
  c.push(new PriorityClass("sheddable", 0.5));
  return c;
}

function lowerName(r: ConfigReader, path: string, v: string): void {
  if (v.length == 0 || v.length > 64) { r.fail(path, "must be 1-64 characters"); return; }
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f)) {
      r.fail(path, "must use a-z, 0-9, '-' and '_' only, got \"" + v + "\"");
      return;
    }
  }
}

function parseController(r: ConfigReader, obj: JsonObject, path: string, rule: Rule): void {
  r.allowKeys(obj, path, ["signal", "percentile", "setpoint_ms", "setpoint_ratio", "kp", "ki", "kd", "interval_ms",
    "min_rate", "max_rate", "initial_rate", "max_step", "max_decrease", "creep", "min_samples", "filter", "inflight_guard"]);
  const signal = r.oneOf(obj, path, "signal", ["latency", "error_ratio"], "latency");
  rule.signal = signal == "latency" ? Signal.Latency : Signal.ErrorRatio;
  const p = rule.pid;
  if (rule.signal == Signal.Latency) {
    rule.percentile = r.num(obj, path, "percentile", 90, 50, 99.9) / 100.0;
    p.setpoint = r.num(obj, path, "setpoint_ms", 0, 1, 600000, true);
    if (obj.has("setpoint_ratio")) r.fail(fieldPath(path, "setpoint_ratio"), "only for signal error_ratio");
    rule.inflightGuard = r.num(obj, path, "inflight_guard", 0.5, 0, 1);
    rule.pid.guarded = rule.inflightGuard > 0;
  } else {
    rule.inflightGuard = 0;
    if (obj.has("inflight_guard") && r.ok) r.fail(fieldPath(path, "inflight_guard"), "only for signal latency (the guard holds requests in flight to rate x setpoint_ms x inflight_guard)");
    p.setpoint = r.num(obj, path, "setpoint_ratio", 0, 0.0001, 0.9, true);
    if (obj.has("setpoint_ms") || obj.has("percentile")) r.fail(fieldPath(path, obj.has("setpoint_ms") ? "setpoint_ms" : "percentile"), "only for signal latency");
  }
  p.kp = r.num(obj, path, "kp", 0.2, 0, 100);
  p.ki = r.num(obj, path, "ki", 0.3, 0, 100);
  p.kd = r.num(obj, path, "kd", 0.6, 0, 100);
  p.intervalMs = <f64>r.int(obj, path, "interval_ms", 1000, 100, 600000);
  p.minRate = r.num(obj, path, "min_rate", 1, 0.01, 1e7);
  p.maxRate = r.num(obj, path, "max_rate", 100000, 0.01, 1e7);
  // Start open: a new rule (a deploy, an Envoy restart: shared data does not survive one) admits
  // up to max_rate and cuts only once the signal says so, from what was actually admitted.
  p.initialRate = r.num(obj, path, "initial_rate", p.maxRate, 0.01, 1e7);
  p.maxStep = r.num(obj, path, "max_step", 0.1, 0.01, 10);
  p.maxDecrease = r.num(obj, path, "max_decrease", 0.5, 0.01, 0.9);
  p.creep = r.num(obj, path, "creep", 0.01, 0.001, 1);
  p.minSamples = r.int(obj, path, "min_samples", 20, 1, 1000000);
  // A percentile needs samples past it to be read at all: at least TAIL_SAMPLES beyond it
  // (100 for p99). With fewer, one slow request is the reading, and the controller would cut
  // on noise; the window grows until there are enough (see the filter's MAX_WINDOW).
  if (rule.signal == Signal.Latency) {
    const tail = <i64>Math.ceil(TAIL_SAMPLES / (1 - rule.percentile) - 1e-9);
    if (tail > p.minSamples) p.minSamples = tail;
  }
  p.filter = r.num(obj, path, "filter", 0.7, 0.01, 1);
  if (r.ok && p.minRate > p.maxRate) r.fail(fieldPath(path, "min_rate"), "must be <= max_rate (" + p.maxRate.toString() + "), got " + p.minRate.toString());
  if (r.ok && (p.initialRate < p.minRate || p.initialRate > p.maxRate)) r.fail(fieldPath(path, "initial_rate"), "must lie within [min_rate, max_rate]");
}

/** A filter state key or metadata namespace: 1-256 characters, no NUL (it is a property path segment). */
function pathSegment(r: ConfigReader, path: string, v: string): void {
  if (v.length == 0 || v.length > 256) { r.fail(path, "must be 1-256 characters"); return; }
  if (v.indexOf("\0") >= 0) r.fail(path, "must not contain NUL");
}

/** `priority_from` (or, without it, `priority_header` alone) into s.prioritySources. */
function parsePrioritySources(r: ConfigReader, obj: JsonObject, s: Settings): void {
  const list = r.array(obj, "", "priority_from", 8);
  if (list === null) {
    s.prioritySources.push(new PrioritySource(PrioritySourceKind.Header, s.priorityHeader));
    return;
  }
  if (!r.ok) return;
  if (list.items.length == 0) { r.fail("priority_from", "must not be empty"); return; }
  if (obj.has("priority_header")) { r.fail("priority_header", "not with priority_from (list the header there)"); return; }
  for (let i = 0; i < list.items.length && r.ok; i++) {
    const o = r.itemObject(list, "priority_from", i);
    if (o === null) return;
    const p = indexPath("priority_from", i);
    r.allowKeys(o, p, ["header", "route_metadata", "filter_state", "namespace"]);
    if (!r.ok) return;
    const kinds = (o.has("header") ? 1 : 0) + (o.has("route_metadata") ? 1 : 0) + (o.has("filter_state") ? 1 : 0);
    if (kinds != 1) { r.fail(p, "must name exactly one of header, route_metadata, filter_state"); return; }
    if (o.has("namespace") && !o.has("route_metadata")) { r.fail(fieldPath(p, "namespace"), "only for route_metadata"); return; }
    if (o.has("header")) {
      const h = r.str(o, p, "header", "");
      lowerName(r, fieldPath(p, "header"), h);
      s.prioritySources.push(new PrioritySource(PrioritySourceKind.Header, h));
    } else if (o.has("route_metadata")) {
      const key = r.str(o, p, "route_metadata", "");
      pathSegment(r, fieldPath(p, "route_metadata"), key);
      const ns = r.str(o, p, "namespace", METADATA_NAMESPACE);
      pathSegment(r, fieldPath(p, "namespace"), ns);
      s.prioritySources.push(new PrioritySource(PrioritySourceKind.RouteMetadata, key, ns));
    } else {
      const key = r.str(o, p, "filter_state", "");
      pathSegment(r, fieldPath(p, "filter_state"), key);
      s.prioritySources.push(new PrioritySource(PrioritySourceKind.FilterState, key));
    }
  }
}

/** Decodes the configuration into `s`. Returns "" or "<field path>: <reason>". */
export function parseSettings(text: string, s: Settings): string {
  const r = new ConfigReader();
  const obj = r.parse(text);
  if (obj === null) return r.error;
  r.allowKeys(obj, "", ["rules", "classes", "priority_header", "priority_from", "default_class", "reject_status", "dry_run", "tick_ms", "quota_headers", "stamp_build"]);
  const classes = r.array(obj, "", "classes", MAX_CLASSES);
  if (classes === null) s.classes = defaultClasses();
  else {
    if (classes.items.length == 0) r.fail("classes", "must not be empty");
    for (let i = 0; i < classes.items.length && r.ok; i++) {
      const c = r.itemObject(classes, "classes", i);
      if (c === null) break;
      const p = indexPath("classes", i);
      r.allowKeys(c, p, ["name", "reserve"]);
      const name = r.str(c, p, "name", "", true);
      lowerName(r, fieldPath(p, "name"), name);
      const reserve = r.num(c, p, "reserve", i == 0 ? 0 : 0.2 * <f64>i, 0, 0.95);
      if (i == 0 && reserve != 0) r.fail(fieldPath(p, "reserve"), "the first (most critical) class must have reserve 0");
      for (let k = 0; k < s.classes.length; k++) if (s.classes[k].name == name) r.fail(fieldPath(p, "name"), "duplicate class \"" + name + "\"");
      if (s.classes.length > 0 && reserve < s.classes[s.classes.length - 1].reserve) r.fail(fieldPath(p, "reserve"), "must not be lower than the class before it (classes go from most to least critical)");
      s.classes.push(new PriorityClass(name, reserve));
    }
  }
  s.priorityHeader = r.str(obj, "", "priority_header", "x-priority");
  lowerName(r, "priority_header", s.priorityHeader);
  parsePrioritySources(r, obj, s);
  const defaultClass = r.str(obj, "", "default_class", "");
  s.defaultClass = -1;
  for (let i = 0; i < s.classes.length; i++) if (s.classes[i].name == defaultClass) s.defaultClass = i;
  if (defaultClass.length == 0) s.defaultClass = s.classes.length > 1 ? 1 : 0;
  else if (s.defaultClass < 0 && r.ok) r.fail("default_class", "not one of the classes: \"" + defaultClass + "\"");
  s.rejectStatus = <u32>r.int(obj, "", "reject_status", 429, 400, 599);
  s.dryRun = r.bool(obj, "", "dry_run", false);
  s.tickMs = <u32>r.int(obj, "", "tick_ms", 100, 10, 10000);
  s.quotaHeaders = r.bool(obj, "", "quota_headers", true);
  s.stampBuild = r.bool(obj, "", "stamp_build", false);

  const rules = r.array(obj, "", "rules", MAX_RULES, true);
  if (rules !== null && rules.items.length == 0 && r.ok) r.fail("rules", "must not be empty");
  if (rules !== null) {
    for (let i = 0; i < rules.items.length && r.ok; i++) {
      const o = r.itemObject(rules, "rules", i);
      if (o === null) break;
      const p = indexPath("rules", i);
      r.allowKeys(o, p, ["name", "match", "controller", "burst_ms"]);
      const rule = new Rule();
      rule.name = r.str(o, p, "name", "", true);
      lowerName(r, fieldPath(p, "name"), rule.name);
      for (let k = 0; k < s.rules.length; k++) if (s.rules[k].name == rule.name) r.fail(fieldPath(p, "name"), "duplicate rule \"" + rule.name + "\"");
      const m = r.object(o, p, "match");
      if (m !== null) {
        const mp = fieldPath(p, "match");
        r.allowKeys(m, mp, ["path_prefix", "method", "header", "header_value"]);
        rule.pathPrefix = r.str(m, mp, "path_prefix", "");
        if (rule.pathPrefix.length > 0 && !rule.pathPrefix.startsWith("/")) r.fail(fieldPath(mp, "path_prefix"), "must start with '/'");
        rule.method = r.str(m, mp, "method", "");
        rule.headerName = r.str(m, mp, "header", "");
        rule.headerValue = r.str(m, mp, "header_value", "");
        if (rule.headerValue.length > 0 && rule.headerName.length == 0) r.fail(fieldPath(mp, "header_value"), "needs header");
      }
      const c = r.object(o, p, "controller", true);
      if (c !== null) parseController(r, c, fieldPath(p, "controller"), rule);
      rule.burstMs = <f64>r.int(o, p, "burst_ms", 200, 1, 60000);
      s.rules.push(rule);
    }
  }
  return r.error;
}
