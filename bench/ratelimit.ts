// The closed-loop benchmark of adaptive-ratelimit (npm run bench:ratelimit); the plant,
// scenarios and baselines are in bench/closed-loop.ts.
//
// Controllers on the same plant: the filter (PID, built module in the host, 4 workers, virtual
// clock) with its defaults, the filter with its in-flight guard off (the rate alone), no
// limiter, a static limit at nominal capacity (the filter with min = max, no guard), AIMD, and
// a gradient concurrency limiter following Envoy adaptive_concurrency's documented algorithm,
// minRTT probe included.
//
// Options: --envoy (the scenarios in real Envoy, bench/envoy-loop.ts), --family [name filter] (the plant family, bench/family.ts, instead), --only <scenario prefix>, --seed N (arrivals; default 42, the README table),
// --initial-factor F (the filter's initial_rate as a multiple of capacity; default 1).
// ARL_TRACE=1 prints the filter's state every second on stderr.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  BASE, INTERVAL_MS, type Outcome, PERCENTILE, type Result, type Trace, SCENARIOS, SETPOINT_MS, WORKERS, aimd, arrivals, evaluate, gradient, none, pidConfig, root, runFilter, runPolicy, staticConfig,
} from "./closed-loop.js";
import { type CellResult, cells, familyTable, runCell } from "./family.js";
import { type Row, chartSvg, seriesOf } from "./charts.js";
import { type Variant, compressed, runOnEnvoy } from "./envoy-loop.js";
import { defaultVersion, resolveEnvoy } from "../scripts/envoy.mjs";

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
/** `--seed N`: the arrival sequence (default 42, the one the README table shows). */
const SEED = option("--seed", 42);
/** `--initial-factor F`: the filter's initial_rate as a multiple of the plant's capacity (default 1). */
const INITIAL_FACTOR = option("--initial-factor", 1);
/** `--charts DIR`: where the SVG charts go (default bench/results/charts; the README's are in filters/adaptive-ratelimit/docs). */
const CHARTS = process.argv.includes("--charts") ? resolve(process.argv[process.argv.indexOf("--charts") + 1]) : join(root, "bench", "results", "charts");

// ---------------------------------------------------------------- main

/** `--family [filter]`: every cell of the plant family (bench/family.ts) whose name contains the filter. */
async function family(): Promise<void> {
  const at = process.argv.indexOf("--family");
  const filter = process.argv[at + 1] && !process.argv[at + 1].startsWith("--") ? process.argv[at + 1] : "";
  const results: CellResult[] = [];
  for (const cell of cells()) {
    if (!cell.scenario.name.includes(filter)) continue;
    const started = Date.now();
    const r = await runCell(cell);
    results.push(r);
    process.stderr.write(`${cell.scenario.name} seed ${cell.seed}: PID ${r.pid.goodputPct.toFixed(1)}%, missed: ${r.missed.join("; ") || "none"} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  }
  const lines = familyTable(results);
  const met = results.filter((r) => r.missed.length === 0).length;
  lines.push("", `${met} of ${results.length} cells meet every target.`);
  console.log(lines.join("\n"));
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "ratelimit-family.json"), JSON.stringify({ date: new Date().toISOString(), results }, null, 2));
  writeFileSync(join(dir, "ratelimit-family.md"), lines.join("\n") + "\n");
}

/**
 * `--envoy`: the scenarios in real Envoy (4 workers), real time, each compressed to 30 s, against
 * bench/upstream.mjs with the plant's servers and service time.
 */
const ENVOY_WORKERS = 4;

async function onEnvoy(): Promise<void> {
  const { bin, version } = resolveEnvoy(defaultVersion(), { log: (l: string) => process.stderr.write(l + "\n") });
  const capacity = (BASE.servers * 1000) / BASE.serviceMs;
  const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
  const all: Array<{ scenario: string; results: Result[] }> = [];
  const variants: Array<[string, Variant, object]> = [
    ["adaptive-ratelimit (PID)", "pid", pidConfig(capacity)],
    ["no limiter", "none", {}],
    ["static limit at capacity", "static", staticConfig(capacity)],
    ["Envoy adaptive_concurrency (its defaults)", "adaptive_concurrency", {}],
  ];
  for (const full of SCENARIOS) {
    if (only && !full.name.startsWith(only)) continue;
    const s = compressed(full, 2);
    const results: Result[] = [];
    for (const [name, variant, configuration] of variants) {
      const started = Date.now();
      results.push(evaluate(name, s, await runOnEnvoy(bin, s, variant, configuration, SEED, { concurrency: ENVOY_WORKERS })));
      process.stderr.write(`${s.name} / ${name}: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    }
    all.push({ scenario: s.name, results });
  }
  const lines = [`Real Envoy ${version}, ${ENVOY_WORKERS} workers, real time; upstream ${BASE.servers} servers x ${BASE.serviceMs} ms (capacity ${capacity} req/s); setpoint p99 <= ${SETPOINT_MS} ms; each scenario compressed to ${SCENARIOS[0].seconds / 2} s (disturbance at ${SCENARIOS[0].disturbanceAt / 2} s).`, ""];
  lines.push("| scenario | controller | goodput within SLO (% of capacity) | p99 after settling (ms) | rejected | settling (intervals) | overshoot |", "|---|---|---|---|---|---|---|");
  for (const { scenario, results } of all) {
    for (const r of results) lines.push(`| ${scenario} | ${r.controller} | ${r.goodputPct.toFixed(1)}% | ${r.p99Ms.toFixed(0)} | ${r.rejectedPct.toFixed(1)}% | ${r.settlingIntervals === null ? "never" : r.settlingIntervals} | ${r.overshootPct.toFixed(0)}% |`);
  }
  console.log(lines.join("\n"));
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "ratelimit-envoy.json"), JSON.stringify({ date: new Date().toISOString(), envoy: version, scenarios: all }, null, 2));
  writeFileSync(join(dir, "ratelimit-envoy.md"), lines.join("\n") + "\n");
}

