// adaptive-ratelimit: a PID controller per rule moves the admitted rate toward an explicit
// setpoint (a latency percentile or an error ratio). One controller per Envoy: workers publish
// samples in shared data, the worker holding the lease runs the step, and every worker admits
// from one token bucket in shared data, taken with compare-and-swap.
import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime/assembly";
import {
  FilterRoot, FilterStream, Header, MapType, Metric, PairsView, Status, SharedUpdate, SharedValue,
  getHeadersRaw, getHeader, getPropertyString, setHeader, getShared, setShared, casUpdate, nextSharedId, takeSharedLease, sendLocalResponse, setTickPeriod,
  nowNanos, counter, gauge, logInfo, logWarn,
} from "../../../runtime/assembly/index";
import { Histogram, bucketOf } from "./histogram";
import { APP_LIMITED, BINDING, GUARD_THROUGHPUT, LOW_CONCURRENCY, PidState, bumpless, coldStart, notFromLoad, step } from "./pid";
import { PrioritySourceKind, Rule, Settings, Signal, parseSettings } from "./settings";
import { Bucket, CLOCK_STEP_MS, ControllerRecord, GuardRecord, Ledger, Samples } from "./shared";

export const FILTER_NAME = "adaptive-ratelimit";
export const VERSION = "0.1.0";
const CAS_ATTEMPTS = 16;
const GAUGE_OFFSET: f64 = 1000000;
/** A latency this many times the setpoint, right after a step that saw it met, steps at once. */
const EARLY_STEP: f64 = 1.5;
/** Intervals a rule with fewer than min_samples completions adds up before it gives up the window. */
const MAX_WINDOW: f64 = 30;
/**
 * Once the service's healthy mean latency is known, the guard's allowance is this many times it
 * (the normal class then has 1.2 times it, after its reserve: room for bursts, not for a backlog).
 */
const GUARD_MEAN_MARGIN: f64 = 1.5;
/**
 * The margin while demand exceeds the rate (an overload): the bound closer to the service's
 * parallelism, at the shortest queue that keeps it busy.
 */
const GUARD_MEAN_MARGIN_OVERLOAD: f64 = 1.25;
/**
 * The healthy mean latency is the least of the last this many healthy readings: a load rising
 * past capacity while the limit is still open passes for healthy for a reading or two (under the
 * setpoint, demand under the rate) with a queue already building, and must not stand for the
 * service's own latency.
 */
const HEALTHY_READINGS: i32 = 10;
/** A new rate under this share of the old one is a cut (see Bucket.cuts). */
const CUT_SHARE: f64 = 0.9;
/** A mean latency past this multiple of the healthy one: requests are queueing. */
const QUEUEING: f64 = 1.2;
/**
 * A guard limit under this many requests a worker is held exactly across workers (the ledger):
 * split into parts, each worker's would round up to a whole request, and a service that does
 * two things at once behind eight workers would see eight in flight.
 */
const EXACT_PER_WORKER: f64 = 2;

function nowMs(): f64 {
  return <f64>nowNanos() / 1e6;
}

/**
 * Adds or refreshes this worker in the registry: "id@lastSeenMs,..." (stale ones dropped).
 * `dropped` lists the workers the last apply dropped: once the write succeeds, the caller
 * empties their sample slots (a VM gone with a reload or a restart leaves none behind).
 */
