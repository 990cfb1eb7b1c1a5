// env-router: same env first, then the env's fallback chain, then default; the tag names the
// origin env and is never rewritten by a hop that fell back.
import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime/assembly";
import {
  FilterRoot, FilterStream, Header, MapType, LogLevel, Metric, PairsView, ConfigReader,
  getHeadersRaw, setHeader, addHeader, removeHeader, getPropertyString, getShared, setShared, nextSharedId, takeSharedLease,
  setTickPeriod, nowMillis, httpCallStatus, httpCallBody, counter, logEnabled, logDebug, logInfo, logWarn,
  getEnv, parseIpLenient, Status,
} from "../../../runtime/assembly/index";
import { Availability, Outcome, decide, parseAvailability } from "./availability";
import { baggageMember, b3TraceId, cookieValue, fnv1a, requestIdKey, traceparentTraceId, withBaggageMember, withoutBaggageMember, withoutCookie } from "./carriers";
import { envAllowed, fallbackChain, validEnvName } from "./names";
import { Mode, Settings, Source, parseSettings } from "./settings";

export const FILTER_NAME = "env-router";
export const VERSION = "0.1.0";
const CHECK_PERIOD_MS: u32 = 1000;

class Metrics {
  hit: Metric = counter("env_router.hit");
  fallback: Metric = counter("env_router.fallback");
  untagged: Metric = counter("env_router.untagged");
  rejectedTag: Metric = counter("env_router.rejected_tag");
  correlated: Metric = counter("env_router.correlated");
  recorded: Metric = counter("env_router.recorded");
  unknownService: Metric = counter("env_router.unknown_service");
  productionPinned: Metric = counter("env_router.production_pinned");
  refreshOk: Metric = counter("env_router.controller_refresh_ok");
  refreshFailed: Metric = counter("env_router.controller_refresh_failed");
  oversizedBaggage: Metric = counter("env_router.oversized_baggage");
  strippedCarrier: Metric = counter("env_router.stripped_carrier");
  correlationLost: Metric = counter("env_router.correlation_lost");
}

/** Names of request headers the filter reads, as bytes for PairsView matching. */
class Names {
  tag: ArrayBuffer;
  trusted: ArrayBuffer;
  baggage: ArrayBuffer = String.UTF8.encode("baggage");
  cookie: ArrayBuffer = String.UTF8.encode("cookie");
  authority: ArrayBuffer = String.UTF8.encode(":authority");
  traceparent: ArrayBuffer = String.UTF8.encode("traceparent");
  b3: ArrayBuffer = String.UTF8.encode("x-b3-traceid");
  requestId: ArrayBuffer = String.UTF8.encode("x-request-id");
  constructor(s: Settings) {
    this.tag = String.UTF8.encode(s.header);
    this.trusted = String.UTF8.encode(s.trustedHeader);
  }
}

export class EnvRouterRoot extends FilterRoot {
  settings: Settings = new Settings();
  names: Names = new Names(new Settings());
  metrics: Metrics | null = null;
  stampValue: string = "";
  workerId: u64 = 0;
  mapCas: u32 = 0;
  nextRefreshMs: i64 = 0;
  refreshInFlight: bool = false;

  get filterName(): string { return FILTER_NAME; }

  configure(text: string): string {
    const next = new Settings();
    const error = parseSettings(text, next);
    if (error.length > 0) return error;
    let stamp = next.stampValue;
    if (next.stampHeader.length > 0 && stamp.length == 0 && next.stampEnvVar.length > 0) {
      const v = getEnv(next.stampEnvVar);
      if (v !== null) stamp = v;
    }
    if (next.stampHeader.length > 0 && stamp.length == 0 && next.stampNodeMetadata.length > 0) {
      const v = getPropertyString(["xds", "node", "metadata", next.stampNodeMetadata]);
      if (v !== null) stamp = v;
    }
    if (next.stampHeader.length > 0 && (stamp.length == 0 || stamp.length > 256 || stamp.indexOf("\r") >= 0 || stamp.indexOf("\n") >= 0)) {
      return "stamp: no usable value (set value, or an env_var / node_metadata key that is present, 1-256 characters)";
    }
    this.settings = next;
    this.names = new Names(next);
    this.stampValue = stamp;
    if (this.metrics === null) this.metrics = new Metrics();
    if (this.workerId == 0) {
      this.workerId = nextSharedId("env-router:vm-seq");
    }
    this.mapCas = 0;
    this.nextRefreshMs = 0;
    setTickPeriod(next.controller === null ? 0 : CHECK_PERIOD_MS);
    return "";
  }

