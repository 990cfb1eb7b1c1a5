// The measuring stick: cost of each built filter relative to the no-op filter (the floor of
// any AssemblyScript proxy-wasm filter), measured in the same run, plus hostcalls per
// request, linear memory and module size. A measurement, not a test: it never fails on numbers.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Envoy } from "../runtime/host/src/index.js";
import type { RequestSpec } from "../runtime/host/src/index.js";

interface Target {
  name: string;
  wasm: string;
  rootId: string;
  configuration: string;
  /** Name of the request mix; the no-op filter is measured on each mix used. */
  mixName: string;
  mix: RequestSpec[];
}

interface Row {
  name: string;
  mix: string;
  perRequestUs: number;
  /** Time inside the module minus this host's hostcall work (which Envoy does in C++), median over rounds. */
  guestUs: number;
  ratio: number;
  hostcallsPerRequest: number;
  pagesAfterWarmup: number;
  pagesAfterRun: number;
  requestsRun: number;
  startupMs: number;
  startupRatio: number;
  wasmBytes: number;
}

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith("--")) args.set(a.slice(2), process.argv[i + 1]?.startsWith("--") === false ? process.argv[++i] : "true");
}
const ROUNDS = Number(args.get("rounds") ?? 5);
const PER_ROUND = Number(args.get("per-round") ?? 5000);
const LONG_RUN = Number(args.get("requests") ?? 1_000_000);
const ONLY = args.get("only");
// Runs bundled as dist/bench.mjs, so the repository root is one level up from the bundle.
const root = new URL("..", import.meta.url).pathname;

