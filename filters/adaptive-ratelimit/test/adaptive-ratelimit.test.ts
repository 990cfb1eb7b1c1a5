// adaptive-ratelimit, the built module in the host.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError, type StreamResult } from "../../../runtime/host/src/index.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";
import { Plant } from "../../../bench/closed-loop.js";

const wasm = readFileSync(wasmPath("adaptive-ratelimit"));

function fixedRule(rate: number, extra: object = {}) {
  return { name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", setpoint_ms: 200, min_rate: rate, max_rate: rate, initial_rate: rate }, ...extra };
}

function limiter(config: object, workers = 1, opts: { version?: string } = {}) {
  const envoy = new Envoy({ workers, logLevel: "info", ...opts });
  const plugin = envoy.addPlugin({ name: "adaptive-ratelimit", rootId: "adaptive-ratelimit", vmId: "arl", wasm, configuration: JSON.stringify(config) });
  return { envoy, plugin };
}

/**
 * Offers `perSecond` requests per second, spread evenly in time and over workers, for
 * `seconds`; returns how many were admitted (answered 200) per second of arrival.
 */
async function offer(envoy: Envoy, perSecond: number, seconds: number, spec: { path?: string; headers?: Array<[string, string]>; latencyMs?: number } = {}) {
  const admittedPerSecond = new Array<number>(seconds).fill(0);
  const pending: Promise<unknown>[] = [];
  let worker = 0;
  const gap = 1000 / perSecond;
  for (let s = 0; s < seconds; s++) {
    for (let i = 0; i < perSecond; i++) {
      envoy.at(envoy.nowMs() + i * gap, () => {
        pending.push(envoy.request({
          worker: worker++ % envoy.workers, path: spec.path ?? "/api/x", headers: spec.headers,
          upstream: async () => { if (spec.latencyMs) await envoy.sleep(spec.latencyMs); return { status: 200 }; },
        }).then((r) => { if (r.status === 200) admittedPerSecond[s]++; }));
      });
    }
    await envoy.advance(1000);
  }
  await envoy.advance((spec.latencyMs ?? 0) + 1);
  await Promise.all(pending);
  return admittedPerSecond;
}

describe("cold start (a new rule, a deploy, an Envoy restart)", () => {
  // Nothing but the signal and the setpoint: the rates are the defaults.
  const defaults = { tick_ms: 100, rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 90, setpoint_ms: 100 } }] };

  test("a healthy service at 1,200 requests/s is never shed, from the first second on", async () => {
    const { envoy } = limiter(defaults, 4);
    const perSecond = await offer(envoy, 1200, 8, { latencyMs: 10 });
    expect(perSecond).toEqual(new Array(8).fill(1200));
    expect(envoy.metric("adaptive_ratelimit.api.rejected.normal") ?? 0).toBe(0);
  });

  test("starting open still cuts on evidence: a service answering in 400 ms is limited within a few intervals", async () => {
    const { envoy } = limiter(defaults, 2);
    const perSecond = await offer(envoy, 300, 8, { latencyMs: 400 });
    expect(perSecond[0]).toBe(300);
    expect(Math.min(...perSecond.slice(4))).toBeLessThan(300);
  });
});

describe("the wall clock", () => {
  test("stepping back 60 s does not freeze the bucket: every second still admits the offered 50/s under a 100/s limit", async () => {
    const { envoy } = limiter({ rules: [fixedRule(100)] }, 2);
    await envoy.advance(1000);
    expect(await offer(envoy, 50, 2)).toEqual([50, 50]);
    envoy.stepWallClock(-60_000);
    expect(await offer(envoy, 50, 5)).toEqual([50, 50, 50, 50, 50]);
  });

  test("stepping forward 60 s does not bank a minute of tokens beyond the burst", async () => {
    const { envoy } = limiter({ rules: [fixedRule(100, { burst_ms: 200 })] }, 1);
    await envoy.advance(1000);
    envoy.stepWallClock(60_000);
    let admitted = 0;
    for (let i = 0; i < 200; i++) if ((await envoy.request({ path: "/api/x" })).status === 200) admitted++;
    // At most the burst (100/s x 200 ms = 20 tokens).
    expect(admitted).toBeLessThanOrEqual(20);
  });
});