  private mapKey(): string {
    const c = this.settings.controller!;
    return "env-router:map:" + c.cluster + c.path;
  }

  tick(): void {
    const c = this.settings.controller;
    if (c === null) return;
    this.adoptSharedMap();
    const now = nowMillis();
    if (this.refreshInFlight || now < this.nextRefreshMs) return;
    this.nextRefreshMs = now + c.refreshMs;
    if (!this.takeLease(now, c.refreshMs * 3)) return;
    const headers = new Array<Header>();
    headers.push(new Header(":method", "GET"));
    headers.push(new Header(":path", c.path));
    headers.push(new Header(":authority", c.authority));
    headers.push(new Header("accept", "application/json"));
    const token = this.call(c.cluster, headers, "", c.timeoutMs, null, onControllerResponse);
    if (token > 0) this.refreshInFlight = true;
    else this.refreshFailed("http_call to cluster " + c.cluster + " failed with status " + (-token).toString());
  }

  /** One worker per Envoy refreshes: it holds the controller's lease in shared data. */
  private takeLease(now: i64, ttl: i64): bool {
    return takeSharedLease("env-router:lease:" + this.settings.controller!.cluster + this.settings.controller!.path, this.workerId, now, ttl);
  }

  /** Adopts the map another worker published, when it changed. */
  adoptSharedMap(): void {
    const cur = getShared(this.mapKey());
    if (cur === null || cur.cas == this.mapCas) return;
    const parsed = parseControllerMap(String.UTF8.decode(cur.value));
    this.mapCas = cur.cas;
    if (parsed !== null) this.settings.services = parsed;
  }

  refreshFailed(reason: string): void {
    this.metrics!.refreshFailed.increment(1);
    logWarn(FILTER_NAME + ": availability refresh failed, keeping the last good map: " + reason);
  }

  createContext(context_id: u32): Context {
    return new EnvRouterStream(context_id, this);
  }
}

/** The controller's answer: {"services": {"<service>": ["env", ...]}}. Null (reason in r.error) when not acceptable. */
function readControllerMap(r: ConfigReader, text: string): Availability | null {
  const obj = r.parse(text);
  if (obj === null) return null;
  r.allowKeys(obj, "", ["services", "version"]);
  const services = r.object(obj, "", "services", true);
  if (services === null) return null;
  const avail = parseAvailability(r, services, "services");
  return r.ok ? avail : null;
}

function parseControllerMap(text: string): Availability | null {
  return readControllerMap(new ConfigReader(), text);
}

function onControllerResponse(base: FilterRoot, origin: Context | null, headers: u32, bodySize: usize, trailers: u32): void {
  const root = changetype<EnvRouterRoot>(base);
  root.refreshInFlight = false;
  const status = httpCallStatus();
  if (status != 200) {
    root.refreshFailed(status == 0 ? "no response (reset or timeout)" : "status " + status.toString());
    return;
  }
  const text = httpCallBody(<u32>bodySize);
  const r = new ConfigReader();
  const avail = readControllerMap(r, text);
  if (avail === null) {
    root.refreshFailed("unusable answer: " + r.error);
    return;
  }
  root.settings.services = avail;
  setShared("env-router:map:" + root.settings.controller!.cluster + root.settings.controller!.path, String.UTF8.encode(text), 0);
  root.adoptSharedMap();
  root.metrics!.refreshOk.increment(1);
  if (logEnabled(LogLevel.Debug)) logDebug(FILTER_NAME + ": availability map refreshed (" + avail.size.toString() + " services)");
}

