// adaptive-ratelimit: a PID controller per rule moves the admitted rate toward an explicit
// setpoint (a latency percentile or an error ratio). One controller per Envoy: workers publish
// samples in shared data, the worker holding the lease runs the step, and every worker admits
// from one token bucket in shared data, taken with compare-and-swap.
import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime/assembly";
import {
  FilterRoot, FilterStream, Header, MapType, Metric, PairsView, Status, SharedUpdate,
  getHeadersRaw, getHeader, setHeader, getShared, setShared, casUpdate, nextSharedId, sendLocalResponse, setTickPeriod,
  nowNanos, counter, gauge, logInfo, logWarn,
} from "../../../runtime/assembly/index";
import { Histogram, bucketOf } from "./histogram";
import { PidState, bumpless, coldStart, step } from "./pid";
import { Rule, Settings, Signal, parseSettings } from "./settings";
import { Bucket, ControllerRecord, Samples } from "./shared";

export const FILTER_NAME = "adaptive-ratelimit";
export const VERSION = "0.1.0";
const CAS_ATTEMPTS = 16;
const GAUGE_OFFSET: f64 = 1000000;

function nowMs(): f64 {
  return <f64>nowNanos() / 1e6;
}

/** Adds or refreshes this worker in the registry: "id@lastSeenMs,..." (stale ones dropped). */
class Register extends SharedUpdate {
  constructor(public id: u64, public now: f64, public staleMs: f64) { super(); }
  apply(current: ArrayBuffer | null): ArrayBuffer | null {
    const entries = current === null ? new Array<string>() : String.UTF8.decode(current).split(",");
    let out = this.id.toString() + "@" + (<i64>this.now).toString();
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const at = e.indexOf("@");
      if (at <= 0) continue;
      if (e.substring(0, at) == this.id.toString()) continue;
      if (this.now - <f64>I64.parseInt(e.substring(at + 1)) > this.staleMs) continue;
      out += "," + e;
    }
    return String.UTF8.encode(out);
  }
}

class RuleMetrics {
  limit: Metric;
  measured: Metric;
  setpoint: Metric;
  p: Metric;
  i: Metric;
  d: Metric;
  admitted: Array<Metric> = new Array<Metric>();
  rejected: Array<Metric> = new Array<Metric>();
  constructor(rule: Rule, s: Settings) {
    const base = "adaptive_ratelimit." + rule.name + ".";
    this.limit = gauge(base + "limit");
    this.measured = gauge(base + "measured_milli");
    this.setpoint = gauge(base + "setpoint_milli");
    this.p = gauge(base + "p_milli");
    this.i = gauge(base + "i_milli");
    this.d = gauge(base + "d_milli");
    for (let k = 0; k < s.classes.length; k++) {
      this.admitted.push(counter(base + "admitted." + s.classes[k].name));
      this.rejected.push(counter(base + "rejected." + s.classes[k].name));
    }
  }
}

/** Per rule and worker: samples not yet flushed, and the leader's view of every worker's last flush. */
class RuleRuntime {
  samples: Samples = new Samples();
  dirty: bool = false;
  seen: Map<string, Samples> = new Map<string, Samples>();
  metrics: RuleMetrics;
  constructor(public rule: Rule, s: Settings) {
    this.metrics = new RuleMetrics(rule, s);
  }
}

export class RateLimitRoot extends FilterRoot {
  settings: Settings = new Settings();
  runtimes: Array<RuleRuntime> = new Array<RuleRuntime>();
  workerId: u64 = 0;
  ticks: u64 = 0;
  nameBytes: ArrayBuffer = new ArrayBuffer(0);
  headerBytes: Array<ArrayBuffer> = new Array<ArrayBuffer>();
  lastDryRunLog: f64 = -1e18;

  get filterName(): string { return FILTER_NAME; }

  configure(text: string): string {
    const next = new Settings();
    const error = parseSettings(text, next);
    if (error.length > 0) return error;
    this.settings = next;
    const runtimes = new Array<RuleRuntime>();
    for (let i = 0; i < next.rules.length; i++) {
      // Keep this worker's unflushed samples and leader view for rules that stay.
      let rt: RuleRuntime | null = null;
      for (let k = 0; k < this.runtimes.length; k++) if (this.runtimes[k].rule.identity() == next.rules[i].identity()) rt = this.runtimes[k];
      if (rt === null) rt = new RuleRuntime(next.rules[i], next);
      else rt.rule = next.rules[i];
      runtimes.push(rt!);
    }
    this.runtimes = runtimes;
    this.nameBytes = String.UTF8.encode(next.priorityHeader);
    this.headerBytes = new Array<ArrayBuffer>();
    for (let i = 0; i < next.rules.length; i++) this.headerBytes.push(String.UTF8.encode(next.rules[i].headerName));
    if (this.workerId == 0) {
      this.workerId = nextSharedId("arl:seq");
    }
    // A new rule starts cold; a rule that stays keeps its controller (bumpless, see step()).
    const now = nowMs();
    for (let i = 0; i < next.rules.length; i++) ensureController(next.rules[i], now);
    setTickPeriod(next.tickMs);
    return "";
  }