describe("one limit for the whole Envoy", () => {
  test("8 workers, a fixed limit of 200/s: each second admits within 5% of the limit", async () => {
    const { envoy } = limiter({ rules: [fixedRule(200)] }, 8);
    const perSecond = await offer(envoy, 600, 6);
    for (const n of perSecond.slice(1)) {
      expect(n).toBeGreaterThanOrEqual(190);
      expect(n).toBeLessThanOrEqual(210);
    }
  });

  test("per-worker buckets would have admitted 8x: the shared bucket does not", async () => {
    const { envoy } = limiter({ rules: [fixedRule(100)] }, 8);
    const perSecond = await offer(envoy, 1000, 3);
    expect(perSecond[2]).toBeLessThanOrEqual(105);
  });

  test("under CAS contention (another worker writes between read and swap) no token is granted twice", async () => {
    const { envoy } = limiter({ rules: [fixedRule(50, { burst_ms: 100 })] }, 2);
    let interfered = 0;
    envoy.sharedData.afterGet = (vmId, key, value) => {
      // Every third read of the bucket, a "concurrent worker" takes a token first.
      if (key !== "arl:b:api" || ++interfered % 3 !== 0) return;
      const b = Buffer.from(value);
      b.writeDoubleLE(b.readDoubleLE(0) - 1, 0);
      envoy.sharedData.set(vmId, key, b, 0);
    };
    await envoy.advance(1000);
    let admitted = 0;
    for (let i = 0; i < 100; i++) if ((await envoy.request({ path: "/api/x", worker: i % 2 })).status === 200) admitted++;
    envoy.sharedData.afterGet = undefined;
    // The bucket holds 5 tokens (50/s x 100 ms); concurrent takers consumed some of them.
    expect(admitted).toBeGreaterThan(0);
    expect(admitted).toBeLessThanOrEqual(5);
    expect(interfered).toBeGreaterThan(3);
  });
});

describe("rejections", () => {
  test("429 with Retry-After, RateLimit headers and details naming the rule", async () => {
    const { envoy } = limiter({ rules: [fixedRule(2, { burst_ms: 1000 })] });
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await envoy.request({ path: "/api/x" }));
    const rejected = results.find((r) => r.status === 429)!;
    expect(rejected).toBeDefined();
    expect(rejected.header("retry-after")).toBe("1");
    expect(rejected.header("ratelimit-limit")).toBe("2");
    expect(rejected.header("ratelimit-remaining")).toBe("0");
    expect(rejected.header("ratelimit-reset")).toBe("1");
    expect(rejected.header("x-ratelimit-rule")).toBe("api");
    expect(rejected.details).toBe("adaptive_ratelimit_api");
    expect(rejected.body).toBe("adaptive-ratelimit: rule api is shedding normal traffic; retry after 1 s\n");
    expect(rejected.upstream).toBeNull();
    expect(envoy.metric("adaptive_ratelimit.api.rejected.normal")).toBeGreaterThan(0);
  });

  test("Retry-After grows with how much is being shed: 1 s at a 10% overload, several seconds at 10x", async () => {
    async function lastRetryAfter(perSecond: number): Promise<number> {
      const { envoy } = limiter({ tick_ms: 100, rules: [fixedRule(50)] }, 2);
      let last = 0;
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < perSecond * 3; i++) {
        envoy.at(envoy.nowMs() + (i * 1000) / perSecond, () => {
          pending.push(envoy.request({ path: "/api/x", worker: i % 2 }).then((r) => { if (r.status === 429) last = Number(r.header("retry-after")); }));
        });
      }
      await envoy.advance(3001);
      await Promise.all(pending);
      return last;
    }
    const mild = await lastRetryAfter(55);
    const heavy = await lastRetryAfter(500);
    expect(mild).toBe(1);
    // 90% shed: the rejected would need about nine seconds of the whole limit if they all came back at once.
    expect(heavy).toBeGreaterThanOrEqual(5);
    expect(heavy).toBeLessThanOrEqual(60);
  });

  test("the status is configurable; unmatched paths are never limited", async () => {
    const { envoy } = limiter({ reject_status: 503, rules: [fixedRule(1, { burst_ms: 1000 })] });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await envoy.request({ path: "/api/x" })).status);
    expect(codes).toEqual([200, 503, 503]);
    expect((await envoy.request({ path: "/health" })).status).toBe(200);
  });

  test("dry run counts and logs what it would reject, and admits", async () => {
    const { envoy } = limiter({ dry_run: true, rules: [fixedRule(1, { burst_ms: 1000 })] });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await envoy.request({ path: "/api/x" })).status);
    expect(codes).toEqual([200, 200, 200]);
    expect(envoy.metric("adaptive_ratelimit.api.rejected.normal")).toBe(2);
    expect(envoy.logsAt("info").some((l) => l.includes("dry-run: would reject normal traffic of rule api (limit 1/s)"))).toBe(true);
  });
});