class Register extends SharedUpdate {
  dropped: Array<string> = new Array<string>();
  constructor(public id: u64, public now: f64, public staleMs: f64) { super(); }
  apply(current: ArrayBuffer | null): ArrayBuffer | null {
    this.dropped = new Array<string>();
    const entries = current === null ? new Array<string>() : String.UTF8.decode(current).split(",");
    let out = this.id.toString() + "@" + (<i64>this.now).toString();
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const at = e.indexOf("@");
      if (at <= 0) continue;
      if (e.substring(0, at) == this.id.toString()) continue;
      if (this.now - <f64>I64.parseInt(e.substring(at + 1)) > this.staleMs) {
        this.dropped.push(e.substring(0, at));
        continue;
      }
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
  inflight: Metric;
  inflightLimit: Metric;
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
    this.inflight = gauge(base + "inflight");
    this.inflightLimit = gauge(base + "inflight_limit");
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
  /** This worker's requests in flight for the rule (admitted, not yet answered or ended). */
  inflight: i64 = 0;
  /** This worker's part of the in-flight limit (0: no guard yet). */
  inflightPart: f64 = 0;
  guardRate: f64 = 0;
  guardLimit: f64 = 0;
  /** The other workers' requests in flight, as the lease holder last summed them. */
  guardOthers: f64 = 0;
  /** The guard is held on the exact count in the ledger (GuardRecord.exact). */
  exact: bool = false;
  /** The bucket's cut count as this worker last read it (see Bucket.cuts). */
  cuts: u32 = 0;
  /** The cut count the in-flight guard this worker holds was derived at (GuardRecord.cuts). */
  guardCuts: u32 = 0;
  /** Lease holder: the warning that the guard is tighter than normal latency was logged. */
  guardWarned: bool = false;
  /** Lease holder only: each worker's last cumulative arrivals and their smoothed increase per tick. */
  lastArrivals: Map<string, u64> = new Map<string, u64>();
  arrivalTrend: Map<string, f64> = new Map<string, f64>();
  seen: Map<string, Samples> = new Map<string, Samples>();
  /** Lease holder: the warning that latency over the setpoint is not from load was logged. */
  notFromLoadWarned: bool = false;
  /** Lease holder: the service's healthy mean latency (0: none yet), see learnHealthyMean. */
  healthyMeanMs: f64 = 0;
  /**
   * The average of the same readings: what a deep cut's "queueing" is judged against. The least
   * is the safe base for the guard's allowance, but a noisy mean (an exponential service)
   * exceeds 1.2 times it often with no queue at all.
   */
  healthyAverageMs: f64 = 0;
  /** The last HEALTHY_READINGS healthy mean latencies (ms), oldest overwritten first. */
  healthyMeans: StaticArray<f64> = new StaticArray<f64>(HEALTHY_READINGS);
  /** Readings held (at most HEALTHY_READINGS) and the slot the next one goes to. */
  healthyCount: i32 = 0;
  healthyNext: i32 = 0;
  /** Lease holder: demand exceeded the rate over the last control interval. */
  overload: bool = false;
  /** This worker's share of the rule's arrivals it rejected, smoothed over ticks (for Retry-After). */
  rejectShare: f64 = 0;
  private tickArrivals: u64 = 0;
  private tickRejected: u64 = 0;
  metrics: RuleMetrics;
  constructor(public rule: Rule, s: Settings) {
    this.metrics = new RuleMetrics(rule, s);
  }

  /**
   * A queue beyond doubt: the mean latency past QUEUEING times the average healthy one (not only
   * the least: a noisy mean passes the least often). False until a healthy mean is known.
   */
  queuesBeyondDoubt(mean: f64): bool {
    return this.healthyAverageMs > 0 && mean > QUEUEING * this.healthyAverageMs;
  }

  /** Records a healthy reading's mean latency; the healthy mean is the least of the last HEALTHY_READINGS. */
  learnHealthyMean(mean: f64): void {
    unchecked(this.healthyMeans[this.healthyNext] = mean);
    this.healthyNext = (this.healthyNext + 1) % HEALTHY_READINGS;
    if (this.healthyCount < HEALTHY_READINGS) this.healthyCount++;
    let least = unchecked(this.healthyMeans[0]), sum: f64 = 0;
    for (let k = 0; k < this.healthyCount; k++) {
      const m = unchecked(this.healthyMeans[k]);
      if (m < least) least = m;
      sum += m;
    }
    this.healthyMeanMs = least;
    this.healthyAverageMs = sum / <f64>this.healthyCount;
  }

  /** Once per tick: folds the arrivals and rejections since the last tick into rejectShare. */
  updateRejectShare(): void {
    const arrivals = this.samples.arrivals - this.tickArrivals;
    const rejected = this.samples.rejected - this.tickRejected;
    this.tickArrivals = this.samples.arrivals;
    this.tickRejected = this.samples.rejected;
    const share = arrivals > 0 ? <f64>rejected / <f64>arrivals : 0;
    this.rejectShare = 0.5 * this.rejectShare + 0.5 * share;
  }
}

/** Retry-After never says more than this. */
const MAX_RETRY_AFTER_S: f64 = 60;

/**
 * Seconds a rejected client should wait: when a share s of the arrivals is being shed, the
 * rejected ones would need s / (1 - s) seconds of the whole limit if they all came back at
 * once, so telling every one "1 s" brings them back into the same overload. At least the
 * bucket's own wait for a token, at least 1 s, at most MAX_RETRY_AFTER_S.
 */
function retryAfterS(rt: RuleRuntime, bucketWaitS: f64): i64 {
  const s = rt.rejectShare;
  let wait = s < 1 ? s / (1 - s) : MAX_RETRY_AFTER_S;
  if (bucketWaitS > wait) wait = bucketWaitS;
  if (wait > MAX_RETRY_AFTER_S) wait = MAX_RETRY_AFTER_S;
  return wait < 1 ? 1 : <i64>Math.ceil(wait);
}

export class RateLimitRoot extends FilterRoot {
  settings: Settings = new Settings();
  runtimes: Array<RuleRuntime> = new Array<RuleRuntime>();
  workerId: u64 = 0;
  /** workerId as it appears in the registry and in sample-slot keys. */
  workerKey: string = "";
  ticks: u64 = 0;
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
    this.headerBytes = new Array<ArrayBuffer>();
    for (let i = 0; i < next.rules.length; i++) this.headerBytes.push(String.UTF8.encode(next.rules[i].headerName));
    if (this.workerId == 0) {
      this.workerId = nextSharedId("arl:seq");
      this.workerKey = this.workerId.toString();
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
      rt.updateRejectShare();
      // The cut count, for a worker that admits nothing for a while (its takes would tell it).
      if (rt.rule.signal == Signal.Latency) {
        const b = getShared(bucketKey(rt.rule));
        const k: Bucket | null = b === null ? null : Bucket.decode(b.value);
        if (k !== null) rt.cuts = k.cuts;
      }
      if (rt.dirty) {
        rt.samples.inflight = rt.inflight > 0 ? <u64>rt.inflight : 0;
        setShared(sampleKey(rt.rule, this.workerKey), rt.samples.encode(), 0);
        rt.dirty = false;
      }
    }
    let minInterval: f64 = 600000;
    for (let i = 0; i < s.rules.length; i++) if (s.rules[i].pid.intervalMs < minInterval) minInterval = s.rules[i].pid.intervalMs;
    if (this.ticks % 10 == 1) {
      const register = new Register(this.workerId, now, 10 * minInterval + 10 * <f64>s.tickMs);
      if (casUpdate("arl:workers", register) == Status.Ok) {
        // Shared data has no delete: an empty value gives the dropped workers' bytes back.
        for (let k = 0; k < register.dropped.length; k++) {
          for (let i = 0; i < this.runtimes.length; i++) setShared(sampleKey(this.runtimes[i].rule, register.dropped[k]), new ArrayBuffer(0), 0);
        }
      }
    }
    for (let i = 0; i < this.runtimes.length; i++) {
      const rt = this.runtimes[i];
      if (rt.rule.inflightGuard <= 0) { rt.inflightPart = 0; continue; }
      const raw = getShared(guardKey(rt.rule));
      const g: GuardRecord | null = raw === null ? null : GuardRecord.decode(raw.value);
      rt.inflightPart = g === null || g.limit <= 0 ? 0 : g.partFor(this.workerId);
      rt.guardRate = g === null ? 0 : g.rate;
      rt.guardLimit = g === null ? 0 : g.limit;
      rt.guardOthers = g === null ? 0 : g.othersOf(this.workerId);
      rt.exact = g !== null && g.exact;
      rt.guardCuts = g === null ? 0 : g.cuts;
      // Every tick, so that an entry a lost write or a spell without the ledger left stale is mended.
      if (rt.exact) publishCount(rt, this.workerId);
    }
    // One controller per Envoy: the worker holding the lease (expiring after three intervals).
    const leaseMs: f64 = 3 * (minInterval > <f64>s.tickMs ? minInterval : <f64>s.tickMs);
    if (!takeSharedLease("arl:lease", this.workerId, <i64>now, <i64>leaseMs)) return;
    const workers = registeredWorkers();
    for (let i = 0; i < this.runtimes.length; i++) {
      const rt = this.runtimes[i];
      const snaps = new Array<Samples | null>(workers.length);
      for (let k = 0; k < workers.length; k++) {
        const raw = getShared(sampleKey(rt.rule, workers[k]));
        snaps[k] = raw === null ? null : Samples.decode(raw.value);
      }
      this.controlStep(rt, workers, snaps, now);
      // After the step, so that a cut reaches the guard at once.
      if (rt.rule.inflightGuard > 0) guardStep(rt, workers, snaps);
      // Workers that left the registry (a restarted VM comes back under a new id) leave these views too.
      if (rt.seen.size > workers.length) rt.seen = kept(rt.seen, workers);
      if (rt.lastArrivals.size > workers.length) rt.lastArrivals = kept(rt.lastArrivals, workers);
      if (rt.arrivalTrend.size > workers.length) rt.arrivalTrend = kept(rt.arrivalTrend, workers);
    }
  }

