// Memory soak: each filter under a long realistic mix, linear memory sampled at a fixed
// interval. Linear memory never shrinks in Envoy (and is multiplied by workers and pods), so the
// verdict is simple: after the warm-up, the page count must not move. Shared by the short run in
// `npm test` (fuzz/soak.test.ts) and `npm run soak` (fuzz/soak.ts, 1M requests per scenario).
//
// Everything here is deterministic (virtual clock, no randomness): a failure reproduces exactly.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Envoy } from "../runtime/host/src/index.js";
import type { RequestSpec, StreamResult } from "../runtime/host/src/index.js";

const root = new URL("..", import.meta.url).pathname;
export const WORKERS = 2;

/** Envoy's default limits on request headers (HCM max_request_headers_kb, common_http_protocol_options.max_headers_count). */
export const ENVOY_MAX_HEADERS_BYTES = 60 * 1024;
export const ENVOY_MAX_HEADERS_COUNT = 100;

type Header = [string, string];
export interface Scenario {
  name: string;
  filter: string;
  /** Module path from the repository root (default dist/<filter>.wasm) and root id (default the filter's name). */
  wasm?: string;
  rootId?: string;
  configuration: unknown;
  /** Request number i (0-based); varies whatever the filter might key state on. */
  request(i: number): RequestSpec;
  /** The upstream's response to request i, after `latencyMs` of virtual time (streams overlap meanwhile). */
  response(i: number): { status: number; headers?: Header[]; body?: string; latencyMs?: number };
  /** Virtual milliseconds between requests (timers, tickers, expiries all run). */
  stepMs: number;
  /** Statuses the run must produce: proof the scenario reaches the paths it claims to. */
  exercises?: number[];
}

const hex32 = (i: number) => i.toString(16).padStart(32, "0");
const trace = (i: number) => `00-${hex32(i + 1)}-00f067aa0ba902b7-01`;

/** The largest request head Envoy admits by default: 100 header lines, ~59 KiB, with duplicates the normalizer must merge. */
function largestHeaders(i: number): Header[] {
  const headers: Header[] = [
    ["content-type", "application/json"], ["content-type", "application/json;charset=UTF-8"], // the Spring 415 pair
    ["accept", "application/json, text/plain"], ["x-tenant", `t${i % 97}`], ["x-tenant", `t${i % 97}`],
    ["user-agent", "Mozilla/5.0 (X11; Linux x86_64)"], ["traceparent", trace(i)], ["x-authtoken", `tok-${i}`],
  ];
  const pad = "v".repeat(560);
  for (let n = 0; headers.length < ENVOY_MAX_HEADERS_COUNT - 4; n++) headers.push([`x-custom-${n % 40}`, `${i}-${n}-${pad}`]);
  // Fill to just under the byte limit with one long cookie (names and values each counted, as Envoy does).
  const used = headers.reduce((sum, [k, v]) => sum + k.length + v.length, 0) + "POST/api/orders/xshop.example.com".length + 40;
  headers.push(["cookie", `session=${i};pad=${"c".repeat(Math.max(0, ENVOY_MAX_HEADERS_BYTES - used - 1024 - 20))}`]);
  return headers;
}

function headerBytes(headers: Header[]): number {
  return headers.reduce((sum, [k, v]) => sum + k.length + v.length, 0);
}

/**
 * 64 rules (the schema's maximum), half on latency and half on error ratio, spread over methods
 * and prefixes. Each rule sees ~16 requests/s, so min_samples is lowered for the controllers to
 * step every interval; the error waves push the error-ratio rules into shedding (429s).
 */
function sixtyFourRules(): unknown {
  const rules = Array.from({ length: 64 }, (_, n) => ({
    name: `rule-${n}`,
    match: n % 3 === 0 ? { path_prefix: `/svc${n}/`, method: "POST" } : { path_prefix: `/svc${n}/` },
    controller: n % 2 === 0
      ? { signal: "latency", percentile: 99, setpoint_ms: 50, interval_ms: 500, min_samples: 5, min_rate: 5, max_rate: 5000, initial_rate: 200 }
      : { signal: "error_ratio", setpoint_ratio: 0.05, interval_ms: 1000, min_samples: 5, min_rate: 5, max_rate: 5000, initial_rate: 200 },
  }));
  return { rules, classes: [{ name: "critical" }, { name: "batch", reserve: 0.3 }], default_class: "batch" };
}