function correlationKey(root: EnvRouterRoot, trace: string): string {
  return "env-router:corr:" + (fnv1a(trace) % <u32>root.settings.correlationSlots).toString();
}

class EnvRouterStream extends FilterStream {
  requested: string = "";
  served: string = "";
  step: i32 = -1;

  constructor(context_id: u32, readonly router: EnvRouterRoot) {
    super(context_id, router);
  }

  onRequestHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.router;
    const s = root.settings;
    const n = root.names;
    const m = root.metrics!;
    const raw = getHeadersRaw(MapType.RequestHeaders);
    if (raw === null) return FilterHeadersStatusValues.Continue;
    const view = PairsView.parse(raw);
    if (view === null) return FilterHeadersStatusValues.Continue;

    let tagAt = -1, baggageAt = -1, authorityAt = -1, traceparentAt = -1, b3At = -1, requestIdAt = -1, trustedAt = -1;
    let cookies = new Array<i32>();
    let baggages = new Array<i32>();
    for (let i = 0; i < view.count; i++) {
      if (tagAt < 0 && view.nameIs(i, n.tag)) tagAt = i;
      else if (view.nameIs(i, n.baggage)) { if (baggageAt < 0) baggageAt = i; baggages.push(i); }
      else if (view.nameIs(i, n.cookie)) cookies.push(i);
      else if (authorityAt < 0 && view.nameIs(i, n.authority)) authorityAt = i;
      else if (traceparentAt < 0 && view.nameIs(i, n.traceparent)) traceparentAt = i;
      else if (b3At < 0 && view.nameIs(i, n.b3)) b3At = i;
      else if (requestIdAt < 0 && view.nameIs(i, n.requestId)) requestIdAt = i;
      else if (trustedAt < 0 && s.trustedHeader.length > 0 && view.nameIs(i, n.trusted)) trustedAt = i;
    }

    // A tag from outside is only believed at the gateway when the caller is trusted.
    let believe = true;
    if (s.mode == Mode.Gateway) believe = (trustedAt >= 0 && view.valueLength(trustedAt) > 0) || this.sourceTrusted(s);

    let env: string | null = null;
    let baggage: string | null = null;
    for (let k = 0; k < s.sources.length && env === null; k++) {
      const src = unchecked(s.sources[k]);
      let candidate: string | null = null;
      if (src == Source.Header && tagAt >= 0) candidate = view.value(tagAt);
      else if (src == Source.Baggage && baggageAt >= 0) {
        baggage = view.value(baggageAt);
        const b = baggageMember(baggage!, s.baggageKey);
        if (b.tooLarge) { m.oversizedBaggage.increment(1); baggage = null; }
        candidate = b.value;
      } else if (src == Source.Cookie) {
        for (let c = 0; c < cookies.length && candidate === null; c++) candidate = cookieValue(view.value(unchecked(cookies[c])), s.cookie);
      }
      if (candidate === null) continue;
      if (!believe) {
        m.rejectedTag.increment(1);
        if (logEnabled(LogLevel.Debug)) logDebug(FILTER_NAME + ": ignored a tag from an untrusted caller");
        continue;
      }
      if (!validEnvName(candidate, s.maxLength) || !envAllowed(candidate, s.allowed)) {
        m.rejectedTag.increment(1);
        if (logEnabled(LogLevel.Debug)) logDebug(FILTER_NAME + ": rejected tag value (" + candidate.length.toString() + " characters)");
        continue;
      }
      env = candidate;
    }

    if (s.mode == Mode.Gateway) {
      // The edge: the trust header is the gateway's business only, and an untrusted client's tag
      // must not reach the first sidecar in any carrier it would believe. Never dry.
      if (trustedAt >= 0) removeHeader(MapType.RequestHeaders, s.trustedHeader);
      if (!believe) {
        if (tagAt >= 0) removeHeader(MapType.RequestHeaders, s.header);
        this.stripCarriers(view, baggages, cookies);
        tagAt = -1;
        baggage = null;
        baggageAt = -1;
      }
    }