describe("priority", () => {
  test("when shedding, lower classes go first and critical traffic keeps its share", async () => {
    const { envoy } = limiter({ rules: [fixedRule(100, { burst_ms: 200 })] }, 2);
    const counts: Record<string, number> = { critical: 0, sheddable: 0 };
    for (let s = 0; s < 3; s++) {
      const pending: Promise<void>[] = [];
      for (let i = 0; i < 400; i++) {
        const cls = i % 4 === 0 ? "critical" : "sheddable";
        envoy.at(envoy.nowMs() + i * 2.5, () => {
          pending.push(envoy.request({ path: "/api/x", worker: i % 2, headers: [["x-priority", cls]] }).then((r) => { if (r.status === 200 && s > 0) counts[cls]++; }));
        });
      }
      await envoy.advance(1000);
      await Promise.all(pending);
    }
    // 100 critical/s are offered and 100/s admitted in all: critical gets nearly all of it.
    expect(counts.critical).toBeGreaterThanOrEqual(180);
    expect(counts.sheddable).toBeLessThan(40);
  });
});

describe("priority from the route or an earlier filter", () => {
  // One token a second and a 10 s bucket (10 tokens): critical needs 1 token, sheddable
  // (reserve 0.95) 1 + 0.95 x 9 = 9.55. After three critical requests only critical fits.
  const classes = [{ name: "critical" }, { name: "sheddable", reserve: 0.95 }];
  const config = (extra: object) => ({ classes, default_class: "sheddable", ...extra, rules: [fixedRule(1, { burst_ms: 10000 })] });
  const statuses = async (envoy: Envoy, n: number, spec: object) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await envoy.request({ path: "/api/x", ...spec })).status);
    return out;
  };

  test("the route's metadata names the class (filter_metadata adaptive-ratelimit.priority)", async () => {
    const { envoy } = limiter(config({ priority_from: [{ route_metadata: "priority" }] }));
    expect(await statuses(envoy, 3, { routeMetadata: { "adaptive-ratelimit": { priority: "critical" } } })).toEqual([200, 200, 200]);
    expect(await statuses(envoy, 1, { routeMetadata: { "adaptive-ratelimit": { priority: "sheddable" } } })).toEqual([429]);
    expect(await statuses(envoy, 2, { routeMetadata: { "adaptive-ratelimit": { priority: "critical" } } })).toEqual([200, 200]);
    expect(envoy.metric("adaptive_ratelimit.api.admitted.critical")).toBe(5);
    expect(envoy.metric("adaptive_ratelimit.api.rejected.sheddable")).toBe(1);
  });

  test("route metadata under another namespace", async () => {
    const { envoy } = limiter(config({ priority_from: [{ route_metadata: "class", namespace: "acme.traffic" }] }));
    expect(await statuses(envoy, 4, { routeMetadata: { "acme.traffic": { class: "critical" } } })).toEqual([200, 200, 200, 200]);
    expect(await statuses(envoy, 1, {})).toEqual([429]);
  });

  test("filter state an earlier filter set names the class", async () => {
    const { envoy } = limiter(config({ priority_from: [{ filter_state: "acme.priority" }] }));
    expect(await statuses(envoy, 4, { filterState: { "acme.priority": "critical" } })).toEqual([200, 200, 200, 200]);
    expect(await statuses(envoy, 1, { filterState: { "acme.priority": "sheddable" } })).toEqual([429]);
  });

  test("the first source that names a known class wins: a route's class is not overridden by the client's header", async () => {
    const { envoy } = limiter(config({ priority_from: [{ route_metadata: "priority" }, { header: "x-priority" }] }));
    expect(await statuses(envoy, 3, { headers: [["x-priority", "critical"]] })).toEqual([200, 200, 200]);
    // The route says sheddable: the client's "critical" does not lift it.
    expect(await statuses(envoy, 1, { headers: [["x-priority", "critical"]], routeMetadata: { "adaptive-ratelimit": { priority: "sheddable" } } })).toEqual([429]);
    // An unknown value on the route falls through to the next source.
    expect(await statuses(envoy, 1, { headers: [["x-priority", "critical"]], routeMetadata: { "adaptive-ratelimit": { priority: "gold" } } })).toEqual([200]);
  });

  test("without priority_from the header is the only source (priority_header)", async () => {
    const { envoy } = limiter(config({ priority_header: "x-class" }));
    expect(await statuses(envoy, 3, { headers: [["x-class", "critical"]], routeMetadata: { "adaptive-ratelimit": { priority: "sheddable" } } })).toEqual([200, 200, 200]);
    expect(await statuses(envoy, 1, { filterState: { "adaptive_ratelimit.priority": "critical" } })).toEqual([429]);
  });
});

