// The closed loop of adaptive-ratelimit: a simulated upstream (the plant), the scenarios, the
// baseline controllers and the measurement, shared by the benchmark (bench/ratelimit.ts) and
// the regression test (filters/adaptive-ratelimit/test/closed-loop.test.ts).
//
// Plant: a FIFO queue in front of `servers` parallel servers; each request needs a service
// time drawn uniformly from [0.8, 1.2] x `serviceMs` (and, in the low-traffic scenario, 5% of
// requests take 4x). Capacity = servers / serviceMs. A request's latency is its wait for a
// free server plus its service time, so latency is flat at low load, climbs steeply near
// capacity and grows without bound beyond it (the backlog). Arrivals are Poisson, spread
// round-robin over 4 Envoy workers, from one seeded generator: every controller sees the same
// arrival sequence and plant.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Envoy } from "../runtime/host/src/index.js";

export const root = new URL("..", import.meta.url).pathname;
export const WORKERS = 4;
export const SETPOINT_MS = 150;
export const PERCENTILE = 0.99;
export const INTERVAL_MS = 1000;

// ---------------------------------------------------------------- randomness and plant

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * How a request's service time is drawn around the mean `serviceMs`: "jitter" uniform in
 * [0.8, 1.2] x mean, "exponential", or "heavy" (lognormal, sigma 1: p99 about 6 x the mean).
 */
export type ServiceDist = "jitter" | "exponential" | "heavy";

/** The service time's q-quantile as a multiple of its mean (what a request takes on an idle server). */
export function serviceQuantile(dist: ServiceDist, q: number): number {
  if (dist === "jitter") return 0.8 + 0.4 * q;
  if (dist === "exponential") return -Math.log(1 - q);
  // Lognormal with sigma 1 and mean 1 (mu = -0.5): exp(mu + z_q), with the standard normal's
  // quantile z_q for the three percentiles the family uses.
  const Z: Record<number, number> = { 0.5: 0, 0.9: 1.2816, 0.99: 2.3263 };
  if (Z[q] === undefined) throw new Error(`serviceQuantile: no normal quantile for q = ${q}`);
  return Math.exp(-0.5 + Z[q]);
}

export class Plant {
  private free: number[];
  private random: () => number;
  constructor(public servers: number, public serviceMs: number, seed: number, private slowShare = 0, private dist: ServiceDist = "jitter") {
    this.free = new Array(servers).fill(0);
    this.random = rng(seed);
  }
  private service(): number {
    if (this.dist === "jitter") return this.serviceMs * (0.8 + 0.4 * this.random());
    if (this.dist === "exponential") return -Math.log(1 - this.random()) * this.serviceMs;
    // Box-Muller: a standard normal from two uniforms.
    const z = Math.sqrt(-2 * Math.log(1 - this.random())) * Math.cos(2 * Math.PI * this.random());
    return this.serviceMs * Math.exp(-0.5 + z);
  }
  get capacity(): number { return (this.servers * 1000) / this.serviceMs; }
  /** Changes the number of servers (a capacity drop); queued work stays queued. */
  resize(servers: number): void {
    if (servers < this.free.length) this.free.sort((a, b) => a - b).splice(servers);
    while (this.free.length < servers) this.free.push(0);
    this.servers = servers;
  }
  /** Latency of a request admitted at `t` (ms). */
  admit(t: number): number {
    let best = 0;
    for (let i = 1; i < this.free.length; i++) if (this.free[i] < this.free[best]) best = i;
    let service = this.service();
    if (this.slowShare > 0 && this.random() < this.slowShare) service *= 4;
    const start = Math.max(t, this.free[best]);
    this.free[best] = start + service;
    return start + service - t;
  }
}

// ---------------------------------------------------------------- scenarios

export interface Scenario {
  name: string;
  seconds: number;
  /** Seconds at which the disturbance starts (settling and overshoot are measured from it). */
  disturbanceAt: number;
  servers: number;
  serviceMs: number;
  slowShare?: number;
  /** Offered requests/s at time t (s). */
  offered: (t: number, capacity: number) => number;
  /** Servers at time t (s). */
  serversAt?: (t: number) => number;
  /** Service time distribution (default jitter). */
  dist?: ServiceDist;
  /** The SLO: this percentile (0-1) of latency at most setpointMs (default p99 <= 150 ms). */
  percentile?: number;
  setpointMs?: number;
  /** Envoy workers (default 4). */
  workers?: number;
}

