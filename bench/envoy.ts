// `npm run bench:envoy`: what each filter costs where it runs, in real Envoy. For every case of
// filters/*/bench.json it starts the filter's shipped standalone bootstrap (manifests/src) in
// front of a fixed local upstream, in variants that differ only in the filter slot:
//   none    the slot empty (Envoy, the router and the frame's other filters alone)
//   noop    the no-op AssemblyScript module (bench/noop): the floor of any wasm filter
//   filter  the suite's filter with the case's configuration
//   lua     a Lua filter doing the same job (bench/lua/<filter>.lua), where one is written
//   native  Envoy's native filter for the same work, where one exists
//   go      a Go proxy-wasm module (bench/peers/header-normalizer-go), header-normalizer only
// and measures, per variant: throughput at saturation (wrk, closed loop), latency p50/p99 at a
// fixed rate below saturation (vegeta, open loop), and Envoy's CPU time per request (from
// /proc). Variants are interleaved over rounds and the median of the rounds is reported.
// Then memory: Envoy's resident set and its allocator's figures after 100k requests at 1, 2 and
// 4 workers, per filter. A measurement, not a test: it never fails on numbers.
//
// Placement on a 2-core machine: the Envoy under test runs alone on CPU 0 with one worker; the
// upstream (another Envoy, direct_response) and the load generator share CPU 1.
import { ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { resolveEnvoy } from "../scripts/envoy.mjs";
import { buildGoPeer, resolveVegeta, resolveWrk } from "../scripts/bench-tools.mjs";
import { EnvoyProcess, httpGet, startEnvoy } from "../runtime/gateway/envoy.js";
import { hcmListener, ROUTER_FILTER, wasmHttpFilter } from "../manifests/src/wasm.js";
import * as adaptive from "../manifests/src/adaptive-ratelimit.js";
import * as envRouter from "../manifests/src/env-router.js";
import * as normalizer from "../manifests/src/header-normalizer.js";
import * as podip from "../manifests/src/podip-router.js";

const root = new URL("..", import.meta.url).pathname;
const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith("--")) args.set(a.slice(2), process.argv[i + 1]?.startsWith("--") === false ? process.argv[++i] : "true");
}
const SMOKE = args.has("smoke");
const ROUNDS = Number(args.get("rounds") ?? (SMOKE ? 1 : 3));
const SECONDS = Number(args.get("duration") ?? (SMOKE ? 1 : 4));
const RATE = Number(args.get("rate") ?? 1000);
const CONNECTIONS = Number(args.get("connections") ?? 16);
const WORKERS = Number(args.get("workers") ?? 1);
const MEMORY_REQUESTS = Number(args.get("memory-requests") ?? (SMOKE ? 2000 : 100_000));
const MEMORY_WORKERS = (args.get("memory-workers") ?? (SMOKE ? "1" : "1,2,4")).split(",").map(Number);
const ONLY = args.get("only") ?? (SMOKE ? "header-normalizer" : undefined);
const SKIP_MEMORY = args.has("no-memory");
const TWO_CPUS = cpus().length >= 2;
const UNDER_TEST_CPU = TWO_CPUS ? "0" : undefined;
const HELPER_CPU = TWO_CPUS ? "1" : undefined;

interface MixRequest { method: string; path: string; authority: string; headers: Array<[string, string]>; body?: string }
type Kind = "none" | "noop" | "filter" | "lua" | "native" | "go";
interface Variant { kind: Kind; label: string; slot: Record<string, unknown>[] }
/** A bench.json case against the upstream on `up`: `frame()` is a fresh copy of the filter's bootstrap. */
interface Case { filter: string; name: string; clean: boolean; frame: () => Record<string, any>; mix: MixRequest[]; variants: Variant[] }

interface Sample { rps: number; cpuUsPerRequest: number; fixedCpuUsPerRequest: number; p50Us: number; p99Us: number; non2xx: number; statuses: string }
interface Row { filter: string; caseName: string; clean: boolean; kind: Kind; label: string; samples: Sample[]; median: Sample }

// ---------------------------------------------------------------------------------------------
// The variants' filters.