  /**
   * The leader's step for one rule, when its interval has passed, or early at the onset of a
   * latency violation (see EARLY_STEP).
   */
  private controlStep(rt: RuleRuntime, workers: Array<string>, snaps: Array<Samples | null>, now: f64): void {
    const rule = rt.rule;
    const stored = getShared(controllerKey(rule));
    let record: ControllerRecord | null = stored === null ? null : ControllerRecord.decode(stored.value);
    const hash = paramsHash(rule);
    let state: PidState;
    if (record === null || record.identity != rule.identity()) state = coldStart(rule.pid, now);
    else if (record.paramsHash != hash) state = bumpless(rule.pid, record.state);
    else state = record.state;
    // A wall clock that stepped back would hold the next step until it caught up: step now, over one interval.
    if (now < state.lastStepMs - CLOCK_STEP_MS) state.lastStepMs = now - rule.pid.intervalMs;
    const due = now - state.lastStepMs >= rule.pid.intervalMs;
    // Latency is the only signal that can run early (it needs an onset and a quarter interval).
    if (!due && (rule.signal != Signal.Latency || !(state.measured >= 0 && state.measured <= rule.pid.setpoint) || now - state.lastStepMs < rule.pid.intervalMs / 4)) return;

    // Sum every worker's samples since the leader last stepped.
    const hist = new Histogram();
    let arrivals: u64 = 0, completed: u64 = 0, errors: u64 = 0, rejected: u64 = 0;
    let baselined = false;
    for (let k = 0; k < workers.length; k++) {
      const cur = snaps[k];
      if (cur === null) continue;
      // A worker this leader has not seen yet, once the controller has run (this worker just
      // took the lease over, or the other one is new): its counts so far are history, not this
      // interval; they only set the baseline. Before the first measurement they are this interval.
      const known = rt.seen.has(workers[k]);
      if (!known && state.measured >= 0) { baselined = true; continue; }
      const prev: Samples | null = known ? rt.seen.get(workers[k]) : null;
      hist.addDelta(cur.counts, prev === null ? null : prev.counts);
      arrivals += delta(cur.arrivals, prev === null ? 0 : prev.arrivals);
      completed += delta(cur.completed, prev === null ? 0 : prev.completed);
      errors += delta(cur.errors, prev === null ? 0 : prev.errors);
      rejected += delta(cur.rejected, prev === null ? 0 : prev.rejected);
    }
    // Too few completions for a reading: keep adding intervals (the next ticks sum over the
    // longer window) rather than dropping them, up to MAX_WINDOW intervals; a rule with little
    // traffic is then controlled on a slower loop instead of never. A worker seen for the first
    // time (a takeover) is baselined by an empty step instead, which starts a fresh window.
    // A latency reading counts the latencies it holds (not those of requests admitted before the
    // last cut, nor Envoy's own 5xx replies).
    const readings: u64 = rule.signal == Signal.Latency ? hist.total : completed;
    if (due && !baselined && readings < <u64>rule.pid.minSamples && now - state.lastStepMs < MAX_WINDOW * rule.pid.intervalMs) return;
    const measured = rule.signal == Signal.Latency ? hist.quantile(rule.percentile) : completed == 0 ? -1 : <f64>errors / <f64>completed;
    const dtS = (now - state.lastStepMs) / 1000.0;
    const demand = dtS > 0 ? <f64>arrivals / dtS : 0;
    const mean = rule.signal == Signal.Latency ? hist.mean() : -1;
    // Early: the setpoint is already badly violated on enough samples, or violated at all while
    // the limit is open (what arrived so far under 90% of the rate, almost none of it turned
    // away) and a queue beyond doubt builds behind it; waiting out the interval would let the
    // backlog grow for the rest of it. (Early, dtS is at least a quarter interval.)
    if (!due && !(readings >= <u64>rule.pid.minSamples && (measured >= EARLY_STEP * rule.pid.setpoint ||
      (measured > rule.pid.setpoint && demand < APP_LIMITED * state.rate && <f64>rejected < BINDING * <f64>arrivals && rt.queuesBeyondDoubt(mean))))) return;
    for (let k = 0; k < workers.length; k++) {
      const cur = snaps[k];
      if (cur !== null) rt.seen.set(workers[k], cur);
    }
    const goodRate = dtS > 0 && completed >= <u64>rule.pid.minSamples ? <f64>(completed - errors) / dtS : 0;
    // Requests in flight on average over the window (Little's law), from the mean latency.
    const concurrency = mean >= 0 && dtS > 0 ? <f64>completed * mean / 1000.0 / dtS : -1;
    // Overload: more arrived than the rate admits (the guard's margin, see inflightLimitOf).
    rt.overload = demand > state.rate;
    // Saturated at the guard's bound: requests queue (the mean latency past the healthy one;
    // unknown yet: assume so).
    const queueing = rt.healthyMeanMs <= 0 || mean > QUEUEING * rt.healthyMeanMs;
    // A cut deeper than the PID's, to GUARD_THROUGHPUT x the throughput (see step), needs a
    // queue beyond doubt and a guard's bound that would fall with it.
    const deepCut = rt.queuesBeyondDoubt(mean) &&
      inflightLimitOf(rule, GUARD_THROUGHPUT * goodRate, rt.healthyMeanMs, rt.overload) < rt.guardLimit;
    step(rule.pid, state, measured, <i64>readings, demand, now, goodRate, arrivals > 0 ? <f64>rejected / <f64>arrivals : 0, concurrency, queueing, deepCut, sameBoundUpTo(rule, rt.guardLimit, rt.healthyMeanMs, goodRate));
    if (completed >= <u64>rule.pid.minSamples && notFromLoad(rule.pid, measured, concurrency) && !rt.notFromLoadWarned) {
      rt.notFromLoadWarned = true;
      logWarn(FILTER_NAME + ": rule " + rule.name + ": latency " + (<i64>Math.round(measured)).toString() + " ms is over the setpoint (" + (<i64>Math.round(rule.pid.setpoint)).toString() +
        " ms) with under " + LOW_CONCURRENCY.toString() + " request in flight on average: it is not from load, so the limit is not cut; raise controller.setpoint_ms if that latency is normal for the service");
    }
    // The guard's latency allowance follows the mean the service shows while clearly healthy
    // and not held by the rate: under 80% of the setpoint (near it, part of the mean is already
    // queueing) with demand under the rate (in an overload the mean is the backlog's). While the
    // guard turns traffic away, only a mean that shows no queue (within 1.2 times the average
    // healthy one): a service that lost capacity, held at its bound, would otherwise teach the
    // guard its queue as the healthy latency, and the bound would grow with it.
    const guardHolds = <f64>rejected >= BINDING * <f64>arrivals && rt.queuesBeyondDoubt(mean);
    if (rule.signal == Signal.Latency && readings >= <u64>rule.pid.minSamples && measured >= 0 && measured <= 0.8 * rule.pid.setpoint && mean > 0 && demand < APP_LIMITED * state.rate && !guardHolds) rt.learnHealthyMean(mean);
    if (rule.inflightGuard > 0 && !rt.guardWarned && completed >= <u64>rule.pid.minSamples && measured >= 0 && measured <= rule.pid.setpoint) {
      // Healthy, yet the mean latency is past what the guard assumes: it would hold normal
      // traffic (the controller then raises the rate to make room, but say so once).
      if (mean > rule.inflightGuard * rule.pid.setpoint) {
        rt.guardWarned = true;
        logWarn(FILTER_NAME + ": rule " + rule.name + ": mean latency " + (<i64>Math.round(mean)).toString() + " ms meets the setpoint but exceeds controller.inflight_guard x setpoint_ms (" +
          (<i64>Math.round(rule.inflightGuard * rule.pid.setpoint)).toString() + " ms); until a healthy mean is seen (after a restart or a new rule) the in-flight guard may turn away normal traffic: raise inflight_guard to about " +
          (Math.min(1, Math.ceil(mean * 1.25 / rule.pid.setpoint * 10) / 10)).toString() + " or set it to 0");
      }
    }
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

/** The entries of `m` whose key is one of `ids`. */
function kept<T>(m: Map<string, T>, ids: Array<string>): Map<string, T> {
  const out = new Map<string, T>();
  for (let i = 0; i < ids.length; i++) if (m.has(ids[i])) out.set(ids[i], m.get(ids[i]));
  return out;
}

/** Worker ids in the registry (stale workers have already been dropped from it). */
function registeredWorkers(): Array<string> {
  const out = new Array<string>();
  const registry = getShared("arl:workers");
  if (registry === null) return out;
  const entries = String.UTF8.decode(registry.value).split(",");
  for (let k = 0; k < entries.length; k++) {
    const at = entries[k].indexOf("@");
    if (at > 0) out.push(entries[k].substring(0, at));
  }
  return out;
}

/**
 * The in-flight guard for one more request of a class with `reserve`: within this worker's
 * part, yes; past it (a burst on this worker), up to 1.5 times the part while the other
 * workers' count the lease holder last published plus this worker's own stays under the limit.
 */
function guardAdmits(rt: RuleRuntime, reserve: f64): bool {
  let part = rt.inflightPart * (1 - reserve);
  if (part < 1) part = 1;
  const mine = <f64>rt.inflight;
  if (mine < part) return true;
  if (mine >= 1.5 * part) return false;
  let limit = rt.guardLimit * (1 - reserve);
  if (limit < 1) limit = 1;
  return rt.guardOthers + mine < limit;
}

/**
 * The most requests the in-flight guard lets a latency rule have in flight at `rate` (0: no
 * guard). Little's law: with `rate` admitted per second, more than rate x W in flight means the
 * mean latency is past W, so a backlog is building. W is a margin x the service's healthy mean
 * latency once one is known: 1.25 while demand exceeds the rate (an overload), so that at a rate
 * near capacity the bound is the service's own parallelism plus a quarter, where it is busy at
 * the shortest queue; 1.5 otherwise, room for a healthy service's bursts. Until a healthy mean is
 * known, `inflight_guard` x the setpoint.
 */
function inflightLimitOf(rule: Rule, rate: f64, healthyMeanMs: f64, overload: bool): f64 {
  if (rule.inflightGuard <= 0) return 0;
  const limit = Math.ceil(rate * allowanceMs(rule, healthyMeanMs, overload) / 1000.0);
  return limit < 2 ? 2 : limit;
}

/**
 * The highest rate at which inflightLimitOf stays at `limit` whether or not demand exceeds the
 * rate (the wider margin); 0 (no such rise) without a guard, or where the bound held full would
 * itself break the setpoint: by Little's law its requests wait limit / goodRate on average.
 */
function sameBoundUpTo(rule: Rule, limit: f64, healthyMeanMs: f64, goodRate: f64): f64 {
  if (rule.inflightGuard <= 0 || limit <= 0 || !(goodRate > 0) || limit * 1000.0 / goodRate > rule.pid.setpoint) return 0;
  const w = allowanceMs(rule, healthyMeanMs, false);
  return w > 0 ? limit * 1000.0 / w * (1 - 1e-9) : 0;
}

/** The latency W in the guard's bound R x W (see inflightLimitOf). */
function allowanceMs(rule: Rule, healthyMeanMs: f64, overload: bool): f64 {
  if (healthyMeanMs <= 0) return rule.inflightGuard * rule.pid.setpoint;
  return (overload ? GUARD_MEAN_MARGIN_OVERLOAD : GUARD_MEAN_MARGIN) * healthyMeanMs;
}

/**
 * The lease holder's per-tick update of a rule's in-flight guard: the limit from the current
 * rate, split between workers by their smoothed share of arrivals (each then holds its part on
 * its own exact count, with no hostcall per request).
 */
function guardStep(rt: RuleRuntime, workers: Array<string>, snaps: Array<Samples | null>): void {
  const rule = rt.rule;
  const stored = getShared(bucketKey(rule));
  const bucket: Bucket | null = stored === null ? null : Bucket.decode(stored.value);
  if (bucket === null) return;
  const g = new GuardRecord();
  g.rate = bucket.rate;
  g.cuts = bucket.cuts;
  g.limit = inflightLimitOf(rule, bucket.rate, rt.healthyMeanMs, rt.overload);
  g.exact = g.limit < EXACT_PER_WORKER * <f64>workers.length;
  let total: f64 = 0, inflight: u64 = 0;
  const trends = new Array<f64>();
  for (let k = 0; k < workers.length; k++) {
    const cur = snaps[k];
    if (cur === null) continue;
    inflight += cur.inflight;
    const id = workers[k];
    const last = rt.lastArrivals.has(id) ? rt.lastArrivals.get(id) : cur.arrivals;
    rt.lastArrivals.set(id, cur.arrivals);
    const trend = (rt.arrivalTrend.has(id) ? 0.8 * rt.arrivalTrend.get(id) : 0) + 0.2 * <f64>delta(cur.arrivals, last);
    rt.arrivalTrend.set(id, trend);
    g.workers.push(U64.parseInt(id));
    g.seen.push(<f64>cur.inflight);
    trends.push(trend);
    total += trend;
  }
  // Each worker's part follows its share of the arrivals, but never below half an equal share:
  // a worker seen for the first time has no trend yet, and a part of one request would shed
  // its traffic on a healthy service (the sum over workers stays under the limit check anyway).
  const floor = trends.length > 0 ? 0.5 / <f64>trends.length : 1.0;
  for (let k = 0; k < trends.length; k++) {
    const share = total > 0 ? trends[k] / total : 1.0 / <f64>trends.length;
    g.shares.push(share < floor ? floor : share);
  }
  g.inflight = <f64>inflight;
  setShared(guardKey(rule), g.encode(), 0);
  if (g.exact) pruneLedger(rule, g.workers);
  rt.metrics.inflight.record(inflight);
  rt.metrics.inflightLimit.record(<u64>g.limit);
}

/**
 * The exact guard for one more request: the other workers' entries in the ledger plus this
 * worker's own count under the limit (less the class's reserve). Reads the ledger only; the
 * caller records the admission with recordAdmission once the request also has its token.
 */
function exactAdmits(rt: RuleRuntime, reserve: f64, ledger: Ledger, worker: u64): bool {
  let limit = rt.guardLimit * (1 - reserve);
  if (limit < 1) limit = 1;
  return ledger.othersOf(worker) + <f64>rt.inflight < limit;
}

/**
 * Writes this worker's count (rt.inflight) into the ledger. `read` is the ledger as last read
 * (null: read it first). A write lost to contention is left to the next one (every tick writes).
 */
function publishCount(rt: RuleRuntime, worker: u64, read: SharedValue | null = null): void {
  const key = ledgerKey(rt.rule);
  let cur = read;
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    if (attempt > 0 || cur === null) cur = getShared(key);
    const l = cur === null ? new Ledger() : Ledger.decode(cur.value);
    if (!l.set(worker, rt.inflight > 0 ? <f64>rt.inflight : 0)) return;
    if (setShared(key, l.encode(), cur === null ? 0 : cur.cas) != Status.CasMismatch) return;
  }
}

/** The lease holder drops the ledger entries of workers no longer registered. */
function pruneLedger(rule: Rule, workers: Array<u64>): void {
  const cur = getShared(ledgerKey(rule));
  if (cur === null) return;
  const l = Ledger.decode(cur.value);
  if (l.keep(workers)) setShared(ledgerKey(rule), l.encode(), cur.cas);
}

function delta(cur: u64, prev: u64): u64 {
  return cur >= prev ? cur - prev : cur;
}

function sampleKey(rule: Rule, worker: string): string {
  return "arl:s:" + rule.name + ":" + worker;
}
function controllerKey(rule: Rule): string {
  return "arl:c:" + rule.name;
}
function bucketKey(rule: Rule): string {
  return "arl:b:" + rule.name;
}
function ledgerKey(rule: Rule): string {
  return "arl:f:" + rule.name;
}
function guardKey(rule: Rule): string {
  return "arl:g:" + rule.name;
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
      // A real cut only: the controller's small moves down would drop, each time, the requests
      // then in flight, the longest ones most likely (a percentile read low).
      if (rate < CUT_SHARE * k.rate) k.cuts++;
    }
    k.rate = rate;
    k.burstMs = rule.burstMs;
    k.epoch = epoch;
    if (k.tokens > k.capacity) k.tokens = k.capacity;
    if (setShared(bucketKey(rule), k.encode(), cur === null ? 0 : cur.cas) == Status.Ok) return;
  }
}