const sloOf = (s: Scenario) => ({ q: s.percentile ?? PERCENTILE, setpoint: s.setpointMs ?? SETPOINT_MS });

export const BASE = { servers: 16, serviceMs: 50 }; // capacity 320 req/s

export const SCENARIOS: Scenario[] = [
  { name: "overload: load steps to 3x capacity", seconds: 60, disturbanceAt: 20, ...BASE, offered: (t, c) => (t < 20 ? 0.6 * c : 3 * c) },
  { name: "capacity drops by 60% under steady load", seconds: 60, disturbanceAt: 20, ...BASE, offered: (_t, c) => 0.8 * c, serversAt: (t) => (t < 20 ? 16 : 6) },
  { name: "low traffic: 1 request/s per worker", seconds: 60, disturbanceAt: 0, ...BASE, slowShare: 0.05, offered: () => WORKERS },
  { name: "recovery after overload", seconds: 60, disturbanceAt: 20, ...BASE, offered: (t, c) => (t < 20 ? 3 * c : 0.6 * c) },
];

/** Poisson arrival times (ms) for a scenario, from a seed. */
export function arrivals(s: Scenario, seed: number): number[] {
  const random = rng(seed);
  const nominal = (s.servers * 1000) / s.serviceMs;
  const out: number[] = [];
  let t = 0;
  while (t < s.seconds * 1000) {
    const rate = s.offered(t / 1000, nominal);
    t += (-Math.log(1 - random()) / rate) * 1000;
    if (t < s.seconds * 1000) out.push(t);
  }
  return out;
}

// ---------------------------------------------------------------- measurement

export interface Outcome { arrival: number; admitted: boolean; latency?: number }

export interface Result {
  controller: string;
  goodputPct: number;
  p99Ms: number;
  rejectedPct: number;
  settlingIntervals: number | null;
  overshootPct: number;
}

