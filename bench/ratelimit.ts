// The closed-loop benchmark of adaptive-ratelimit (npm run bench:ratelimit); the plant,
// scenarios and baselines are in bench/closed-loop.ts.
//
// Controllers on the same plant: the filter (PID, built module in the host, 4 workers, virtual
// clock) with its defaults, the filter with its in-flight guard off (the rate alone), no
// limiter, a static limit at nominal capacity (the filter with min = max, no guard), AIMD, and
// a gradient concurrency limiter following Envoy adaptive_concurrency's documented algorithm,
// minRTT probe included.
//
// Options: --only <scenario prefix>, --seed N (arrivals; default 42, the README table),
// --initial-factor F (the filter's initial_rate as a multiple of capacity; default 1).
// ARL_TRACE=1 prints the filter's state every second on stderr.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  BASE, INTERVAL_MS, type Result, SCENARIOS, SETPOINT_MS, WORKERS, aimd, arrivals, evaluate, gradient, none, pidConfig, root, runFilter, runPolicy, staticConfig,
} from "./closed-loop.js";

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
/** `--seed N`: the arrival sequence (default 42, the one the README table shows). */
const SEED = option("--seed", 42);
/** `--initial-factor F`: the filter's initial_rate as a multiple of the plant's capacity (default 1). */
const INITIAL_FACTOR = option("--initial-factor", 1);

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const capacity = (BASE.servers * 1000) / BASE.serviceMs;
  const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
  const all: Array<{ scenario: string; results: Result[] }> = [];
  for (const s of SCENARIOS) {
    if (only && !s.name.startsWith(only)) continue;
    const times = arrivals(s, SEED);
    const results: Result[] = [];
    process.stderr.write(`${s.name}: ${times.length} requests\n`);
    results.push(evaluate("adaptive-ratelimit (PID)", s, await runFilter(s, times, pidConfig(capacity, undefined, INITIAL_FACTOR))));
    results.push(evaluate("adaptive-ratelimit, rate only (inflight_guard 0)", s, await runFilter(s, times, pidConfig(capacity, 0, INITIAL_FACTOR))));
    results.push(evaluate("no limiter", s, runPolicy(s, times, none())));
    results.push(evaluate("static limit at capacity", s, await runFilter(s, times, staticConfig(capacity))));
    results.push(evaluate("AIMD", s, runPolicy(s, times, aimd(capacity))));
    results.push(evaluate("gradient (Envoy adaptive_concurrency, its defaults: p50 samples)", s, runPolicy(s, times, gradient())));
    results.push(evaluate("gradient, sample_aggregate_percentile 99", s, runPolicy(s, times, gradient(0.99))));
    all.push({ scenario: s.name, results });
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
