// The closed loop in real Envoy (npm run bench:ratelimit -- --envoy, and the smoke test in
// filters/adaptive-ratelimit/test/closed-loop-envoy.test.ts): Envoy with 4 workers in front of
// a local upstream with a fixed number of servers and a service time (bench/upstream.mjs), driven
// in real time by an open-loop Poisson generator in this process, through the closed-loop
// scenarios compressed in time. Controllers: the filter (PID, and as a static limit), no limiter,
// and Envoy's own adaptive_concurrency filter with its defaults (the gradient baseline, real).
import { type ChildProcess, fork } from "node:child_process";
import { Agent, request } from "node:http";
import { once } from "node:events";
import { join } from "node:path";
import { hcmListener, ROUTER_FILTER, wasmHttpFilter } from "../manifests/src/wasm.js";
import { type EnvoyProcess, startEnvoy } from "../runtime/gateway/envoy.js";
import { type Outcome, type Scenario, arrivals, root } from "./closed-loop.js";

export type Variant = "pid" | "static" | "none" | "adaptive_concurrency";


/** Envoy's adaptive_concurrency with its documented defaults (p50 samples, 100 ms updates, minRTT every 60 s from 50 requests). */
export const ADAPTIVE_CONCURRENCY = {
  name: "envoy.filters.http.adaptive_concurrency",
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.adaptive_concurrency.v3.AdaptiveConcurrency",
    gradient_controller_config: {
      sample_aggregate_percentile: { value: 50 },
      concurrency_limit_params: { concurrency_update_interval: "0.1s" },
      min_rtt_calc_params: { interval: "60s", request_count: 50 },
    },
  },
};

export function loopBootstrap(upstreamPort: number, filters: object[]): Record<string, unknown> {
  return {
    static_resources: {
      listeners: [hcmListener("front", 10000, {
        stat_prefix: "front",
        route_config: { name: "r", virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "upstream", timeout: "60s" } }] }] },
        http_filters: [...filters, ROUTER_FILTER],
      })],
      clusters: [{
        name: "upstream", type: "STATIC", connect_timeout: "1s",
        load_assignment: { cluster_name: "upstream", endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: upstreamPort } } } }] }] },
        // Envoy's default circuit breakers (1,024 pending) would be a limiter of their own.
        circuit_breakers: { thresholds: [{ max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 }] },
      }],
    },
  };
}

export function filtersOf(variant: Variant, configuration: object): object[] {
  if (variant === "none") return [];
  if (variant === "adaptive_concurrency") return [ADAPTIVE_CONCURRENCY];
  return [wasmHttpFilter({ filter: "adaptive-ratelimit", configuration, filename: join(root, "dist/adaptive-ratelimit.wasm"), failOpen: false })];
}

/** A scenario `factor` times shorter: the same shape of load and capacity over seconds / factor. */
export function compressed(s: Scenario, factor: number): Scenario {
  return {
    ...s,
    seconds: s.seconds / factor,
    disturbanceAt: s.disturbanceAt / factor,
    offered: (t, c) => s.offered(t * factor, c),
    serversAt: s.serversAt ? (t) => s.serversAt!(t * factor) : undefined,
  };
}

export interface Upstream { port: number; child: ChildProcess; resize(servers: number): void; stop(): Promise<void> }

export async function startUpstream(servers: number, serviceMs: number): Promise<Upstream> {
  const child = fork(join(root, "bench/upstream.mjs"), [String(servers), String(serviceMs)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, "exit");
    child.kill("SIGTERM");
    await gone;
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("upstream did not start within 10 s")), 10_000);
      child.once("message", (m: any) => { clearTimeout(timer); resolve(m.port); });
      child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`upstream exited (${code})`)); });
    });
    return { port, child, resize: (n) => child.send({ servers: n }), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Offers the scenario's arrivals (open loop: each at its time, whatever is still in flight) to
 * Envoy; an answer other than 429 and 503 from a limiter counts as admitted, with the latency the
 * client saw. Requests still unanswered `graceMs` after the end are given up as admitted and late.
 */
export async function drive(envoyPort: number, s: Scenario, seed: number, upstream: Upstream, graceMs = 10_000): Promise<Outcome[]> {
  const times = arrivals(s, seed);
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const outcomes: Outcome[] = times.map((t) => ({ arrival: t, admitted: false }));
  const answered = new Array<boolean>(times.length).fill(false);
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  let next = 0, servers = s.servers;
  await new Promise<void>((resolve) => {
    const fire = () => {
      const now = performance.now() - t0;
      if (s.serversAt) {
        const want = s.serversAt(now / 1000);
        if (want !== servers) { servers = want; upstream.resize(want); }
      }
      while (next < times.length && times[next] <= now) {
        const i = next++;
        const p = new Promise<void>((done) => {
          const finish = (admitted: boolean) => {
            answered[i] = true;
            outcomes[i].admitted = admitted;
            if (admitted) outcomes[i].latency = performance.now() - t0 - outcomes[i].arrival;
            done();
          };
          const req = request({ host: "127.0.0.1", port: envoyPort, path: "/api/orders", agent }, (res) => {
            res.resume();
            // 429: the filter's rejection; 503: adaptive_concurrency's (or Envoy's own overflow).
            res.on("end", () => finish(res.statusCode !== 429 && res.statusCode !== 503));
          });
          // A failed request was let through and failed: admitted, and as late as it took.
          req.on("error", () => finish(true));
          req.end();
        });
        pending.add(p);
        p.then(() => pending.delete(p));
      }
      if (next >= times.length) { resolve(); return; }
      setTimeout(fire, Math.max(0, Math.min(5, times[next] - (performance.now() - t0))));
    };
    fire();
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(pending), new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
  clearTimeout(timer);
  const end = performance.now() - t0;
  // Still in flight: admitted, and at least as late as the end of the wait.
  outcomes.forEach((o, i) => { if (!answered[i]) { o.admitted = true; o.latency = end - o.arrival; } });
  agent.destroy();
  return outcomes;
}

/** One run: a fresh upstream and a fresh Envoy (shared data starts empty: a cold start), then the scenario. */
export async function runOnEnvoy(bin: string, s: Scenario, variant: Variant, configuration: object, seed: number, opts: { concurrency?: number } = {}): Promise<Outcome[]> {
  const upstream = await startUpstream(s.servers, s.serviceMs);
  let envoy: EnvoyProcess | null = null;
  try {
    envoy = await startEnvoy({ bin, bootstrap: loopBootstrap(upstream.port, filtersOf(variant, configuration)), cwd: root, concurrency: opts.concurrency ?? 4, logLevel: "warning" });
    return await drive(envoy.ports.get("front")!, s, seed, upstream);
  } finally {
    if (envoy) await envoy.stop();
    await upstream.stop();
  }
}