describe("the controller", () => {
  const adaptive = (extra: object = {}) => ({
    tick_ms: 100,
    rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 90, setpoint_ms: 100, min_rate: 10, max_rate: 1000, initial_rate: 100, interval_ms: 1000, min_samples: 20, ...extra } }],
  });
  const limitOf = (envoy: Envoy) => envoy.metric("adaptive_ratelimit.api.limit");

  test("latency above the setpoint lowers the limit, each interval by at most max_decrease", async () => {
    const { envoy } = limiter(adaptive({ max_decrease: 0.3 }), 2);
    // 150 requests/s, each answered after 400 ms, sampled once per control interval.
    for (let i = 0; i < 600; i++) {
      envoy.at(envoy.nowMs() + (i * 1000) / 150, () => { envoy.request({ path: "/api/x", worker: i % 2, upstream: async () => { await envoy.sleep(400); return { status: 200 }; } }); });
    }
    const limits = [100];
    for (let i = 0; i < 4; i++) {
      await envoy.advance(1000);
      limits.push(limitOf(envoy) ?? 100);
    }
    expect(limits[4]).toBeLessThan(100);
    for (let i = 1; i < limits.length; i++) expect(limits[i]).toBeGreaterThanOrEqual(Math.floor(0.7 * limits[i - 1]));
  });

  test("a backward step of the wall clock does not stop the control steps: the controller still measures and steps", async () => {
    const { envoy } = limiter(adaptive({ max_decrease: 0.3 }), 2);
    let latencyMs = 400;
    for (let i = 0; i < 900; i++) {
      envoy.at(envoy.nowMs() + (i * 1000) / 150, () => { envoy.request({ path: "/api/x", worker: i % 2, upstream: async () => { await envoy.sleep(latencyMs); return { status: 200 }; } }); });
    }
    await envoy.advance(2000);
    expect(limitOf(envoy)!).toBeLessThan(100);
    const integral = envoy.metric("adaptive_ratelimit.api.i_milli");
    envoy.stepWallClock(-60_000);
    latencyMs = 20;
    await envoy.advance(3000);
    // The service is fast again: within three intervals the controller has measured it and stepped.
    expect(envoy.metric("adaptive_ratelimit.api.measured_milli")!).toBeLessThan(100_000);
    expect(envoy.metric("adaptive_ratelimit.api.i_milli")).not.toBe(integral);
  });

  test("Envoy's own fast 5xx replies are not latency samples: an upstream answering in 400 ms is seen as 400 ms", async () => {
    // p50 with a 100 ms setpoint. 70% of the requests end in the router's 502 (the upstream's
    // response broke the HTTP/1 codec: a local reply, at once); the rest are answered in 400 ms.
    const { envoy } = limiter({
      tick_ms: 100,
      rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 50, setpoint_ms: 100, min_rate: 10, max_rate: 1000, initial_rate: 100, interval_ms: 1000, min_samples: 10 } }],
    }, 2);
    for (let i = 0; i < 600; i++) {
      const broken = i % 10 < 7;
      envoy.at(envoy.nowMs() + (i * 1000) / 150, () => {
        envoy.request({
          path: "/api/x", worker: i % 2,
          upstream: async () => {
            if (broken) return { status: 200, headers: [["transfer-encoding", "chunked"], ["transfer-encoding", "chunked"]] };
            await envoy.sleep(400);
            return { status: 200 };
          },
        });
      });
    }
    await envoy.advance(4000);
    expect(envoy.metric("adaptive_ratelimit.api.measured_milli")!).toBeGreaterThanOrEqual(300_000);
    expect(limitOf(envoy)!).toBeLessThan(100);
  });

  test("low traffic over the setpoint, under one request in flight on average (the latency is the service's, not load): nothing is cut or rejected", async () => {
    const { envoy } = limiter(adaptive(), 4);
    // 4 requests/s answered in 200 ms: 0.8 in flight on average, p90 twice the setpoint.
    const admitted = await offer(envoy, 4, 30, { latencyMs: 200 });
    expect(admitted).toEqual(new Array(30).fill(4));
    expect(limitOf(envoy) ?? 100).toBe(100);
    expect(envoy.logsAt("warn").filter((l) => l.includes("not from load")).length).toBe(1);
  });

  test("a rule with fewer than min_samples completions per interval is still controlled: samples add up over intervals", async () => {
    // One server, 100 ms a request (10/s), offered 15/s: uncontrolled, the backlog grows by 5 a
    // second. 10 completions a second never reach min_samples (20) in one interval.
    const { envoy } = limiter({ tick_ms: 100, rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 90, setpoint_ms: 400 } }] }, 2);
    const plant = new Plant(1, 100, 3);
    const outcomes: Array<{ at: number; latency?: number }> = [];
    const pending: Promise<unknown>[] = [];
    const t0 = envoy.nowMs();
    for (let i = 0; i < 15 * 40; i++) {
      const at = (i * 1000) / 15;
      envoy.at(t0 + at, () => {
        const o: { at: number; latency?: number } = { at };
        outcomes.push(o);
        pending.push(envoy.request({ path: "/api/x", worker: i % 2, upstream: async () => { o.latency = plant.admit(envoy.nowMs()); await envoy.sleep(o.latency); return { status: 200 }; } }));
      });
    }
    await envoy.advance(40_000);
    await envoy.advance(120_000);
    await Promise.all(pending);
    const last = outcomes.filter((o) => o.at >= 30_000 && o.latency !== undefined).map((o) => o.latency!).sort((a, b) => a - b);
    // Held near the setpoint, at nearly the server's throughput (10/s over the last 10 s).
    expect(last[Math.ceil(0.9 * last.length) - 1]).toBeLessThanOrEqual(2 * 400);
    expect(last.length).toBeGreaterThanOrEqual(80);
  });

  test("requests without a response do not poison the latency signal", async () => {
    const { envoy } = limiter(adaptive(), 1);
    for (let s = 0; s < 3; s++) {
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i++) {
        envoy.at(envoy.nowMs() + i * 16, () => { pending.push(envoy.request({ path: "/api/x", upstream: async () => ({ status: 200, reset: i % 2 === 0 }) })); });
      }
      await envoy.advance(1000);
      await Promise.all(pending);
    }
    // Only the answered half counted, all fast: the limit may only have grown.
    expect(limitOf(envoy)!).toBeGreaterThanOrEqual(100);
  });

  test("if the lease holder stops ticking, another worker takes over the control step", async () => {
    const { envoy, plugin } = limiter(adaptive(), 2);
    await offer(envoy, 60, 2);
    const holderWorker = Number(envoy.sharedData.lastWriter("arl", "arl:lease"));
    const holderId = String(envoy.sharedData.get("arl", "arl:lease")!.value).split(" ")[0];
    plugin.workerVms[holderWorker]!.failed = true; // as after a trap: no more ticks
    await offer(envoy, 60, 5);
    expect(Number(envoy.sharedData.lastWriter("arl", "arl:lease"))).toBe(1 - holderWorker);
    expect(String(envoy.sharedData.get("arl", "arl:lease")!.value).split(" ")[0]).not.toBe(holderId);
    expect(Number(envoy.sharedData.lastWriter("arl", "arl:c:api"))).toBe(1 - holderWorker);
  });

  test("after a backward step of the wall clock, a lease holder that stops ticking is replaced within the lease time, not a minute later", async () => {
    const { envoy, plugin } = limiter(adaptive(), 2);
    await offer(envoy, 60, 2);
    const holderWorker = Number(envoy.sharedData.lastWriter("arl", "arl:lease"));
    envoy.stepWallClock(-60_000);
    plugin.workerVms[holderWorker]!.failed = true; // as after a trap: no more ticks
    await offer(envoy, 60, 5);
    expect(Number(envoy.sharedData.lastWriter("arl", "arl:lease"))).toBe(1 - holderWorker);
    expect(Number(envoy.sharedData.lastWriter("arl", "arl:c:api"))).toBe(1 - holderWorker);
  });

  test("a new lease holder counts the other workers' samples from its takeover on, not their whole history", async () => {
    const { envoy, plugin } = limiter(adaptive(), 2);
    // 50/s against a limit of 100: app-limited, so the limit must stay where it is.
    await offer(envoy, 50, 5, { latencyMs: 5 });
    expect(limitOf(envoy)).toBe(100);
    const holderWorker = Number(envoy.sharedData.lastWriter("arl", "arl:lease"));
    plugin.workerVms[holderWorker]!.failed = true;
    const limits: number[] = [];
    for (let i = 0; i < 6; i++) {
      await offer(envoy, 50, 1, { latencyMs: 5 });
      limits.push(limitOf(envoy)!);
    }
    // Had the new holder taken every cumulative count as one interval's, demand would have
    // looked like thousands per second and the limit would have been raised.
    expect(Number(envoy.sharedData.lastWriter("arl", "arl:c:api"))).toBe(1 - holderWorker);
    expect(limits).toEqual([100, 100, 100, 100, 100, 100]);
  });

  test("reloads leave no dead sample slots: the shared data of ten reloads is no bigger than of one", async () => {
    const envoy = new Envoy({ workers: 2, logLevel: "info" });
    const sampleBytes = () => envoy.sharedData.keys("arl").filter((k) => k.startsWith("arl:s:"))
      .reduce((n, k) => n + envoy.sharedData.get("arl", k)!.value.length, 0);
    let plugin = envoy.addPlugin({ name: "a", rootId: "adaptive-ratelimit", vmId: "arl", wasm, configuration: JSON.stringify(adaptive()) });
    await offer(envoy, 60, 2, { latencyMs: 10 });
    await offer(envoy, 60, 15, { latencyMs: 10 });
    const one = sampleBytes();
    expect(one).toBeGreaterThan(0);
    for (let i = 0; i < 10; i++) {
      envoy.removePlugin(plugin);
      plugin = envoy.addPlugin({ name: "a", rootId: "adaptive-ratelimit", vmId: "arl", wasm, configuration: JSON.stringify(adaptive()) });
      await offer(envoy, 60, 2, { latencyMs: 10 });
    }
    // Long enough for the workers of the old configurations to leave the registry.
    await offer(envoy, 60, 15, { latencyMs: 10 });
    expect(sampleBytes()).toBeLessThanOrEqual(one);
  });

  test("a reload with new gains keeps the current limit (bumpless)", async () => {
    const envoy = new Envoy({ workers: 1 });
    const first = envoy.addPlugin({ name: "a", rootId: "adaptive-ratelimit", vmId: "arl", wasm, configuration: JSON.stringify(adaptive({ max_step: 0.5 })) });
    await offer(envoy, 150, 3, { latencyMs: 400 });
    const before = limitOf(envoy)!;
    expect(before).toBeLessThan(100);
    envoy.removePlugin(first);
    envoy.addPlugin({ name: "a", rootId: "adaptive-ratelimit", vmId: "arl", wasm, configuration: JSON.stringify(adaptive({ max_step: 0.5, kp: 0.9 })) });
    await offer(envoy, 10, 2, { latencyMs: 1 });
    expect(limitOf(envoy)).toBe(before);
  });

  test("a latency violation right after a step that met the setpoint is acted on before the interval ends", async () => {
    const { envoy } = limiter(adaptive({ inflight_guard: 0 }), 2);
    let latency = 20;
    const t0 = envoy.nowMs();
    for (let i = 0; i < 500; i++) {
      envoy.at(t0 + (i * 1000) / 100, () => { envoy.request({ path: "/api/x", worker: i % 2, upstream: async () => { await envoy.sleep(latency); return { status: 200 }; } }); });
    }
    await envoy.advance(2050); // two healthy steps (at about 1.0 s and 2.0 s)
    const healthy = limitOf(envoy)!;
    latency = 400; // four times the setpoint from here on
    await envoy.advance(850); // before the next regular step (about 3.0 s)
    expect(limitOf(envoy)!).toBeLessThan(healthy);
  });

  test("a clock jump does not blow up the integral", async () => {
    const { envoy } = limiter(adaptive({ max_step: 0.2 }), 1);
    await offer(envoy, 60, 2, { latencyMs: 10 });
    const before = limitOf(envoy)!;
    await envoy.advance(3_600_000);
    await offer(envoy, 60, 2, { latencyMs: 10 });
    expect(limitOf(envoy)!).toBeLessThanOrEqual(Math.ceil(before * 1.2 ** 3));
  });
});

