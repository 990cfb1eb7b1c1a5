// header-normalizer: makes duplicate singleton headers single again, in both directions,
// renames headers to aliases an application expects, and names the upstream behind the
// protocol errors a duplicate Transfer-Encoding causes.
import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime/assembly";
import {
  FilterRoot, FilterStream, Header, MapType, LogLevel, Metric, PairsView,
  getHeadersRaw, setHeader, addHeader, removeHeader, getHeader, getPropertyString, sendLocalResponse,
  counter, logEnabled, logDebug, logInfo, logWarn, nowMillis,
} from "../../../runtime/assembly/index";
import { Action, Decision, RuleIndex, decide } from "./policy";
import { Alias, Settings, parseSettings } from "./settings";

export const FILTER_NAME = "header-normalizer";
export const VERSION = "0.1.0";
const PROTOCOL_ERROR_DETAILS = "upstream_reset_before_response_started{protocol_error";
const PROTOCOL_LOG_INTERVAL_MS: i64 = 10000;

class DirectionMetrics {
  collapsed: Metric;
  resolved: Metric;
  rejected: Metric;
  malformed: Metric;
  copied: Metric;
  renamed: Metric;
  constructor(dir: string) {
    const p = "header_normalizer." + dir + ".";
    this.collapsed = counter(p + "collapsed");
    this.resolved = counter(p + "conflict_resolved");
    this.rejected = counter(p + "rejected");
    this.malformed = counter(p + "malformed_skipped");
    this.copied = counter(p + "alias_copied");
    this.renamed = counter(p + "alias_renamed");
  }
}

export class NormalizerRoot extends FilterRoot {
  settings: Settings = new Settings();
  request: DirectionMetrics | null = null;
  response: DirectionMetrics | null = null;
  protocolErrors: Metric | null = null;
  lastProtocolLog: i64 = -PROTOCOL_LOG_INTERVAL_MS;

  get filterName(): string { return FILTER_NAME; }

  configure(text: string): string {
    const next = new Settings();
    const error = parseSettings(text, next);
    if (error.length > 0) return error;
    this.settings = next;
    if (this.request === null) {
      this.request = new DirectionMetrics("request");
      this.response = new DirectionMetrics("response");
      this.protocolErrors = counter("header_normalizer.upstream_protocol_error");
    }
    return "";
  }

  createContext(context_id: u32): Context {
    return new NormalizerStream(context_id, this);
  }
}

class NormalizerStream extends FilterStream {
  constructor(context_id: u32, readonly normalizer: NormalizerRoot) {
    super(context_id, normalizer);
  }

  onRequestHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.normalizer;
    const s = root.settings;
    if (s.requestRules.all.length == 0 && s.requestAliases.length == 0) return FilterHeadersStatusValues.Continue;
    normalize(MapType.RequestHeaders, s.requestRules, s.requestAliases, s.dryRun, root.request!, "request", 400, false);
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.normalizer;
    const s = root.settings;
    let status: string | null = null;
    if (s.responseRules.all.length > 0 || s.responseAliases.length > 0) {
      status = normalize(MapType.ResponseHeaders, s.responseRules, s.responseAliases, s.dryRun, root.response!, "response", 502, true);
    } else if (s.diagnoseProtocolErrors) {
      status = getHeader(MapType.ResponseHeaders, ":status");
    }
    if (s.diagnoseProtocolErrors && status !== null && (status == "502" || status == "503")) diagnose(root);
    if (s.stampBuild) setHeader(MapType.ResponseHeaders, "x-header-normalizer-build", VERSION);
    return FilterHeadersStatusValues.Continue;
  }
}

/**
 * Applies the rules to one header map. One hostcall reads the map; nothing is written unless a
 * header needs a change. With readStatus, returns the map's :status value (response side).
 */