  tick(): void {
    const s = this.settings;
    const now = nowMs();
    this.ticks++;
    for (let i = 0; i < this.runtimes.length; i++) {
      const rt = this.runtimes[i];
      if (rt.dirty) {
        setShared(sampleKey(rt.rule, this.workerId), rt.samples.encode(), 0);
        rt.dirty = false;
      }
    }
    let minInterval: f64 = 600000;
    for (let i = 0; i < s.rules.length; i++) if (s.rules[i].pid.intervalMs < minInterval) minInterval = s.rules[i].pid.intervalMs;
    if (this.ticks % 10 == 1) casUpdate("arl:workers", new Register(this.workerId, now, 10 * minInterval + 10 * <f64>s.tickMs));
    if (!takeLease(this.workerId, now, 3 * (minInterval > <f64>s.tickMs ? minInterval : <f64>s.tickMs))) return;
    for (let i = 0; i < this.runtimes.length; i++) this.controlStep(this.runtimes[i], now);
  }

  /** The leader's step for one rule, when its interval has passed. */
  private controlStep(rt: RuleRuntime, now: f64): void {
    const rule = rt.rule;
    const stored = getShared(controllerKey(rule));
    let record: ControllerRecord | null = stored === null ? null : ControllerRecord.decode(stored.value);
    const hash = paramsHash(rule);
    let state: PidState;
    if (record === null || record.identity != rule.identity()) state = coldStart(rule.pid, now);
    else if (record.paramsHash != hash) state = bumpless(rule.pid, record.state);
    else state = record.state;
    if (now - state.lastStepMs < rule.pid.intervalMs) return;

    // Sum every worker's samples since the leader last saw them.
    const hist = new Histogram();
    let arrivals: u64 = 0, completed: u64 = 0, errors: u64 = 0;
    const registry = getShared("arl:workers");
    if (registry !== null) {
      const entries = String.UTF8.decode(registry.value).split(",");
      for (let k = 0; k < entries.length; k++) {
        const at = entries[k].indexOf("@");
        if (at <= 0) continue;
        const key = "arl:s:" + rule.name + ":" + entries[k].substring(0, at);
        const raw = getShared(key);
        if (raw === null) continue;
        const cur = Samples.decode(raw.value);
        if (cur === null) continue;
        const prev: Samples | null = rt.seen.has(key) ? rt.seen.get(key) : null;
        hist.addDelta(cur.counts, prev === null ? null : prev.counts);
        arrivals += delta(cur.arrivals, prev === null ? 0 : prev.arrivals);
        completed += delta(cur.completed, prev === null ? 0 : prev.completed);
        errors += delta(cur.errors, prev === null ? 0 : prev.errors);
        rt.seen.set(key, cur);
      }
    }
    const dtS = (now - state.lastStepMs) / 1000.0;
    const measured = rule.signal == Signal.Latency ? hist.quantile(rule.percentile) : completed == 0 ? -1 : <f64>errors / <f64>completed;
    const demand = dtS > 0 ? <f64>arrivals / dtS : 0;
    const goodRate = dtS > 0 && completed >= <u64>rule.pid.minSamples ? <f64>(completed - errors) / dtS : 0;
    step(rule.pid, state, measured, <i64>completed, demand, now, goodRate);
    record = new ControllerRecord(state, rule.identity(), hash);
    if (setShared(controllerKey(rule), record.encode(), stored === null ? 0 : stored.cas) != Status.Ok) return; // another leader won
    publishRate(rule, state.rate, state.epoch, now);
    const m = rt.metrics;
    m.limit.record(<u64>Math.round(state.rate));
    m.setpoint.record(<u64>Math.round(rule.pid.setpoint * 1000));
    if (state.measured >= 0) m.measured.record(<u64>Math.round(state.measured * 1000));
    m.p.record(<u64>Math.max(0, Math.round(GAUGE_OFFSET + state.p * 1000)));
    m.i.record(<u64>Math.max(0, Math.round(GAUGE_OFFSET + state.i * 1000)));
    m.d.record(<u64>Math.max(0, Math.round(GAUGE_OFFSET + state.d * 1000)));
  }

  createContext(context_id: u32): Context {
    return new RateLimitStream(context_id, this);
  }
}

function delta(cur: u64, prev: u64): u64 {
  return cur >= prev ? cur - prev : cur;
}