export const SCENARIOS: Scenario[] = [
  {
    name: "header-normalizer, largest headers Envoy admits (100 lines, ~59 KiB), the most rules and aliases the filter accepts",
    filter: "header-normalizer",
    configuration: {
      headers: [
        { name: "x-tenant", on_conflict: "reject", direction: "request" },
        ...Array.from({ length: 35 }, (_, n) => ({ name: `x-custom-${n}`, class: "singleton", on_conflict: n % 2 ? "first" : "last" })),
        ...Array.from({ length: 10 }, (_, n) => ({ name: `x-extra-${n}`, split: true })),
      ],
      aliases: [
        { from: "x-authtoken", to: "x-auth-token", mode: "rename", direction: "request" },
        ...Array.from({ length: 31 }, (_, n) => ({ from: `x-custom-${n}`, to: `x-alias-${n}`, mode: "copy" })),
      ],
      diagnostic_header: "x-header-normalizer",
    },
    request: (i) => ({ method: "POST", path: `/api/orders/${i}`, authority: "shop.example.com", headers: largestHeaders(i), body: "{}" }),
    response: (i) => ({
      status: i % 50 === 0 ? 503 : 200,
      headers: [["content-type", "application/json"], ["content-type", "application/json"], ["set-cookie", `a=${i}`], ["set-cookie", "b=2"], ["cache-control", "no-store"]],
      body: `{"order":${i}}`,
    }),
    stepMs: 1,
    exercises: [200, 503],
  },
  {
    name: "env-router inbound, every trace id distinct",
    filter: "env-router",
    configuration: { mode: "inbound" },
    request: (i) => ({
      method: "GET", path: "/", authority: "reviews:9080",
      headers: [["user-agent", "Go-http-client/1.1"], ["x-env", `feature-${i % 500}`], ["traceparent", trace(i)], ["baggage", `env=feature-${i % 500},user=${i}`]],
    }),
    response: () => ({ status: 200, headers: [["content-type", "application/json"]], body: "{}" }),
    stepMs: 1,
    exercises: [200],
  },
  {
    name: "env-router outbound, every trace id distinct, 500 envs",
    filter: "env-router",
    configuration: {
      services: Object.fromEntries(Array.from({ length: 200 }, (_, n) => [`svc${n}`, ["default", ...Array.from({ length: 15 }, (_, e) => `feature-${(n + e) % 500}`)]])),
      tag: { sources: ["header", "baggage", "cookie"], write_baggage: true },
      explain: true,
    },
    request: (i) => ({
      method: "GET", path: `/items/${i}`, authority: `svc${i % 200}.default.svc.cluster.local:9080`,
      headers: [["x-env", `feature-${i % 500}`], ["traceparent", trace(i)], ["cookie", `env=feature-${i % 500}; s=${i}`]],
    }),
    response: () => ({ status: 200, body: "{}" }),
    stepMs: 1,
    exercises: [200],
  },
  {
    name: "adaptive-ratelimit, 64 rules, every rule hit, latency and error waves, overlapping streams",
    filter: "adaptive-ratelimit",
    configuration: sixtyFourRules(),
    request: (i) => ({
      method: i % 3 === 0 ? "POST" : "GET", path: `/svc${i % 64}/items/${i}`, authority: "shop.example.com",
      headers: [["x-priority", i % 4 === 0 ? "critical" : "batch"], ["content-type", "application/json"]],
    }),
    // Errors and latency come in waves (~4 s and ~8 s of virtual time), so controllers shed and recover.
    response: (i) => ({ status: (i >> 12) % 3 === 0 && i % 7 === 0 ? 503 : 200, body: "{}", latencyMs: (i >> 13) % 2 === 0 ? 5 + (i % 20) : 40 + (i % 60) }),
    stepMs: 1,
    exercises: [200, 429, 503],
  },
  {
    name: "podip-router, pins to distinct pods (IPv4, IPv6, host labels, 4,096 pod names), denials and unauthenticated requests",
    filter: "podip-router",
    configuration: {
      allowed_cidrs: ["10.8.0.0/16", "fd00:10::/64"], allowed_ports: [8080, "9000-9100"],
      authorization: { header: "x-ops-authenticated" }, host_suffix: "pods.example.com", default_port: 8080,
      pod_names: Object.fromEntries(Array.from({ length: 4096 }, (_, n) => [`web-${n}`, `10.8.${n >> 8}.${n & 255}`])),
    },
    request: (i) => {
      const ip = `10.8.${(i >> 8) & 255}.${i & 255}`;
      const auth: Header[] = i % 7 === 6 ? [] : [["x-ops-authenticated", "alice"]];
      switch (i % 5) {
        case 0: return { method: "GET", path: `/_pod/${ip}:8080/actuator/health?i=${i}`, authority: "gw.example.com", headers: auth };
        case 1: return { method: "GET", path: "/metrics", authority: `${ip.replace(/\./g, "-")}.pods.example.com`, headers: auth };
        case 2: return { method: "GET", path: `/_pod/web-${i % 4096}/status`, authority: "gw.example.com", headers: auth };
        case 3: return { method: "GET", path: `/_pod/[fd00:10::${((i & 0xfff) + 1).toString(16)}]:9000/x`, authority: "gw.example.com", headers: auth };
        default: return { method: "GET", path: `/_pod/169.254.169.254/latest/meta-data/${i}`, authority: "gw.example.com", headers: auth };
      }
    },
    response: () => ({ status: 200, body: "ok" }),
    stepMs: 1,
    exercises: [200, 403],
  },
];