    const trace = traceKey(view, traceparentAt, b3At, requestIdAt);
    if (s.mode == Mode.Inbound) {
      if (env !== null && trace !== null && s.correlation && !s.dryRun) {
        setShared(correlationKey(root, trace), String.UTF8.encode(trace + "\n" + env! + "\n" + (nowMillis() + s.correlationTtlMs).toString()), 0);
        m.recorded.increment(1);
      }
      if (env !== null && !s.dryRun) this.writeTag(view, tagAt, env!, baggage, baggageAt);
      this.requested = env === null ? "" : env!;
      return FilterHeadersStatusValues.Continue;
    }

    if (env === null && trace !== null && s.correlation && s.mode == Mode.Outbound) {
      const found = getShared(correlationKey(root, trace));
      if (found !== null) {
        const parts = String.UTF8.decode(found.value).split("\n");
        // The slot is shared by every trace id hashing to it: only this trace's own entry counts.
        // Another live trace there means this trace's tag was overwritten (or never fitted): lost.
        if (parts.length == 3 && parts[0] == trace && I64.parseInt(parts[2]) > nowMillis() && validEnvName(parts[1], s.maxLength)) {
          env = parts[1];
          m.correlated.increment(1);
        } else if (parts.length == 3 && parts[0] != trace && I64.parseInt(parts[2]) > nowMillis()) {
          m.correlationLost.increment(1);
        }
      }
    }
    if (env === null && s.ownEnv.length > 0) env = s.ownEnv;