function sampleKey(rule: Rule, worker: u64): string {
  return "arl:s:" + rule.name + ":" + worker.toString();
}
function controllerKey(rule: Rule): string {
  return "arl:c:" + rule.name;
}
function bucketKey(rule: Rule): string {
  return "arl:b:" + rule.name;
}

function paramsHash(rule: Rule): u32 {
  const p = rule.pid;
  const text = p.kp.toString() + "," + p.ki.toString() + "," + p.kd.toString() + "," + p.setpoint.toString() + "," + p.minRate.toString() + "," +
    p.maxRate.toString() + "," + p.initialRate.toString() + "," + p.maxStep.toString() + "," + p.maxDecrease.toString() + "," + p.creep.toString() + "," +
    rule.percentile.toString() + "," + rule.burstMs.toString();
  let h: u32 = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) { h ^= <u32>text.charCodeAt(i); h *= 0x01000193; }
  return h;
}

/** Creates the rule's controller and bucket on first sight (cold start at the initial rate). */
function ensureController(rule: Rule, now: f64): void {
  if (getShared(controllerKey(rule)) === null) {
    setShared(controllerKey(rule), new ControllerRecord(coldStart(rule.pid, now), rule.identity(), paramsHash(rule)).encode(), 0);
  }
  const b = getShared(bucketKey(rule));
  if (b === null || Bucket.decode(b.value) === null) {
    const stored = getShared(controllerKey(rule));
    const rec: ControllerRecord | null = stored === null ? null : ControllerRecord.decode(stored.value);
    publishRate(rule, rec === null ? rule.pid.initialRate : rec.state.rate, 0, now);
  } else {
    // Keep the current rate but take the (possibly new) burst size.
    const k = Bucket.decode(b.value)!;
    publishRate(rule, k.rate, k.epoch, now);
  }
}

/** Sets the bucket's rate (and burst), refilling at the old rate up to now first. */
function publishRate(rule: Rule, rate: f64, epoch: u32, now: f64): void {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const cur = getShared(bucketKey(rule));
    let k: Bucket | null = cur === null ? null : Bucket.decode(cur.value);
    if (k === null) {
      k = new Bucket();
      k.lastMs = now;
      k.rate = rate;
      k.burstMs = rule.burstMs;
      k.tokens = k.capacity;
    } else {
      k.refill(now);
    }
    k.rate = rate;
    k.burstMs = rule.burstMs;
    k.epoch = epoch;
    if (k.tokens > k.capacity) k.tokens = k.capacity;
    if (setShared(bucketKey(rule), k.encode(), cur === null ? 0 : cur.cas) == Status.Ok) return;
  }
}

/** The lease: "<worker> <expiry>", taken with CAS when free or expired, renewed by its holder. */
function takeLease(worker: u64, now: f64, ttlMs: f64): bool {
  const cur = getShared("arl:lease");
  let cas: u32 = 0;
  if (cur !== null) {
    const text = String.UTF8.decode(cur.value);
    const sp = text.indexOf(" ");
    const holder = sp > 0 ? U64.parseInt(text.substring(0, sp)) : 0;
    const expiry = sp > 0 ? F64.parseFloat(text.substring(sp + 1)) : 0;
    if (holder != worker && expiry > now) return false;
    cas = cur.cas;
  }
  return setShared("arl:lease", String.UTF8.encode(worker.toString() + " " + (now + ttlMs).toString()), cas) == Status.Ok;
}

class Take {
  constructor(public admitted: bool, public rate: f64, public remaining: f64, public retryS: f64) {}
}

/** Takes one token for a class that must leave `reserve` of the bucket (beyond one token) to more critical classes. */
function takeToken(rule: Rule, reserve: f64, now: f64, consumeWhenShort: bool): Take {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const cur = getShared(bucketKey(rule));
    if (cur === null) return new Take(true, 0, 0, 0); // no bucket yet: fail open
    const k = Bucket.decode(cur.value);
    if (k === null) return new Take(true, 0, 0, 0);
    k.refill(now);
    // A class may take the last token only if `reserve` of the rest stays for more critical ones.
    const need = 1 + reserve * (k.capacity - 1);
    if (k.tokens < need) {
      const retry = (need - k.tokens) / k.rate;
      if (!consumeWhenShort) {
        // Persist the refill only when it is cheap to lose: a failed CAS here changes nothing.
        return new Take(false, k.rate, k.tokens - reserve * (k.capacity - 1), retry);
      }
      return new Take(false, k.rate, 0, retry);
    }
    k.tokens -= 1;
    if (setShared(bucketKey(rule), k.encode(), cur.cas) == Status.Ok) {
      return new Take(true, k.rate, k.tokens - reserve * (k.capacity - 1), 0);
    }
  }
  // Persistent contention: admit rather than reject traffic the bucket may well have room for.
  return new Take(true, 0, 0, 0);
}