describe("the in-flight guard", () => {
  // A fixed rate of 100/s, setpoint 200 ms, guard 0.5: at most 100 x 0.2 x 0.5 = 10 in flight.
  const guarded = (guard?: number) => ({ tick_ms: 100, rules: [fixedRule(100, { controller: { signal: "latency", setpoint_ms: 200, min_rate: 100, max_rate: 100, initial_rate: 100, ...(guard === undefined ? {} : { inflight_guard: guard }) } })] });

  /** Schedules `n` requests, `gapMs` apart, on `worker` (or round robin); each answered after `holdMs`. */
  function launch(envoy: Envoy, n: number, gapMs: number, holdMs: number, worker?: number, cls = "normal") {
    const results: Array<Promise<StreamResult>> = [];
    for (let i = 0; i < n; i++) {
      envoy.at(envoy.nowMs() + i * gapMs, () => {
        results.push(envoy.request({ path: "/api/x", worker: worker ?? i % envoy.workers, headers: [["x-priority", cls]], upstream: async () => { await envoy.sleep(holdMs); return { status: 200 }; } }));
      });
    }
    return results;
  }

  /** launch(), then runs the clock until every one is answered. */
  async function burst(envoy: Envoy, n: number, gapMs: number, holdMs: number, worker?: number, cls = "normal") {
    const results = launch(envoy, n, gapMs, holdMs, worker, cls);
    await envoy.advance(n * gapMs + holdMs + 1);
    return Promise.all(results);
  }

  test("holds requests in flight to rate x setpoint x inflight_guard while the upstream stalls", async () => {
    const { envoy } = limiter(guarded(), 1);
    await envoy.advance(200); // the lease holder has published the guard
    // 25/s is a quarter of the rate, so the token bucket never refuses; the upstream holds each
    // for 4 s. The normal class keeps its reserve (0.2) of the guard for critical traffic.
    const normal = launch(envoy, 25, 40, 4000);
    await envoy.advance(1100);
    const critical = await burst(envoy, 5, 40, 4000, undefined, "critical");
    const results = await Promise.all(normal);
    expect(results.filter((r) => r.status === 200).length).toBe(8);
    expect(critical.filter((r) => r.status === 200).length).toBe(2);
    const rejected = results.find((r) => r.status === 429)!;
    expect(rejected.body).toBe("adaptive-ratelimit: rule api is shedding normal traffic (too many requests in flight); retry after 1 s\n");
    expect(rejected.header("retry-after")).toBe("1");
    expect(rejected.header("ratelimit-limit")).toBe("100");
    // Once they are answered, the room is back.
    const again = await burst(envoy, 5, 20, 10);
    expect(again.every((r) => r.status === 200)).toBe(true);
  });

  test("inflight_guard 0 turns it off: the same stall admits everything the rate allows", async () => {
    const { envoy } = limiter(guarded(0), 1);
    await envoy.advance(200);
    const results = await burst(envoy, 25, 40, 4000);
    expect(results.filter((r) => r.status === 200).length).toBe(25);
  });

  test("streams reset before a response give their place back (no leak)", async () => {
    const { envoy } = limiter(guarded(), 2);
    await envoy.advance(200);
    const resets: Array<Promise<unknown>> = [];
    for (let i = 0; i < 200; i++) {
      envoy.at(envoy.nowMs() + i * 15, () => {
        resets.push(envoy.request({ path: "/api/x", worker: i % 2, upstream: async () => { await envoy.sleep(40); return { status: 200, reset: true }; } }));
      });
    }
    await envoy.advance(200 * 15 + 500);
    await Promise.all(resets);
    expect(envoy.metric("adaptive_ratelimit.api.inflight")).toBe(0);
    // Ten stalled critical requests still fit.
    const results = await burst(envoy, 10, 20, 2000, undefined, "critical");
    expect(results.filter((r) => r.status === 200).length).toBe(10);
  });

  test("4 workers, all traffic on one (one long-lived connection): that worker gets nearly all of the limit", async () => {
    const { envoy } = limiter(guarded(), 4);
    // 1.2 s of 60 ms requests on worker 0: the split follows arrivals, and the guard learns the
    // healthy mean (about 60 ms, read at bucket bounds), so its allowance is 1.5 x that: about
    // 10 in flight at 100/s, as before it with 0.5 x 200 ms.
    await burst(envoy, 60, 20, 60, 0);
    const results = await burst(envoy, 50, 20, 3000, 0, "critical");
    const admitted = results.filter((r) => r.status === 200).length;
    // An even split would give worker 0 a part of 2.5 (3 with borrowing at most 4); its arrival
    // share gives it about all 10, and the others have nothing in flight to leave room for.
    expect(admitted).toBeGreaterThanOrEqual(9);
    expect(admitted).toBeLessThanOrEqual(10);
  });

  test("4 workers, even traffic: the total in flight reaches the limit and stays within 1.5 times it plus one per worker", async () => {
    const { envoy } = limiter(guarded(), 4);
    await burst(envoy, 60, 20, 60, undefined, "critical"); // as above: a healthy mean of about 60 ms
    const results = await burst(envoy, 80, 10, 3000, undefined, "critical");
    const admitted = results.filter((r) => r.status === 200).length;
    // Each worker holds its part exactly and borrows past it only while under 1.5 times its
    // part and while the others' count (published every tick, so possibly stale) leaves room:
    // at least the limit, at most 1.5 x 10 plus one per worker for the rounding.
    expect(admitted).toBeGreaterThanOrEqual(10);
    expect(admitted).toBeLessThanOrEqual(19);
  });

  test("8 workers, a limit of 2 in flight (a service that does two things at once): held exactly across workers, and the room comes back when they are answered", async () => {
    const { envoy } = limiter(guarded(), 8);
    // 10 ms requests at half the rate: a healthy mean of about 10 ms, so at 100/s the limit is
    // 100 x 1.5 x 10 ms, at least 2; split into parts it would be one request a worker.
    await burst(envoy, 60, 20, 10);
    expect(envoy.metric("adaptive_ratelimit.api.inflight_limit")).toBe(2);
    const stalled = await burst(envoy, 40, 10, 3000, undefined, "critical");
    expect(stalled.filter((r) => r.status === 200).length).toBe(2);
    // Each answer gives its place back on every worker, not only on the one that sent it.
    const after = await burst(envoy, 16, 40, 5, undefined, "critical");
    expect(after.every((r) => r.status === 200)).toBe(true);
    expect(envoy.metric("adaptive_ratelimit.api.inflight")).toBe(0);
  });

  test("a healthy service whose mean latency is past inflight_guard x setpoint (a p50 setpoint, a long tail) is not shed: the guard follows the measured mean", async () => {
    // p50 setpoint 100 ms; 60% of requests take 40 ms, 40% take 300 ms: p50 40 ms meets it, the
    // mean is 144 ms. At 200/s that is about 29 in flight; max_rate 250 with the default guard
    // (0.5 x 100 ms) would allow 13.
    const config = { tick_ms: 100, rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 50, setpoint_ms: 100, max_rate: 250 } }] };
    const { envoy } = limiter(config, 2);
    const perSecond = new Array<number>(10).fill(0);
    const pending: Promise<unknown>[] = [];
    const t0 = envoy.nowMs();
    for (let i = 0; i < 2000; i++) {
      const at = i * 5;
      envoy.at(t0 + at, () => {
        pending.push(envoy.request({ path: "/api/x", worker: i % 2, upstream: async () => { await envoy.sleep(i % 5 < 3 ? 40 : 300); return { status: 200 }; } })
          .then((r) => { if (r.status === 200) perSecond[Math.floor(at / 1000)]++; }));
      });
    }
    await envoy.advance(10_500);
    await Promise.all(pending);
    // The first interval runs on the configured guard; from the first measurement on, nothing is shed.
    expect(perSecond.slice(2)).toEqual(new Array(8).fill(200));
  });

  test("a guard tighter than the service's normal latency is reported once, naming the field", async () => {
    const config = { tick_ms: 100, rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 90, setpoint_ms: 200, initial_rate: 200, max_rate: 1000 } }] };
    const { envoy } = limiter(config, 2);
    await offer(envoy, 60, 4, { latencyMs: 150 }); // p90 150 ms meets 200 ms; the mean is past 0.5 x 200
    const warnings = envoy.logsAt("warn").filter((l) => l.includes("inflight_guard"));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain("rule api: mean latency");
    expect(warnings[0]).toContain("raise inflight_guard to about 1");
  });
});