class Take {
  /** The bucket's cut count as this take read it (admitted takes only). */
  cuts: u32 = 0;
  constructor(public admitted: bool, public rate: f64, public remaining: f64, public retryS: f64, public guard: bool = false) {}
}

/** Takes one token for a class that must leave `reserve` of the bucket (beyond one token) to more critical classes. */
function takeToken(rule: Rule, reserve: f64, now: f64, consumeWhenShort: bool): Take {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const cur = getShared(bucketKey(rule));
    if (cur === null) return new Take(true, 0, 0, 0); // no bucket yet: fail open
    const k = Bucket.decode(cur.value);
    if (k === null) return new Take(true, 0, 0, 0);
    const restarted = k.refill(now);
    // A class may take the last token only if `reserve` of the rest stays for more critical ones.
    const need = 1 + reserve * (k.capacity - 1);
    if (k.tokens < need) {
      const retry = (need - k.tokens) / k.rate;
      // After a clock step the restarted refill must be kept, or every reader restarts it again.
      if (restarted) setShared(bucketKey(rule), k.encode(), cur.cas);
      if (!consumeWhenShort) {
        // Persist the refill only when it is cheap to lose: a failed CAS here changes nothing.
        return new Take(false, k.rate, k.tokens - reserve * (k.capacity - 1), retry);
      }
      return new Take(false, k.rate, 0, retry);
    }
    k.tokens -= 1;
    if (setShared(bucketKey(rule), k.encode(), cur.cas) == Status.Ok) {
      const t = new Take(true, k.rate, k.tokens - reserve * (k.capacity - 1), 0);
      t.cuts = k.cuts;
      return t;
    }
  }
  // Persistent contention: admit rather than reject traffic the bucket may well have room for.
  return new Take(true, 0, 0, 0);
}