export interface SoakResult {
  scenario: string;
  requests: number;
  /** Pages (maximum over workers) after each `sampleEvery` requests. */
  samples: number[];
  warmupSamples: number;
  /** Page growth after the warm-up (0 when memory is flat). */
  growthAfterWarmup: number;
  statuses: Record<number, number>;
  trapped: boolean;
  seconds: number;
}

/** Runs one scenario for `requests` requests, sampling pages every `sampleEvery`; the first `warmupShare` of samples is warm-up. */
export async function soak(s: Scenario, requests: number, sampleEvery = 10_000, warmupShare = 0.2): Promise<SoakResult> {
  const started = Date.now();
  const envoy = new Envoy({ workers: WORKERS, logLevel: "critical" });
  const wasm = readFileSync(join(root, s.wasm ?? join("dist", `${s.filter}.wasm`)));
  let plugin;
  try {
    plugin = envoy.addPlugin({ name: s.filter, rootId: s.rootId ?? s.filter, vmId: s.filter, wasm, configuration: JSON.stringify(s.configuration) });
  } catch (err) {
    throw new Error(`${s.name}: ${(err as Error).message}: ${envoy.logsAt("critical").join(" | ")}`);
  }
  const samples: number[] = [];
  const statuses: Record<number, number> = {};
  let trapped = false;
  // Request i starts at i x stepMs; the clock then moves on, so slow responses overlap later
  // requests (streams interleave on each worker, as in a proxy under load).
  const inflight = new Set<Promise<void>>();
  const record = (res: StreamResult) => { statuses[res.status] = (statuses[res.status] ?? 0) + 1; };
  for (let i = 0; i < requests; i++) {
    const spec = s.request(i);
    if (i === 0 && s.filter === "header-normalizer") {
      const bytes = headerBytes(spec.headers as Header[]) + (spec.path ?? "").length + (spec.authority ?? "").length;
      if (bytes > ENVOY_MAX_HEADERS_BYTES || (spec.headers as Header[]).length > ENVOY_MAX_HEADERS_COUNT) throw new Error(`scenario exceeds Envoy's header limits (${bytes} bytes)`);
    }
    const upstream = async () => {
      const { latencyMs, ...response } = s.response(i);
      if (latencyMs) await envoy.sleep(latencyMs);
      return response;
    };
    const p: Promise<void> = envoy.request({ ...spec, worker: i % WORKERS, upstream }).then(record).finally(() => inflight.delete(p));
    inflight.add(p);
    await envoy.advance(s.stepMs);
    if (plugin.workerVms.some((vm) => !vm || vm.failed)) { trapped = true; break; }
    if ((i + 1) % sampleEvery === 0) samples.push(Math.max(...envoy.memoryPages(plugin)));
  }
  if (!trapped) {
    await envoy.advance(60_000);
    await Promise.race([Promise.all(inflight), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  }
  const warmupSamples = Math.max(1, Math.floor(samples.length * warmupShare));
  const growthAfterWarmup = samples.length > warmupSamples ? samples[samples.length - 1] - samples[warmupSamples - 1] : 0;
  return { scenario: s.name, requests, samples, warmupSamples, growthAfterWarmup, statuses, trapped, seconds: (Date.now() - started) / 1000 };
}