const luaFilter = (file: string, replace: Array<[string, string]> = []): Record<string, unknown> => {
  let code = readFileSync(join(root, "bench", "lua", file), "utf8");
  for (const [from, to] of replace) code = code.replace(from, to);
  return {
    name: "envoy.filters.http.lua",
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua", default_source_code: { inline_string: code } },
  };
};

const noopFilter = (): Record<string, unknown> =>
  wasmHttpFilter({ filter: "noop", filename: "dist/fixtures/noop.wasm", failOpen: false, configuration: {} });

const goFilter = (file: string): Record<string, unknown> =>
  wasmHttpFilter({ filter: "header-normalizer-go", filename: file, failOpen: false, configuration: {} });

/** Envoy's local_ratelimit with a bucket no benchmark empties: the native admitted path. */
const localRateLimit = (): Record<string, unknown> => {
  const all = { default_value: { numerator: 100, denominator: "HUNDRED" }, runtime_key: "bench_rl" };
  return {
    name: "envoy.filters.http.local_ratelimit",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
      stat_prefix: "bench_local_ratelimit",
      token_bucket: { max_tokens: 1_000_000_000, tokens_per_fill: 1_000_000_000, fill_interval: "1s" },
      filter_enabled: all, filter_enforced: all,
    },
  };
};

/** header_mutation doing podip-router's edge sanitisation (no pinning: no native filter parses a pod from a URL). */
const podipHeaderMutation = (): Record<string, unknown> => ({
  name: "envoy.filters.http.header_mutation",
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
    mutations: {
      request_mutations: ["x-envoy-original-dst-host", podip.SESSION_HEADER, podip.PIN_HEADER, "x-ops-authenticated"].map((remove) => ({ remove })),
      response_mutations: [{ remove: podip.SESSION_HEADER }],
    },
  },
});

// ---------------------------------------------------------------------------------------------
// Cases: each filter's shipped standalone bootstrap, every cluster endpoint on the upstream, the
// filter slot holding the variant, the filter configured as its bench.json case says.

function everyEndpointTo(doc: Record<string, any>, port: number): Record<string, any> {
  for (const c of doc.static_resources.clusters ?? []) {
    for (const group of c.load_assignment?.endpoints ?? []) {
      for (const e of group.lb_endpoints ?? []) e.endpoint.address.socket_address = { address: "127.0.0.1", port_value: port };
    }
  }
  return doc;
}

function httpFilters(doc: Record<string, any>): Record<string, any>[] {
  return doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters;
}

function withSlot(doc: Record<string, any>, filter: string, slot: Record<string, unknown>[]): Record<string, any> {
  const list = httpFilters(doc);
  const at = list.findIndex((f) => f.name === filter);
  if (at < 0) throw new Error(`the ${filter} bootstrap has no HTTP filter named ${filter}`);
  list.splice(at, 1, ...slot);
  return doc;
}

function configured(doc: Record<string, any>, filter: string, configuration: unknown): Record<string, unknown> {
  const found = httpFilters(doc).find((f) => f.name === filter);
  if (!found) throw new Error(`the ${filter} bootstrap has no HTTP filter named ${filter}`);
  const entry = structuredClone(found);
  entry.typed_config.config.configuration.value = JSON.stringify(configuration);
  return entry;
}

let seq = 0;
/** "{{seq}}" in a header value becomes a number unique to each request (32 hex digits), as in `npm run bench`. */
function expand(mix: MixRequest[], copies: number): MixRequest[] {
  const templated = mix.some((r) => r.headers.some(([, v]) => v.includes("{{seq}}")));
  if (!templated) return mix;
  const out: MixRequest[] = [];
  for (let i = 0; i < copies; i++) {
    for (const r of mix) {
      const id = (++seq).toString(16).padStart(32, "0");
      out.push({ ...r, headers: r.headers.map(([k, v]) => [k, v.replace("{{seq}}", id)]) });
    }
  }
  return out;
}