async function main(): Promise<void> {
  if (process.argv.includes("--family")) return family();
  if (process.argv.includes("--envoy")) return onEnvoy();
  const capacity = (BASE.servers * 1000) / BASE.serviceMs;
  const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
  const all: Array<{ scenario: string; results: Result[] }> = [];
  for (const s of SCENARIOS) {
    if (only && !s.name.startsWith(only)) continue;
    const times = arrivals(s, SEED);
    const results: Result[] = [];
    process.stderr.write(`${s.name}: ${times.length} requests\n`);
    const rows: Row[] = [];
    const chart = (name: string, outcomes: Outcome[], limit?: Trace) => { rows.push(...seriesOf(name, outcomes, s.seconds, PERCENTILE, SETPOINT_MS, limit)); return outcomes; };
    const pidTrace: Trace = [], staticTrace: Trace = [], aimdTrace: Trace = [];
    results.push(evaluate("adaptive-ratelimit (PID)", s, chart("adaptive-ratelimit (PID)", await runFilter(s, times, pidConfig(capacity, undefined, INITIAL_FACTOR), pidTrace), pidTrace)));
    results.push(evaluate("adaptive-ratelimit, rate only (inflight_guard 0)", s, await runFilter(s, times, pidConfig(capacity, 0, INITIAL_FACTOR))));
    results.push(evaluate("no limiter", s, runPolicy(s, times, none())));
    results.push(evaluate("static limit at capacity", s, chart("static limit at capacity", await runFilter(s, times, staticConfig(capacity), staticTrace), staticTrace)));
    results.push(evaluate("AIMD", s, chart("AIMD", runPolicy(s, times, aimd(capacity), aimdTrace), aimdTrace)));
    results.push(evaluate("gradient (Envoy adaptive_concurrency, its defaults: p50 samples)", s, chart("gradient (Envoy defaults)", runPolicy(s, times, gradient()))));
    results.push(evaluate("gradient, sample_aggregate_percentile 99", s, runPolicy(s, times, gradient(0.99))));
    all.push({ scenario: s.name, results });
    mkdirSync(CHARTS, { recursive: true });
    const file = join(CHARTS, `closed-loop-${s.name.split(":")[0].replace(/[^a-z0-9]+/g, "-").replace(/-$/, "")}.svg`);
    writeFileSync(file, await chartSvg(s.name, rows, ["adaptive-ratelimit (PID)", "static limit at capacity", "AIMD", "gradient (Envoy defaults)"]));
    process.stderr.write(`chart: ${file}\n`);
  }
  const lines: string[] = [];
  lines.push(`Plant: ${BASE.servers} servers x ${BASE.serviceMs} ms (capacity ${capacity} req/s), setpoint p99 <= ${SETPOINT_MS} ms, control interval ${INTERVAL_MS} ms, ${WORKERS} workers.`);
  lines.push("");
  lines.push("| scenario | controller | goodput within SLO (% of capacity) | p99 after settling (ms) | rejected | settling (intervals) | overshoot |");
  lines.push("|---|---|---|---|---|---|---|");
  for (const { scenario, results } of all) {
    for (const r of results) {
      lines.push(`| ${scenario} | ${r.controller} | ${r.goodputPct.toFixed(1)}% | ${r.p99Ms.toFixed(0)} | ${r.rejectedPct.toFixed(1)}% | ${r.settlingIntervals === null ? "never" : r.settlingIntervals} | ${r.overshootPct.toFixed(0)}% |`);
    }
  }
  console.log(lines.join("\n"));
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "ratelimit-latest.json"), JSON.stringify({ date: new Date().toISOString(), setpointMs: SETPOINT_MS, capacity, scenarios: all }, null, 2));
  writeFileSync(join(dir, "ratelimit-latest.md"), lines.join("\n") + "\n");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