function normalize(map: i32, rules: RuleIndex, aliases: Array<Alias>, dryRun: bool, m: DirectionMetrics, dir: string, rejectStatus: u32, readStatus: bool): string | null {
  const raw = getHeadersRaw(map);
  if (raw === null) return null;
  const view = PairsView.parse(raw);
  if (view === null) return null;
  let status: string | null = null;
  const all = rules.all;
  for (let i = 0; i < all.length; i++) unchecked(all[i]).hits.length = 0;
  for (let i = 0; i < view.count; i++) {
    const n = view.nameLength(i);
    if (readStatus && n == 7 && status === null && view.name(i) == ":status") status = view.value(i);
    const candidates = rules.candidates(n);
    if (candidates === null) continue;
    for (let k = 0; k < candidates.length; k++) {
      const rule = unchecked(candidates[k]);
      if (view.nameIs(i, rule.nameBytes)) { rule.hits.push(i); break; }
    }
  }
  for (let i = 0; i < all.length; i++) {
    const rule = unchecked(all[i]);
    const hits = rule.hits;
    if (hits.length == 0) continue;
    // Fast path: one entry with no comma is already clean.
    if (hits.length == 1 && (!rule.split || !view.valueHasByte(unchecked(hits[0]), 0x2c))) continue;
    const values = new Array<string>(hits.length);
    let utf8 = true;
    for (let k = 0; k < hits.length; k++) {
      const at = unchecked(hits[k]);
      if (!view.valueIsUtf8(at)) { utf8 = false; break; }
      unchecked((values[k] = view.value(at)));
    }
    // A value that is not UTF-8 would not survive decoding and re-encoding: never rewrite it.
    const d = utf8 ? decide(rule, values) : new Decision(Action.Malformed, "", "value is not valid UTF-8");
    switch (d.action) {
      case Action.Clean:
        break;
      case Action.Malformed:
        m.malformed.increment(1);
        if (logEnabled(LogLevel.Debug)) logDebug(FILTER_NAME + ": left " + dir + " " + rule.name + " unchanged: " + d.reason);
        break;
      case Action.Collapse:
      case Action.Resolve: {
        (d.action == Action.Collapse ? m.collapsed : m.resolved).increment(1);
        if (dryRun) {
          logInfo(FILTER_NAME + " dry-run: would set " + dir + " " + rule.name + " to \"" + d.value + "\" (" + hits.length.toString() + " entries)");
        } else {
          setHeader(map, rule.name, d.value);
          if (logEnabled(LogLevel.Debug)) logDebug(FILTER_NAME + ": set " + dir + " " + rule.name + " to \"" + d.value + "\"");
        }
        break;
      }
      case Action.Reject: {
        m.rejected.increment(1);
        if (dryRun) {
          logInfo(FILTER_NAME + " dry-run: would reject the " + dir + ": " + d.reason);
          break;
        }
        logInfo(FILTER_NAME + ": rejected the " + dir + ": " + d.reason);
        sendLocalResponse(rejectStatus, "header_normalizer_conflict", FILTER_NAME + ": " + d.reason + "\n", new Array<Header>());
        return status;
      }
    }
  }
  for (let i = 0; i < aliases.length; i++) applyAlias(map, view, unchecked(aliases[i]), dryRun, m, dir);
  return status;
}

/** Copies (or renames) every entry of alias.from to alias.to, replacing what `to` held. */
function applyAlias(map: i32, view: PairsView, alias: Alias, dryRun: bool, m: DirectionMetrics, dir: string): void {
  let first = true;
  for (let i = 0; i < view.count; i++) {
    if (!view.nameIs(i, alias.fromBytes)) continue;
    if (dryRun) {
      if (first) logInfo(FILTER_NAME + " dry-run: would " + (alias.rename ? "rename " : "copy ") + dir + " " + alias.from + " to " + alias.to);
    } else if (first) {
      setHeader(map, alias.to, view.value(i));
    } else {
      addHeader(map, alias.to, view.value(i));
    }
    first = false;
  }
  if (first) return; // source absent
  if (alias.rename) {
    if (!dryRun) removeHeader(map, alias.from);
    m.renamed.increment(1);
  } else {
    m.copied.increment(1);
  }
}

/**
 * A response Envoy made because the upstream's HTTP/1 response broke the codec (the signature
 * of a duplicate Transfer-Encoding): count it, name the upstream, optionally tag the response.
 */
function diagnose(root: NormalizerRoot): void {
  const details = getPropertyString(["response", "code_details"]);
  if (details === null || !details.startsWith(PROTOCOL_ERROR_DETAILS)) return;
  root.protocolErrors!.increment(1);
  const s = root.settings;
  if (s.diagnosticHeader.length > 0) setHeader(MapType.ResponseHeaders, s.diagnosticHeader, "upstream-protocol-error");
  const now = nowMillis();
  if (now - root.lastProtocolLog < PROTOCOL_LOG_INTERVAL_MS) return;
  root.lastProtocolLog = now;
  const cluster = getPropertyString(["xds", "cluster_name"]);
  const address = getPropertyString(["upstream", "address"]);
  logWarn(FILTER_NAME + ": upstream " + (cluster === null ? "<unknown cluster>" : cluster) + (address === null ? "" : " (" + address + ")") +
    " sent a response Envoy's HTTP/1 codec rejected (" + details + "); a duplicate Transfer-Encoding is the usual cause, see the header-normalizer README");
}