function benchCases(goPeer: string | undefined, up: number): Case[] {
  const frames: Record<string, () => Record<string, any>> = {
    "adaptive-ratelimit": () => adaptive.standaloneBootstrap(0, up),
    "env-router": () => envRouter.standaloneBootstrap(envRouter.EXAMPLE, 0, () => up),
    "header-normalizer": () => normalizer.standaloneBootstrap(0, up),
    "podip-router": () => podip.standaloneBootstrap(podip.EXAMPLE, 0, [up]),
  };
  const list: Case[] = [];
  for (const filter of Object.keys(frames)) {
    if (ONLY && ONLY !== filter) continue;
    const bench = JSON.parse(readFileSync(join(root, "filters", filter, "bench.json"), "utf8"));
    for (const c of bench.cases) {
      const pins = filter === "podip-router" && c.name === "pins";
      const clean = !["fix", "pins", "unmatched"].includes(c.name) && !c.name.startsWith("inbound");
      if (SMOKE && !clean) continue;
      const frame = () => everyEndpointTo(frames[filter](), up);
      // The pins go to the local upstream: the loopback range and its port replace the pod range.
      const configuration = pins
        ? { ...c.configuration, allow_loopback: true, allowed_cidrs: ["127.0.0.0/8"], allowed_ports: [up], default_port: up }
        : c.configuration;
      // The env-router frame serves the example's namespace (bookinfo); the mix names default's.
      const namespaced = (a: string) => filter === "env-router" ? a.replace(".default.svc.cluster.local", `.${envRouter.EXAMPLE.namespace}.svc.cluster.local`) : a;
      const mix = (c.mix as MixRequest[]).map((r) => pins
        ? { ...r, path: r.path.replace("10.8.3.17:8080", `127.0.0.1:${up}`), authority: r.authority.replace("10-8-3-18.pods", "127-0-0-1.pods") }
        : { ...r, authority: namespaced(r.authority) });
      const variants: Variant[] = [
        { kind: "none", label: "no filter", slot: [] },
        { kind: "noop", label: "no-op module", slot: [noopFilter()] },
        { kind: "filter", label: filter, slot: [configured(frame(), filter, configuration)] },
      ];
      if (filter === "header-normalizer") variants.push({ kind: "lua", label: "Lua", slot: [luaFilter("header-normalizer.lua")] });
      if (filter === "podip-router") {
        variants.push({ kind: "lua", label: "Lua", slot: [luaFilter("podip-router.lua", pins ? [["\"10.8.\", 8080", `"127.0.0.", ${up}`]] : [])] });
        if (!pins) variants.push({ kind: "native", label: "header_mutation", slot: [podipHeaderMutation()] });
      }
      if (filter === "env-router" && c.name === "outbound") variants.push({ kind: "lua", label: "Lua", slot: [luaFilter("env-router.lua")] });
      if (filter === "adaptive-ratelimit" && c.name === "admitted") variants.push({ kind: "native", label: "local_ratelimit", slot: [localRateLimit()] });
      if (filter === "header-normalizer" && goPeer) variants.push({ kind: "go", label: "Go module", slot: [goFilter(goPeer)] });
      list.push({ filter, name: c.name, clean, frame, mix: expand(mix, 256), variants });
    }
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// Processes and load.

function upstreamBootstrap(): Record<string, unknown> {
  return {
    static_resources: {
      listeners: [hcmListener("upstream", 0, {
        stat_prefix: "upstream",
        route_config: {
          name: "upstream",
          virtual_hosts: [{
            name: "all", domains: ["*"],
            routes: [{
              match: { prefix: "/" },
              direct_response: { status: 200, body: { inline_string: "{\"ok\":true}" } },
              response_headers_to_add: [{ header: { key: "content-type", value: "application/json" } }, { header: { key: "cache-control", value: "no-store" } }],
            }],
          }],
        },
        http_filters: [ROUTER_FILTER],
      })],
    },
  };
}

function pinned(cpu: string | undefined, bin: string, argv: string[]): [string, string[]] {
  return cpu === undefined ? [bin, argv] : ["taskset", ["-c", cpu, bin, ...argv]];
}

/** Load generators still running: stopped if this process exits first (Envoy's own hooks stop the Envoys). */
const generators = new Set<ChildProcess>();
process.on("exit", () => { for (const g of generators) g.kill("SIGKILL"); });

function runTool(bin: string, argv: string[], env: Record<string, string>, cpu = HELPER_CPU): Promise<string> {
  const [cmd, full] = pinned(cpu, bin, argv);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, full, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    generators.add(child);
    child.on("exit", () => generators.delete(child));
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${bin} ${argv.join(" ")} exited ${code}: ${err || out}`))));
  });
}

/** utime + stime of a process (all its threads), in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // CLK_TCK is 100 on Linux
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

const luaString = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\r/g, "\\r").replace(/\n/g, "\\n")}"`;

function rawRequest(r: MixRequest): string {
  const lines = [`${r.method} ${r.path} HTTP/1.1`, `host: ${r.authority}`];
  for (const [k, v] of r.headers) if (k.toLowerCase() !== "content-length" && k.toLowerCase() !== "host") lines.push(`${k}: ${v}`);
  if (r.body !== undefined) lines.push(`content-length: ${Buffer.byteLength(r.body)}`);
  return `${lines.join("\r\n")}\r\n\r\n${r.body ?? ""}`;
}

/** A wrk script cycling through the mix. */
function wrkScript(dir: string, mix: MixRequest[]): string {
  const file = join(dir, "mix.lua");
  const lines = [
    `local requests = { ${mix.map((r) => luaString(rawRequest(r))).join(",\n  ")} }`,
    "local i = 0",
    "request = function() i = i % #requests + 1; return requests[i] end",
  ];
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

function vegetaTargets(dir: string, mix: MixRequest[], port: number): string {
  const file = join(dir, "targets.json");
  writeFileSync(file, mix.map((r) => {
    const header: Record<string, string[]> = { Host: [r.authority] };
    for (const [k, v] of r.headers) if (k.toLowerCase() !== "content-length") (header[k] ??= []).push(v);
    return JSON.stringify({ method: r.method, url: `http://127.0.0.1:${port}${r.path}`, header, ...(r.body !== undefined ? { body: Buffer.from(r.body).toString("base64") } : {}) });
  }).join("\n") + "\n");
  return file;
}

interface Tools { envoy: string; envoyVersion: string; wrk: { bin: string; env: Record<string, string> }; vegeta: { bin: string; env: Record<string, string> } }

async function wrkRun(tools: Tools, script: string, port: number, seconds: number, connections: number): Promise<{ rps: number; requests: number; non2xx: number }> {
  const out = await runTool(tools.wrk.bin, ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "5s", "-s", script, `http://127.0.0.1:${port}/`], tools.wrk.env);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: (.*)/.exec(out)?.[1];
  if (!(rps > 0)) throw new Error(`wrk gave no rate:\n${out}`);
  if (socket) console.error(`  wrk socket errors: ${socket}`);
  return { rps, requests, non2xx };
}

async function vegetaRun(tools: Tools, dir: string, targets: string, seconds: number): Promise<{ p50Us: number; p99Us: number; statuses: string; requests: number }> {
  const results = join(dir, "results.bin");
  // One OS thread: vegeta shares its CPU with the upstream.
  await runTool(tools.vegeta.bin, ["attack", "-format=json", `-targets=${targets}`, `-rate=${RATE}/s`, `-duration=${seconds}s`, "-keepalive=true", "-timeout=5s", `-output=${results}`], { ...tools.vegeta.env, GOMAXPROCS: "1" });
  const report = JSON.parse(await runTool(tools.vegeta.bin, ["report", "-type=json", results], tools.vegeta.env, undefined));
  const statuses = Object.entries(report.status_codes ?? {}).map(([k, v]) => `${k}:${v}`).join(" ");
  return { p50Us: report.latencies["50th"] / 1000, p99Us: report.latencies["99th"] / 1000, statuses, requests: Number(report.requests) };
}

/** Each mix request once over a fresh connection: the statuses the variant answers with. */
function probe(mix: MixRequest[], port: number): Promise<string> {
  return Promise.all(mix.slice(0, 8).map((r) => new Promise<number>((resolve) => {
    const headers: Record<string, string | string[]> = { host: r.authority };
    for (const [k, v] of r.headers) {
      const key = k.toLowerCase();
      if (key === "content-length") continue;
      headers[key] = headers[key] === undefined ? v : ([] as string[]).concat(headers[key], v);
    }
    const req = request({ host: "127.0.0.1", port, method: r.method, path: r.path, headers, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end(r.body);
  }))).then((codes) => codes.join(","));
}

async function underTest(tools: Tools, bootstrap: Record<string, any>, workers: number): Promise<EnvoyProcess> {
  return startEnvoy({ bin: tools.envoy, bootstrap, cwd: root, concurrency: workers, logLevel: "warning", cpus: UNDER_TEST_CPU });
}

async function measure(tools: Tools, dir: string, bootstrap: Record<string, any>, mix: MixRequest[]): Promise<Sample> {
  const envoy = await underTest(tools, bootstrap, WORKERS);
  try {
    const port = [...envoy.ports.values()][0];
    const statuses = await probe(mix, port);
    const script = wrkScript(dir, mix);
    await wrkRun(tools, script, port, 1, CONNECTIONS); // warm-up: JIT, connection pools, caches
    const before = cpuSeconds(envoy.pid);
    const sat = await wrkRun(tools, script, port, SECONDS, CONNECTIONS);
    const cpu = cpuSeconds(envoy.pid) - before;
    const beforeFixed = cpuSeconds(envoy.pid);
    const lat = await vegetaRun(tools, dir, vegetaTargets(dir, mix, port), SECONDS);
    const fixedCpu = cpuSeconds(envoy.pid) - beforeFixed;
    return { rps: sat.rps, cpuUsPerRequest: (cpu / sat.requests) * 1e6, fixedCpuUsPerRequest: (fixedCpu / lat.requests) * 1e6, p50Us: lat.p50Us, p99Us: lat.p99Us, non2xx: sat.non2xx / sat.requests, statuses: `${statuses} | ${lat.statuses}` };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- Envoy log ---\n${envoy.log().split("\n").slice(-30).join("\n")}`);
  } finally {
    await envoy.stop();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------------------------
// Memory.

interface MemoryRow { label: string; workers: number; rssBytes: number; allocatedBytes: number; heapBytes: number; wasmVms: number; workersServing: number }

/** Requests the listener's connection manager has served (its downstream_rq_total). */
async function servedRequests(envoy: EnvoyProcess): Promise<number> {
  const stats = JSON.parse((await httpGet(`${envoy.adminUrl}/stats?format=json&filter=downstream_rq_total`)).body).stats as Array<{ name: string; value: number }>;
  return stats.filter((st) => /^http\.[^.]+\.downstream_rq_total$/.test(st.name) && st.name !== "http.admin.downstream_rq_total").reduce((a, st) => a + st.value, 0);
}

async function memoryOf(tools: Tools, dir: string, label: string, bootstrap: Record<string, any>, mix: MixRequest[], workers: number): Promise<MemoryRow> {
  const envoy = await underTest(tools, bootstrap, workers);
  try {
    const port = [...envoy.ports.values()][0];
    // Load in 2-second slices until Envoy has served the requests (wrk cannot stop at a count).
    const script = wrkScript(dir, mix);
    while ((await servedRequests(envoy)) < MEMORY_REQUESTS) await wrkRun(tools, script, port, 2, 8 * workers);
    const memory = JSON.parse((await httpGet(`${envoy.adminUrl}/memory`)).body);
    const stats = (await httpGet(`${envoy.adminUrl}/stats?format=json`)).body;
    const all: Array<{ name: string; value: number }> = JSON.parse(stats).stats.filter((s: any) => typeof s.value === "number");
    const vms = all.find((s) => /^wasm\.envoy\.wasm\.runtime\.v8\.active$/.test(s.name))?.value ?? 0;
    const serving = all.filter((s) => /^listener\..*\.worker_\d+\.downstream_cx_total$/.test(s.name) && s.value > 0).length;
    return { label, workers, rssBytes: rssBytes(envoy.pid), allocatedBytes: Number(memory.allocated), heapBytes: Number(memory.heap_size), wasmVms: vms, workersServing: serving };
  } finally {
    await envoy.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

type Field = "p50Us" | "cpuUsPerRequest" | "fixedCpuUsPerRequest";

/** What a variant adds to the no-filter variant, paired by round (both ran back to back), median over rounds. */
function added(r: Row | undefined, none: Row, field: Field): number {
  if (!r) return NaN;
  return median(r.samples.map((s, i) => s[field] - none.samples[i][field]));
}

/** The range of the paired differences over the rounds: how much to trust `added`. */
function spread(r: Row, none: Row, field: Field): string {
  if (r.samples.length < 2) return "";
  const d = r.samples.map((s, i) => s[field] - none.samples[i][field]);
  return ` (${f1(Math.min(...d))}..${f1(Math.max(...d))})`;
}

function table(rows: Row[]): string[] {
  const out: string[] = [];
  const byCase = new Map<string, Row[]>();
  for (const r of rows) byCase.set(`${r.filter} (${r.caseName})`, [...(byCase.get(`${r.filter} (${r.caseName})`) ?? []), r]);
  out.push(`| case | variant | req/s at saturation | x no filter | CPU µs/req | added CPU µs | added CPU / no-op | p50 µs | p99 µs | added p50 µs (range over rounds) | added p50 / no-op |`);
  out.push(`|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
  for (const [name, list] of byCase) {
    const none = list.find((r) => r.kind === "none")!;
    const noop = list.find((r) => r.kind === "noop")!;
    for (const r of list) {
      const m = r.median;
      const base = r.kind === "none";
      const cpu = added(r, none, "cpuUsPerRequest");
      const p50 = added(r, none, "p50Us");
      out.push(`| ${name} | ${r.label}${m.non2xx > 0.001 ? ` (${(m.non2xx * 100).toFixed(1)}% non-2xx)` : ""} | ${m.rps.toFixed(0)} | ${f2(m.rps / none.median.rps)} | ${f1(m.cpuUsPerRequest)} | ${base ? "" : f1(cpu)} | ${base ? "" : f2(cpu / added(noop, none, "cpuUsPerRequest"))} | ${f1(m.p50Us)} | ${f1(m.p99Us)} | ${base ? "" : f1(p50) + spread(r, none, "p50Us")} | ${base ? "" : f2(p50 / added(noop, none, "p50Us"))} |`);
    }
  }
  return out;
}

function verdicts(rows: Row[]): string[] {
  const out: string[] = [];
  const clean = [...new Set(rows.filter((r) => r.clean).map((r) => `${r.filter}\u0000${r.caseName}`))];
  for (const key of clean) {
    const [filter, caseName] = key.split("\u0000");
    const list = rows.filter((r) => r.filter === filter && r.caseName === caseName);
    const get = (k: Kind) => list.find((r) => r.kind === k);
    const none = get("none")!;
    for (const field of ["cpuUsPerRequest", "p50Us"] as const) {
      const what = field === "p50Us" ? "added p50 latency" : "added CPU";
      const filterRow = get("filter")!;
      const mine = added(filterRow, none, field);
      const parts = [`${filter} (${caseName}) ${what} ${f1(mine)} µs`];
      // A latency difference whose range over the rounds spans zero is below what this run resolves.
      const unresolved = (r: Row | undefined) => {
        if (!r || field !== "p50Us" || r.samples.length < 2) return false;
        const d = r.samples.map((x, i) => x[field] - none.samples[i][field]);
        return Math.min(...d) < 0 && Math.max(...d) > 0;
      };
      const verdict = (ok: boolean, ref: Row | undefined) => (unresolved(filterRow) || unresolved(ref) ? "not resolved by this run: a range spans zero" : ok ? "met" : "missed");
      const noopRow = get("noop");
      const noop = added(noopRow, none, field);
      parts.push(`${f2(mine / noop)}x the no-op module's ${f1(noop)} µs (target <= 1.3x: ${verdict(mine <= 1.3 * noop, noopRow)})`);
      const luaRow = get("lua");
      const lua = added(luaRow, none, field);
      if (Number.isFinite(lua)) parts.push(`${f2(mine / lua)}x Lua's ${f1(lua)} µs (target <= 2x: ${verdict(mine <= 2 * lua, luaRow)})`);
      const goRow = get("go");
      const go = added(goRow, none, field);
      if (Number.isFinite(go)) parts.push(`Go module ${f1(go)} µs (target below: ${verdict(mine < go, goRow)})`);
      const native = get("native");
      if (native) parts.push(`${native.label} ${f1(added(native, none, field))} µs`);
      out.push(`- ${parts.join("; ")}`);
    }
  }
  return out;
}

function memoryTable(rows: MemoryRow[]): string[] {
  const out: string[] = [];
  const labels = [...new Set(rows.map((r) => r.label))];
  const ws = [...new Set(rows.map((r) => r.workers))].sort((a, b) => a - b);
  const at = (label: string, w: number) => rows.find((r) => r.label === label && r.workers === w);
  out.push(`| filter | ${ws.map((w) => `RSS MiB, ${w} worker${w > 1 ? "s" : ""} (vs no filter)`).join(" | ")} | per worker vs no filter | per worker vs no-op | allocator MiB (${ws.at(-1)} workers) | VMs |`);
  out.push(`|---|${ws.map(() => "---:").join("|")}|---:|---:|---:|---:|`);
  const slope = (label: string) => {
    const a = at(label, ws[0]);
    const b = at(label, ws.at(-1)!);
    return a && b && ws.length > 1 ? (b.rssBytes - a.rssBytes) / (ws.at(-1)! - ws[0]) : NaN;
  };
  const mib = (b: number) => (b / 1048576).toFixed(2);
  for (const label of labels) {
    const cells = ws.map((w) => {
      const r = at(label, w);
      const none = at("no filter", w);
      return r ? `${mib(r.rssBytes)} (${none && label !== "no filter" ? (r.rssBytes >= none.rssBytes ? "+" : "") + mib(r.rssBytes - none.rssBytes) : "-"})` : "-";
    });
    const last = at(label, ws.at(-1)!);
    out.push(`| ${label} | ${cells.join(" | ")} | ${label === "no filter" ? `${mib(slope(label))} (Envoy's own)` : mib(slope(label) - slope("no filter"))} | ${["no filter", "no-op module"].includes(label) ? "-" : mib(slope(label) - slope("no-op module"))} | ${last ? mib(last.allocatedBytes) : "-"} | ${last?.wasmVms ?? "-"} |`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const log = (line: string) => console.error(line);
  const { bin, version } = resolveEnvoy(args.get("envoy") ?? undefined, { log });
  const tools: Tools = { envoy: bin, envoyVersion: version, wrk: resolveWrk({ log }), vegeta: resolveVegeta({ log }) };
  const wantGo = !ONLY || ONLY === "header-normalizer";
  const goPeer = wantGo ? buildGoPeer("header-normalizer-go", { log }) : undefined;
  const dir = mkdtempSync(join(tmpdir(), "bench-envoy-"));
  const upstream = await startEnvoy({ bin, bootstrap: upstreamBootstrap(), cwd: root, concurrency: 1, logLevel: "warning", cpus: HELPER_CPU });
  const started = Date.now();
  try {
    const up = [...upstream.ports.values()][0];
    const cases = benchCases(goPeer, up);
    console.log(`Envoy ${version}, ${WORKERS} worker${WORKERS > 1 ? "s" : ""} on CPU ${UNDER_TEST_CPU ?? "any"}; upstream (Envoy direct_response) and load generators on CPU ${HELPER_CPU ?? "any"}.`);
    console.log(`${ROUNDS} round(s) of ${SECONDS} s per measurement; saturation: wrk, 1 thread, ${CONNECTIONS} connections; latency: vegeta at ${RATE} req/s.\n`);
    const rows: Row[] = [];
    for (const c of cases) for (const v of c.variants) rows.push({ filter: c.filter, caseName: c.name, clean: c.clean, kind: v.kind, label: v.label, samples: [], median: undefined as unknown as Sample });
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) {
        // Rotate the order each round, so that no variant always runs first or last.
        const order = c.variants.map((_, i) => c.variants[(i + round) % c.variants.length]);
        for (const v of order) {
          const bootstrap = withSlot(c.frame(), c.filter, v.slot);
          const s = await measure(tools, dir, bootstrap, c.mix);
          rows.find((r) => r.filter === c.filter && r.caseName === c.name && r.kind === v.kind)!.samples.push(s);
          console.error(`  round ${round + 1}/${ROUNDS} ${c.filter} (${c.name}) ${v.label}: ${s.rps.toFixed(0)} req/s, ${f1(s.cpuUsPerRequest)} µs CPU/req (${f1(s.fixedCpuUsPerRequest)} at ${RATE}/s), p50 ${f1(s.p50Us)} µs, p99 ${f1(s.p99Us)} µs [${s.statuses}]`);
        }
      }
    }
    for (const r of rows) {
      const pick = (k: keyof Sample) => median(r.samples.map((s) => s[k] as number));
      r.median = { rps: pick("rps"), cpuUsPerRequest: pick("cpuUsPerRequest"), fixedCpuUsPerRequest: pick("fixedCpuUsPerRequest"), p50Us: pick("p50Us"), p99Us: pick("p99Us"), non2xx: pick("non2xx"), statuses: r.samples.at(-1)!.statuses };
    }
    const lines = ["## Per-request cost in real Envoy", "", ...table(rows), "", "Targets (filters' clean paths):", ...verdicts(rows)];

    let memory: MemoryRow[] = [];
    if (!SKIP_MEMORY) {
      const firstCase = new Map<string, Case>();
      for (const c of cases) if (!firstCase.has(c.filter)) firstCase.set(c.filter, c);
      const plan: Array<{ label: string; bootstrap: () => Record<string, any>; mix: MixRequest[] }> = [];
      const any = cases[0];
      plan.push({ label: "no filter", bootstrap: () => withSlot(any.frame(), any.filter, []), mix: any.mix });
      plan.push({ label: "no-op module", bootstrap: () => withSlot(any.frame(), any.filter, [noopFilter()]), mix: any.mix });
      // Each filter, and the Go module, in its own first case's bootstrap and mix.
      for (const c of firstCase.values()) {
        for (const v of c.variants) {
          if (v.kind !== "filter" && v.kind !== "go") continue;
          plan.push({ label: v.kind === "go" ? "Go module (header-normalizer's clean path)" : c.filter, bootstrap: () => withSlot(c.frame(), c.filter, v.slot), mix: c.mix });
        }
      }
      for (const w of MEMORY_WORKERS) {
        for (const p of plan) {
          const m = await memoryOf(tools, dir, p.label, p.bootstrap(), p.mix, w);
          memory.push(m);
          console.error(`  memory ${p.label}, ${w} worker(s): RSS ${(m.rssBytes / 1048576).toFixed(1)} MiB, ${m.wasmVms} VMs, ${m.workersServing} worker(s) served`);
        }
      }
      lines.push("", `## Memory after ${MEMORY_REQUESTS} requests (resident set of the Envoy process)`, "", ...memoryTable(memory));
    }
    console.log(lines.join("\n"));
    console.log(`\n(${((Date.now() - started) / 1000).toFixed(0)} s)`);
    const resultsDir = join(root, "bench", "results");
    mkdirSync(resultsDir, { recursive: true });
    const record = { date: new Date().toISOString(), envoy: version, workers: WORKERS, rounds: ROUNDS, seconds: SECONDS, rate: RATE, connections: CONNECTIONS, cpus: cpus().length, cpuModel: cpus()[0]?.model, rows, memory, smoke: SMOKE };
    writeFileSync(join(resultsDir, SMOKE ? "envoy-smoke.json" : "envoy-latest.json"), JSON.stringify(record, null, 2));
  } finally {
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench:envoy: ${err.stack ?? err}`);
  process.exitCode = 1;
});