/**
 * The request's class: the first priority source that names a known class (a header is read
 * from the map already fetched; route metadata and filter state cost one property read each),
 * else the default class.
 */
function classOf(s: Settings, view: PairsView): i32 {
  for (let i = 0; i < s.prioritySources.length; i++) {
    const src = s.prioritySources[i];
    let v: string | null = null;
    if (src.kind == PrioritySourceKind.Header) {
      const at = view.find(src.headerBytes);
      if (at >= 0) v = view.value(at);
    } else {
      v = getPropertyString(src.path);
    }
    if (v === null) continue;
    for (let k = 0; k < s.classes.length; k++) if (s.classes[k].name == v) return k;
  }
  return s.defaultClass;
}

const PATH = String.UTF8.encode(":path");
const METHOD = String.UTF8.encode(":method");

class RateLimitStream extends FilterStream {
  rt: RuleRuntime | null = null;
  startMs: f64 = 0;
  admitted: bool = false;
  rate: f64 = 0;
  remaining: f64 = 0;
  /** The rule's cut count when this request was admitted. */
  cuts: u32 = 0;

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
    const cls = classOf(s, view);
    const rt = root.runtimes[index];
    this.rt = rt;
    rt.samples.arrivals++;
    rt.dirty = true;
    const now = nowMs();
    const reserve = s.classes[cls].reserve;
    let take: Take;
    // The in-flight guard first (parts: no hostcall; exact: one read of the ledger): the same
    // reserve holds back part of it for more critical classes.
    let ledger: SharedValue | null = null;
    let guardOk = true;
    if (rt.inflightPart > 0 && rt.exact) {
      ledger = getShared(ledgerKey(rt.rule));
      guardOk = exactAdmits(rt, reserve, ledger === null ? new Ledger() : Ledger.decode(ledger.value), root.workerId);
    } else if (rt.inflightPart > 0) {
      guardOk = guardAdmits(rt, reserve);
    }
    if (!guardOk) take = new Take(false, rt.guardRate, 0, rt.rule.pid.setpoint / 1000.0, true);
    else take = takeToken(rt.rule, reserve, now, false);
    if (take.admitted) {
      rt.metrics.admitted[cls].increment(1);
      if (take.rate > 0) rt.cuts = take.cuts;
      // With a guard, the request is judged by the rate after a cut only once the guard follows
      // it too (until then it may join the backlog the cut is draining).
      this.cuts = rt.inflightPart > 0 ? rt.guardCuts : rt.cuts;
      rt.inflight++;
      if (rt.exact && rt.inflightPart > 0) publishCount(rt, root.workerId, ledger);
      this.admitted = true;
      this.startMs = now;
      this.rate = take.rate;
      this.remaining = take.remaining;
      return FilterHeadersStatusValues.Continue;
    }
    rt.metrics.rejected[cls].increment(1);
    rt.samples.rejected++;
    if (s.dryRun) {
      if (now - root.lastDryRunLog >= 1000) {
        root.lastDryRunLog = now;
        logInfo(FILTER_NAME + " dry-run: would reject " + s.classes[cls].name + " traffic of rule " + rt.rule.name + (take.guard ? " (in-flight limit)" : " (limit " + (<i64>Math.round(take.rate)).toString() + "/s)"));
      }
      rt.inflight++;
      this.admitted = true;
      this.startMs = now;
      this.cuts = rt.cuts;
      return FilterHeadersStatusValues.Continue;
    }
    const retry = retryAfterS(rt, take.retryS);
    const h = new Array<Header>();
    h.push(new Header("retry-after", retry.toString()));
    h.push(new Header("ratelimit-limit", (<i64>Math.round(take.rate)).toString()));
    h.push(new Header("ratelimit-remaining", "0"));
    h.push(new Header("ratelimit-reset", retry.toString()));
    h.push(new Header("x-ratelimit-rule", rt.rule.name));
    const why = take.guard ? " (too many requests in flight)" : "";
    sendLocalResponse(s.rejectStatus, "adaptive_ratelimit_" + rt.rule.name, FILTER_NAME + ": rule " + rt.rule.name + " is shedding " + s.classes[cls].name + " traffic" + why + "; retry after " + retry.toString() + " s\n", h);
    return FilterHeadersStatusValues.StopIteration;
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.limiter;
    const s = root.settings;
    const rt = this.rt;
    if (this.admitted && rt !== null) {
      const latency = nowMs() - this.startMs;
      const status = getHeader(MapType.ResponseHeaders, ":status");
      const code = status === null ? 0 : I32.parseInt(status);
      if (latency >= 0 && latency < 3600000) {
        // Envoy's own 5xx replies (the router's answer to an upstream reset, timeout, overflow or
        // protocol error; another filter's local reply) are errors, not the service's latency: a
        // fast 503 would pull the percentile down exactly when the service is failing. Only a
        // 5xx costs the extra hostcall; without the property the sample is kept.
        const details = code >= 500 ? getPropertyString(["response", "code_details"]) : null;
        // Admitted before the rate was last cut: that latency is the old rate's (the backlog the
        // cut is draining) and would make the reading after the cut cut again; it still counts
        // as a completion (throughput, errors).
        if ((details === null || details == "via_upstream") && this.cuts == rt.cuts) rt.samples.counts[bucketOf(latency)]++;
        rt.samples.completed++;
        if (code >= 500) rt.samples.errors++;
        rt.dirty = true;
      }
      this.admitted = false; // one sample per stream, even if a local reply re-enters
      rt.inflight--;
      rt.dirty = true;
      if (rt.exact) publishCount(rt, root.workerId);
      if (s.quotaHeaders && this.rate > 0) {
        setHeader(MapType.ResponseHeaders, "ratelimit-limit", (<i64>Math.round(this.rate)).toString());
        setHeader(MapType.ResponseHeaders, "ratelimit-remaining", (<i64>Math.max(0, Math.floor(this.remaining))).toString());
      }
    }
    if (s.stampBuild) setHeader(MapType.ResponseHeaders, "x-adaptive-ratelimit-build", VERSION);
    return FilterHeadersStatusValues.Continue;
  }

  /** A stream that ends without response headers (reset, timeout) leaves the in-flight count; it gives no sample. */
  onDone(): bool {
    const rt = this.rt;
    if (this.admitted && rt !== null) {
      this.admitted = false;
      rt.inflight--;
      rt.dirty = true;
      if (rt.exact) publishCount(rt, this.limiter.workerId);
    }
    return true;
  }
}