    const authority = authorityAt >= 0 ? view.value(authorityAt) : "";
    let served: string;
    if (env === null) {
      m.untagged.increment(1);
      served = s.defaultEnv;
      this.step = 0;
    } else {
      const chain = fallbackChain(env!, s.fallbacks, s.hierarchical, s.defaultEnv);
      const d = decide(s.services, authority, chain, s.defaultEnv, productionOnly(s, authority));
      served = d.served;
      this.step = d.step;
      if (d.outcome == Outcome.Hit) m.hit.increment(1);
      else if (d.outcome == Outcome.UnknownService) m.unknownService.increment(1);
      else if (d.outcome == Outcome.ProductionPinned) m.productionPinned.increment(1);
      else m.fallback.increment(1);
    }
    this.requested = env === null ? "" : env!;
    this.served = served;
    if (s.dryRun) {
      logInfo(FILTER_NAME + " dry-run: " + authority + " tagged " + (env === null ? "<none>" : env!) + " would be served by " + served);
      return FilterHeadersStatusValues.Continue;
    }
    setHeader(MapType.RequestHeaders, s.routeHeader, served);
    if (env !== null) this.writeTag(view, tagAt, env!, baggage, baggageAt);
    else if (tagAt >= 0) removeHeader(MapType.RequestHeaders, s.header);
    if (s.stampHeader.length > 0) setHeader(MapType.RequestHeaders, s.stampHeader, root.stampValue);
    return FilterHeadersStatusValues.Continue;
  }

  /** The canonical header (and baggage member) carry the origin env, written only when different. */
  private writeTag(view: PairsView, tagAt: i32, env: string, baggage: string | null, baggageAt: i32): void {
    const s = this.router.settings;
    if (tagAt < 0 || view.value(tagAt) != env) setHeader(MapType.RequestHeaders, s.header, env);
    if (!s.writeBaggage) return;
    const current = baggage !== null ? baggage : baggageAt >= 0 ? view.value(baggageAt) : null;
    if (current !== null) {
      const b = baggageMember(current, s.baggageKey);
      if (b.value !== null && b.value! == env) return;
    }
    const next = withBaggageMember(current, s.baggageKey, env);
    if (next !== null) setHeader(MapType.RequestHeaders, "baggage", next);
    else this.router.metrics!.oversizedBaggage.increment(1);
  }

  /** Removes the tag's baggage member and cookie from every entry that carries them. */
  private stripCarriers(view: PairsView, baggages: Array<i32>, cookies: Array<i32>): void {
    const s = this.router.settings;
    const m = this.router.metrics!;
    // Each entry once: what stays of it, and whether any carried the tag. Baggage past the W3C
    // limits cannot be read member by member: it is dropped whole.
    let carried = false;
    const keptBaggage = new Array<string>();
    for (let i = 0; i < baggages.length; i++) {
      const v = view.value(unchecked(baggages[i]));
      const b = baggageMember(v, s.baggageKey);
      if (!b.tooLarge && b.value === null) { keptBaggage.push(v); continue; }
      carried = true;
      if (b.tooLarge) continue;
      const rest = withoutBaggageMember(v, s.baggageKey);
      if (rest !== null) keptBaggage.push(rest!);
    }
    if (carried) this.replaceAll("baggage", keptBaggage);
    carried = false;
    const keptCookies = new Array<string>();
    for (let i = 0; i < cookies.length; i++) {
      const v = view.value(unchecked(cookies[i]));
      if (cookieValue(v, s.cookie) === null) { keptCookies.push(v); continue; }
      carried = true;
      const rest = withoutCookie(v, s.cookie);
      if (rest !== null) keptCookies.push(rest!);
    }
    if (carried) this.replaceAll("cookie", keptCookies);
  }

  /** Every entry of `name` replaced by `values` (none when empty), counted as a stripped carrier. */
  private replaceAll(name: string, values: Array<string>): void {
    removeHeader(MapType.RequestHeaders, name);
    for (let i = 0; i < values.length; i++) addHeader(MapType.RequestHeaders, name, unchecked(values[i]));
    this.router.metrics!.strippedCarrier.increment(1);
  }

  private sourceTrusted(s: Settings): bool {
    if (s.trustedCidrs.length == 0) return false;
    const addr = getPropertyString(["source", "address"]);
    if (addr === null) return false;
    let host = addr!;
    if (host.startsWith("[")) {
      const close = host.indexOf("]");
      host = close > 0 ? host.substring(1, close) : host;
    } else {
      const colon = host.lastIndexOf(":");
      if (colon > 0 && host.indexOf(":") == colon) host = host.substring(0, colon);
    }
    const ip = parseIpLenient(host);
    if (ip === null) return false;
    for (let i = 0; i < s.trustedCidrs.length; i++) if (unchecked(s.trustedCidrs[i]).contains(ip)) return true;
    return false;
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const s = this.router.settings;
    if (s.explain && s.mode != Mode.Inbound) {
      setHeader(MapType.ResponseHeaders, "x-env-requested", this.requested.length == 0 ? "none" : this.requested);
      setHeader(MapType.ResponseHeaders, "x-env-served", this.served);
      setHeader(MapType.ResponseHeaders, "x-env-fallback-step", this.step.toString());
    }
    if (s.stampBuild) setHeader(MapType.ResponseHeaders, "x-env-router-build", VERSION);
    return FilterHeadersStatusValues.Continue;
  }
}

function productionOnly(s: Settings, authority: string): bool {
  if (s.productionHosts.length == 0) return false;
  let host = authority;
  const colon = host.lastIndexOf(":");
  if (colon > 0) host = host.substring(0, colon);
  const dot = host.indexOf(".");
  const short = dot > 0 ? host.substring(0, dot) : host;
  return s.productionHosts.includes(host) || s.productionHosts.includes(short);
}

/** The correlation key: a W3C trace id, else a B3 trace id, else x-request-id. */
function traceKey(view: PairsView, traceparentAt: i32, b3At: i32, requestIdAt: i32): string | null {
  if (traceparentAt >= 0 && view.valueLength(traceparentAt) <= 128) {
    const t = traceparentTraceId(view.value(traceparentAt));
    if (t !== null) return t;
  }
  if (b3At >= 0 && view.valueLength(b3At) <= 32) {
    const t = b3TraceId(view.value(b3At));
    if (t !== null) return t;
  }
  if (requestIdAt >= 0 && view.valueLength(requestIdAt) <= 128) return requestIdKey(view.value(requestIdAt));
  return null;
}