export function percentile(xs: number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

export function evaluate(controller: string, s: Scenario, outcomes: Outcome[]): Result {
  const { q, setpoint } = sloOf(s);
  const windows = s.seconds;
  const p99ByWindow: number[] = [];
  const completedByWindow: number[][] = Array.from({ length: windows }, () => []);
  for (const o of outcomes) if (o.admitted && o.latency !== undefined) completedByWindow[Math.floor(o.arrival / 1000)].push(o.latency);
  for (let w = 0; w < windows; w++) p99ByWindow.push(percentile(completedByWindow[w], q));
  // Capacity the plant has during the measured (disturbed) phase.
  const serversAfter = s.serversAt ? s.serversAt(s.seconds - 1) : s.servers;
  const capacityAfter = (serversAfter * 1000) / s.serviceMs;
  const from = s.disturbanceAt, to = s.seconds;
  const measured = outcomes.filter((o) => o.arrival >= from * 1000 && o.arrival < to * 1000);
  const good = measured.filter((o) => o.admitted && o.latency !== undefined && o.latency <= setpoint).length;
  const goodputPct = (100 * good) / ((to - from) * capacityAfter);
  const rejectedPct = measured.length === 0 ? 0 : (100 * measured.filter((o) => !o.admitted).length) / measured.length;
  // Settled: from this window on, every window's p99 stays within 10% above the setpoint.
  let settled: number | null = null;
  for (let w = from; w < to; w++) {
    if (p99ByWindow.slice(w, to).every((p) => p <= setpoint * 1.1)) { settled = w - from; break; }
  }
  const tail = measured.filter((o) => o.arrival >= Math.max(from, to - 20) * 1000 && o.admitted && o.latency !== undefined).map((o) => o.latency!);
  const overshoot = Math.max(0, ...p99ByWindow.slice(from, to).map((p) => (100 * (p - setpoint)) / setpoint));
  return { controller, goodputPct, p99Ms: percentile(tail, q), rejectedPct, settlingIntervals: settled, overshootPct: overshoot };
}

// ---------------------------------------------------------------- controllers in TypeScript

/** Runs a pure-TypeScript admission policy against the plant (event-driven). */
export function runPolicy(s: Scenario, times: number[], policy: Policy, trace?: Trace): Outcome[] {
  const plant = new Plant(s.servers, s.serviceMs, 7, s.slowShare, s.dist);
  const outcomes: Outcome[] = [];
  // Admitted requests still running, by completion time; `done` holds the completed ones the
  // policy has not seen yet.
  const running = new MinHeap();
  let done: number[] = [];
  let nextControl = INTERVAL_MS / 10;
  for (const t of times) {
    while (nextControl <= t) {
      while (running.size > 0 && running.peek().at <= nextControl) done.push(running.pop().latency);
      policy.control(nextControl, done);
      done = [];
      if (trace && policy.limit && nextControl % 1000 < policy.periodMs) trace.push(policy.limit());
      nextControl += policy.periodMs;
    }
    if (s.serversAt) plant.resize(s.serversAt(t / 1000));
    while (running.size > 0 && running.peek().at <= t) done.push(running.pop().latency);
    if (!policy.admit(t, running.size)) { outcomes.push({ arrival: t, admitted: false }); continue; }
    const latency = plant.admit(t);
    running.push({ at: t + latency, latency });
    outcomes.push({ arrival: t, admitted: true, latency });
  }
  return outcomes;
}

/** A binary min-heap of completions by time. */
class MinHeap {
  private items: Array<{ at: number; latency: number }> = [];
  get size(): number { return this.items.length; }
  peek(): { at: number; latency: number } { return this.items[0]; }
  push(x: { at: number; latency: number }): void {
    const h = this.items;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].at <= h[i].at) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }
  pop(): { at: number; latency: number } {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && h[l].at < h[m].at) m = l;
        if (r < h.length && h[r].at < h[m].at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

/** The limit a controller had, once a second (a rate in requests/s, or a concurrency). */
export type Trace = number[];

export interface Policy {
  periodMs: number;
  /** The limit now, for the charts (requests/s, or requests in flight for a concurrency limiter). */
  limit?: () => number;
  admit(t: number, inflight: number): boolean;
  /** Called every period with the latencies that completed since the last call. */
  control(t: number, latencies: number[]): void;
}

export const none = (): Policy => ({ periodMs: 1000, admit: () => true, control: () => {} });

/** AIMD on a token rate: every interval, p99 over the setpoint halves the rate, otherwise +2% of capacity. */
export function aimd(capacity: number, q = PERCENTILE, setpoint = SETPOINT_MS): Policy {
  let rate = capacity, tokens = 0, last = 0;
  return {
    periodMs: INTERVAL_MS,
    limit: () => rate,
    admit(t) {
      tokens = Math.min(rate * 0.1, tokens + ((t - last) * rate) / 1000);
      last = t;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
    control(_t, latencies) {
      if (latencies.length < 20) return;
      if (percentile(latencies, q) > setpoint) rate = Math.max(Math.min(10, capacity / 10), rate * 0.5);
      else rate = rate + 0.02 * capacity;
    },
  };
}

/**
 * Envoy adaptive_concurrency (gradient controller), from its documentation: every
 * concurrency_update_interval (100 ms) the sampled latency gives
 * gradient = clamp((minRTT * 1.25) / sampleRTT, 0.5, 2) and limit = gradient * limit + sqrt(limit),
 * capped at 1000. Every 60 s (jitter 15%), and after 5 windows at the minimum, minRTT is
 * re-measured: the limit is pinned to min_concurrency (3) until 50 requests completed. Both the
 * sample and minRTT are the same percentile of their requests, sample_aggregate_percentile:
 * Envoy's default is 50 (the default row); 99 matches this benchmark's SLO (an extra row).
 */
export function gradient(samplePercentile = 0.5): Policy {
  let limit = 3, minRtt = 0, probing = true, probeSamples: number[] = [], nextProbe = 0, atMinimum = 0;
  const random = rng(11);
  return {
    periodMs: 100,
    limit: () => (probing ? 3 : limit),
    admit(_t, inflight) { return inflight < (probing ? 3 : limit); },
    control(t, latencies) {
      if (probing) {
        probeSamples.push(...latencies);
        if (probeSamples.length >= 50) {
          minRtt = percentile(probeSamples, samplePercentile);
          probing = false;
          probeSamples = [];
          nextProbe = t + 60000 * (1 + 0.15 * (random() * 2 - 1));
        }
        return;
      }
      if (t >= nextProbe || atMinimum >= 5) { probing = true; atMinimum = 0; return; }
      if (latencies.length === 0) return;
      const sample = percentile(latencies, samplePercentile);
      const g = Math.min(2, Math.max(0.5, (minRtt * 1.25) / sample));
      limit = Math.min(1000, Math.max(3, Math.floor(g * limit + Math.sqrt(limit))));
      atMinimum = limit <= 3 ? atMinimum + 1 : 0;
    },
  };
}

/** A fixed token bucket at `rate` with a 50 ms burst (the family's static baseline, in TypeScript). */
export function fixedRate(rate: number): Policy {
  let tokens = 0, last = 0;
  return {
    periodMs: INTERVAL_MS,
    limit: () => rate,
    admit(t) {
      tokens = Math.min(Math.max(1, rate * 0.05), tokens + ((t - last) * rate) / 1000);
      last = t;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
    control() {},
  };
}

// ---------------------------------------------------------------- the filter in the host

export async function runFilter(s: Scenario, times: number[], configuration: object, trace?: Trace): Promise<Outcome[]> {
  const workers = s.workers ?? WORKERS;
  const envoy = new Envoy({ workers, logLevel: "warn", startTimeMs: 0 });
  envoy.addPlugin({ name: "adaptive-ratelimit", rootId: "adaptive-ratelimit", vmId: "arl", wasm: readFileSync(join(root, "dist/adaptive-ratelimit.wasm")), configuration: JSON.stringify(configuration) });
  const plant = new Plant(s.servers, s.serviceMs, 7, s.slowShare, s.dist);
  const outcomes: Outcome[] = times.map((t) => ({ arrival: t, admitted: false }));
  const pending: Promise<unknown>[] = [];
  times.forEach((t, i) => {
    envoy.at(t, () => {
      if (s.serversAt) plant.resize(s.serversAt(t / 1000));
      pending.push(envoy.request({
        worker: i % workers, path: "/api/orders", upstream: async () => {
          const latency = plant.admit(envoy.nowMs());
          outcomes[i].admitted = true;
          outcomes[i].latency = latency;
          await envoy.sleep(latency);
          return { status: 200 };
        },
      }));
    });
  });
  for (let sec = 0; sec < s.seconds; sec++) {
    await envoy.advance(1000);
    if (trace) trace.push(envoy.metric("adaptive_ratelimit.api.limit") ?? 0);
    if (process.env.ARL_TRACE) {
      const w = outcomes.filter((o) => o.arrival >= sec * 1000 && o.arrival < (sec + 1) * 1000);
      const lat = w.filter((o) => o.admitted).map((o) => o.latency!);
      process.stderr.write(`t=${sec} offered=${w.length} admitted=${lat.length} p=${percentile(lat, sloOf(s).q).toFixed(0)} limit=${envoy.metric("adaptive_ratelimit.api.limit")} inflight=${envoy.metric("adaptive_ratelimit.api.inflight")}/${envoy.metric("adaptive_ratelimit.api.inflight_limit")} measured=${(envoy.metric("adaptive_ratelimit.api.measured_milli") ?? 0) / 1000}\n`);
    }
  }
  await envoy.advance(60_000);
  await Promise.all(pending);
  return outcomes;
}

/** The filter as the benchmark runs it: its defaults apart from the rates (and, if given, the guard). */
export function pidConfig(capacity: number, guard?: number, initialFactor = 1): object {
  return {
    tick_ms: 100,
    rules: [{
      name: "api", burst_ms: 50,
      controller: { signal: "latency", percentile: PERCENTILE * 100, setpoint_ms: SETPOINT_MS, interval_ms: INTERVAL_MS, min_rate: 10, max_rate: 10 * capacity,
        initial_rate: capacity * initialFactor, min_samples: 20, max_step: 0.1, max_decrease: 0.5, creep: 0.01, kp: 0.2, ki: 0.3, kd: 0.6, filter: 0.7,
        ...(guard === undefined ? {} : { inflight_guard: guard }) },
    }],
  };
}

export function staticConfig(capacity: number): object {
  return {
    rules: [{ name: "api", burst_ms: 50, controller: { signal: "latency", setpoint_ms: SETPOINT_MS, min_rate: capacity, max_rate: capacity, initial_rate: capacity, inflight_guard: 0 } }],
  };
}