describe("configuration", () => {
  const base = { name: "api", controller: { signal: "latency", setpoint_ms: 200 } };
  test.each<[string, object, string]>([
    ["negative gain", { rules: [{ ...base, controller: { ...base.controller, kp: -1 } }] }, "rules[0].controller.kp: must be >= 0, got -1"],
    ["min > max", { rules: [{ ...base, controller: { ...base.controller, min_rate: 100, max_rate: 10 } }] }, "rules[0].controller.min_rate: must be <= max_rate (10.0), got 100.0"],
    ["zero interval", { rules: [{ ...base, controller: { ...base.controller, interval_ms: 0 } }] }, "rules[0].controller.interval_ms: must be >= 100, got 0"],
    ["unknown signal", { rules: [{ ...base, controller: { signal: "cpu", setpoint_ms: 200 } }] }, `rules[0].controller.signal: must be one of latency, error_ratio, got "cpu"`],
    ["1,000 rules", { rules: Array.from({ length: 1000 }, (_, i) => ({ ...base, name: `r${i}` })) }, "rules: more than 64 items (1000)"],
    ["no rules", { rules: [] }, "rules: must not be empty"],
    ["no controller", { rules: [{ name: "api" }] }, "rules[0].controller: is required"],
    ["setpoint of the wrong signal", { rules: [{ ...base, controller: { signal: "error_ratio", setpoint_ms: 5 } }] }, "rules[0].controller.setpoint_ratio: is required"],
    ["in-flight guard on an error-ratio rule", { rules: [{ ...base, controller: { signal: "error_ratio", setpoint_ratio: 0.01, inflight_guard: 0.5 } }] }, "rules[0].controller.inflight_guard: only for signal latency (the guard holds requests in flight to rate x setpoint_ms x inflight_guard)"],
    ["priority_from with two kinds in one source", { priority_from: [{ header: "x-p", filter_state: "k" }], rules: [base] }, "priority_from[0]: must name exactly one of header, route_metadata, filter_state"],
    ["priority_from empty", { priority_from: [], rules: [base] }, "priority_from: must not be empty"],
    ["priority_from and priority_header", { priority_from: [{ header: "x-p" }], priority_header: "x-q", rules: [base] }, "priority_header: not with priority_from (list the header there)"],
    ["namespace on a header source", { priority_from: [{ header: "x-p", namespace: "n" }], rules: [base] }, "priority_from[0].namespace: only for route_metadata"],
    ["in-flight guard over 1", { rules: [{ ...base, controller: { ...base.controller, inflight_guard: 2 } }] }, "rules[0].controller.inflight_guard: must be <= 1, got 2"],
  ])("%s is rejected naming the field", (_name, config, message) => {
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({ name: "a", rootId: "adaptive-ratelimit", wasm, configuration: JSON.stringify(config) })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical")[0]).toBe(`wasm log adaptive-ratelimit: adaptive-ratelimit: ${message}`);
  });
});