/** A realistic request mix: browser-ish GET, API POST with JSON, a request with duplicates. */
const DEFAULT_MIX: RequestSpec[] = [
  {
    method: "GET", path: "/api/items?id=42&sort=asc", authority: "shop.example.com",
    headers: [["user-agent", "Mozilla/5.0"], ["accept", "application/json"], ["accept-encoding", "gzip, br"],
      ["cookie", "session=abc123; theme=dark"], ["x-request-id", "5f0c6f6e-1b7e-4c1a-9f57-0d6f3d2b9a10"],
      ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]],
  },
  {
    method: "POST", path: "/api/orders", authority: "shop.example.com",
    headers: [["content-type", "application/json"], ["content-length", "512"], ["authorization", "Bearer eyJhbGciOi..."]],
    body: JSON.stringify({ items: Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${i}`, qty: i + 1 })) }).padEnd(512, " "),
  },
  {
    method: "GET", path: "/health", authority: "shop.example.com",
    headers: [["x-forwarded-for", "203.0.113.7"], ["x-dup", "1"], ["x-dup", "2"], ["accept", "*/*"]],
  },
];

const upstream = () => ({ status: 200, headers: [["content-type", "application/json"], ["cache-control", "no-store"]] as Array<[string, string]>, body: `{"ok":true}` });

const noopTarget = (mixName: string, mix: RequestSpec[]): Target =>
  ({ name: "noop", wasm: join(root, "dist/fixtures/noop.wasm"), rootId: "noop", configuration: "", mixName, mix });

interface BenchCase { name?: string; configuration?: unknown; mix?: RequestSpec[] }

/** noop and fixture on the default mix, then each filter's bench.json cases (each with the noop on its mix). */
function targets(): Target[] {
  const list: Target[] = [
    noopTarget("default", DEFAULT_MIX),
    { name: "fixture", wasm: join(root, "dist/fixtures/fixture.wasm"), rootId: "fixture", configuration: "{}", mixName: "default", mix: DEFAULT_MIX },
  ];
  // bench.json: { "rootId"?, "cases": [{ "name", "configuration", "mix"? }] }.
  const filtersDir = join(root, "filters");
  if (existsSync(filtersDir)) {
    for (const name of readdirSync(filtersDir).sort()) {
      const wasm = join(root, "dist", `${name}.wasm`);
      const spec = join(filtersDir, name, "bench.json");
      if (!existsSync(wasm) || !existsSync(spec)) continue;
      const cfg = JSON.parse(readFileSync(spec, "utf8")) as { rootId?: string; cases: BenchCase[] };
      for (const c of cfg.cases) {
        const mixName = c.mix ? `${name}/${c.name}` : "default";
        if (c.mix && !list.some((t) => t.name === "noop" && t.mixName === mixName)) list.push(noopTarget(mixName, c.mix));
        list.push({ name: c.name ? `${name} (${c.name})` : name, wasm, rootId: cfg.rootId ?? name, configuration: JSON.stringify(c.configuration ?? {}), mixName, mix: c.mix ?? DEFAULT_MIX });
      }
    }
  }
  if (!ONLY) return list;
  const chosen = list.filter((t) => t.name !== "noop" && t.name.startsWith(ONLY));
  return list.filter((t) => chosen.includes(t) || (t.name === "noop" && chosen.some((c) => c.mixName === t.mixName)));
}

function load(t: Target): { envoy: Envoy; startupMs: number } {
  const envoy = new Envoy({ workers: 1, logLevel: "warn" });
  const wasm = readFileSync(t.wasm);
  const start = performance.now();
  envoy.addPlugin({ name: t.name, rootId: t.rootId, vmId: t.name, wasm, configuration: t.configuration });
  return { envoy, startupMs: performance.now() - start };
}

let seq = 0;

/** "{{seq}}" in a header value becomes a number unique to each request (32 hex digits). */
function instantiate(spec: RequestSpec): RequestSpec {
  const headers = spec.headers;
  if (!Array.isArray(headers) || !headers.some(([, v]) => typeof v === "string" && v.includes("{{seq}}"))) return spec;
  const id = (++seq).toString(16).padStart(32, "0");
  return { ...spec, headers: headers.map(([k, v]) => [k, typeof v === "string" ? v.replace("{{seq}}", id) : v]) };
}

async function runRequests(envoy: Envoy, mix: RequestSpec[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await envoy.request({ ...instantiate(mix[i % mix.length]), worker: 0, upstream });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function measure(t: Target): Promise<Omit<Row, "ratio" | "startupRatio"> & { roundsUs: number[] }> {
  const startups: number[] = [];
  for (let i = 0; i < 5; i++) startups.push(load(t).startupMs);
  const { envoy } = load(t);
  const vm = () => envoy.plugins[0].workerVms[0]!;
  await runRequests(envoy, t.mix, 2000); // warm-up (JIT and the module's own caches)
  const pagesAfterWarmup = vm().memoryPages;
  const callsBefore = vm().hostcalls;
  const roundsUs: number[] = [];
  const guestUs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const busy = vm().busyMs - vm().hostcallMs;
    const start = performance.now();
    await runRequests(envoy, t.mix, PER_ROUND);
    roundsUs.push(((performance.now() - start) * 1000) / PER_ROUND);
    guestUs.push(((vm().busyMs - vm().hostcallMs - busy) * 1000) / PER_ROUND);
  }
  const hostcallsPerRequest = (vm().hostcalls - callsBefore) / (ROUNDS * PER_ROUND);
  const remaining = Math.max(0, LONG_RUN - 2000 - ROUNDS * PER_ROUND);
  await runRequests(envoy, t.mix, remaining);
  if (vm().failed) throw new Error(`${t.name} trapped during the benchmark`);
  return {
    name: t.name, mix: t.mixName, perRequestUs: median(roundsUs), guestUs: median(guestUs), roundsUs, hostcallsPerRequest, pagesAfterWarmup,
    pagesAfterRun: vm().memoryPages, requestsRun: 2000 + ROUNDS * PER_ROUND + remaining,
    startupMs: median(startups), wasmBytes: statSync(t.wasm).size,
  };
}

async function main(): Promise<void> {
  const list = targets();
  for (const t of list) load(t); // warm the compiler before timing start-ups
  const measured: Array<Awaited<ReturnType<typeof measure>>> = [];
  for (const t of list) {
    process.stderr.write(`measuring ${t.name} on mix ${t.mixName} ...\n`);
    measured.push(await measure(t));
  }
  const floorFor = (mix: string) => measured.find((m) => m.name === "noop" && m.mix === mix)!;
  const rows: Row[] = measured.map(({ roundsUs: _r, ...m }) => ({
    ...m,
    ratio: m.perRequestUs / floorFor(m.mix).perRequestUs,
    startupRatio: m.startupMs / floorFor(m.mix).startupMs,
  }));
  const header = ["filter", "mix", "us/req", "x noop", "guest us/req", "hostcalls/req", "pages warm", "pages end", "requests", "startup x noop", ".wasm KiB"];
  const table = rows.map((r) => [
    r.name, r.mix, r.perRequestUs.toFixed(1), r.ratio.toFixed(2), r.guestUs.toFixed(2), r.hostcallsPerRequest.toFixed(1), String(r.pagesAfterWarmup),
    String(r.pagesAfterRun), String(r.requestsRun), r.startupRatio.toFixed(2), (r.wasmBytes / 1024).toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of table) console.log(line(row));
  const out = { date: new Date().toISOString(), node: process.version, rounds: ROUNDS, perRound: PER_ROUND, longRun: LONG_RUN, rows };
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "latest.json"), JSON.stringify(out, null, 2));
  writeFileSync(join(dir, `${out.date.replace(/[:.]/g, "-")}.json`), JSON.stringify(out, null, 2));
  console.log(`\nwritten: bench/results/latest.json (per-request cost is the median of ${ROUNDS} rounds of ${PER_ROUND}; ratios against noop on the same mix in this run)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