const PATH = String.UTF8.encode(":path");
const METHOD = String.UTF8.encode(":method");

class RateLimitStream extends FilterStream {
  rule: i32 = -1;
  startMs: f64 = 0;
  admitted: bool = false;
  rate: f64 = 0;
  remaining: f64 = 0;

  constructor(context_id: u32, readonly limiter: RateLimitRoot) {
    super(context_id, limiter);
  }

  onRequestHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.limiter;
    const s = root.settings;
    const raw = getHeadersRaw(MapType.RequestHeaders);
    if (raw === null) return FilterHeadersStatusValues.Continue;
    const view = PairsView.parse(raw);
    if (view === null) return FilterHeadersStatusValues.Continue;
    const pathAt = view.find(PATH), methodAt = view.find(METHOD);
    const path = pathAt >= 0 ? view.value(pathAt) : "/";
    const method = methodAt >= 0 ? view.value(methodAt) : "GET";
    let index = -1;
    for (let i = 0; i < s.rules.length && index < 0; i++) {
      const r = s.rules[i];
      let header: string | null = null;
      if (r.headerName.length > 0) {
        const at = view.find(root.headerBytes[i]);
        if (at >= 0) header = view.value(at);
      }
      if (r.matches(path, method, header)) index = i;
    }
    if (index < 0) return FilterHeadersStatusValues.Continue;
    this.rule = index;
    let cls = s.defaultClass;
    const pAt = view.find(root.nameBytes);
    if (pAt >= 0) {
      const v = view.value(pAt);
      for (let k = 0; k < s.classes.length; k++) if (s.classes[k].name == v) cls = k;
    }
    const rt = root.runtimes[index];
    rt.samples.arrivals++;
    rt.dirty = true;
    const now = nowMs();
    const take = takeToken(rt.rule, s.classes[cls].reserve, now, false);
    if (take.admitted) {
      rt.metrics.admitted[cls].increment(1);
      this.admitted = true;
      this.startMs = now;
      this.rate = take.rate;
      this.remaining = take.remaining;
      return FilterHeadersStatusValues.Continue;
    }
    rt.metrics.rejected[cls].increment(1);
    if (s.dryRun) {
      if (now - root.lastDryRunLog >= 1000) {
        root.lastDryRunLog = now;
        logInfo(FILTER_NAME + " dry-run: would reject " + s.classes[cls].name + " traffic of rule " + rt.rule.name + " (limit " + (<i64>Math.round(take.rate)).toString() + "/s)");
      }
      this.admitted = true;
      this.startMs = now;
      return FilterHeadersStatusValues.Continue;
    }
    const retry = take.retryS < 1 ? 1 : <i64>Math.ceil(take.retryS);
    const h = new Array<Header>();
    h.push(new Header("retry-after", retry.toString()));
    h.push(new Header("ratelimit-limit", (<i64>Math.round(take.rate)).toString()));
    h.push(new Header("ratelimit-remaining", "0"));
    h.push(new Header("ratelimit-reset", retry.toString()));
    h.push(new Header("x-ratelimit-rule", rt.rule.name));
    sendLocalResponse(s.rejectStatus, "adaptive_ratelimit_" + rt.rule.name, FILTER_NAME + ": rule " + rt.rule.name + " is shedding " + s.classes[cls].name + " traffic; retry after " + retry.toString() + " s\n", h);
    return FilterHeadersStatusValues.StopIteration;
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.limiter;
    const s = root.settings;
    if (this.admitted && this.rule >= 0 && this.rule < root.runtimes.length) {
      const rt = root.runtimes[this.rule];
      const latency = nowMs() - this.startMs;
      const status = getHeader(MapType.ResponseHeaders, ":status");
      const code = status === null ? 0 : I32.parseInt(status);
      if (latency >= 0 && latency < 3600000) {
        rt.samples.counts[bucketOf(latency)]++;
        rt.samples.completed++;
        if (code >= 500) rt.samples.errors++;
        rt.dirty = true;
      }
      this.admitted = false; // one sample per stream, even if a local reply re-enters
      if (s.quotaHeaders && this.rate > 0) {
        setHeader(MapType.ResponseHeaders, "ratelimit-limit", (<i64>Math.round(this.rate)).toString());
        setHeader(MapType.ResponseHeaders, "ratelimit-remaining", (<i64>Math.max(0, Math.floor(this.remaining))).toString());
      }
    }
    if (s.stampBuild) setHeader(MapType.ResponseHeaders, "x-adaptive-ratelimit-build", VERSION);
    return FilterHeadersStatusValues.Continue;
  }
}

