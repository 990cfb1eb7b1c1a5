// The plant family of adaptive-ratelimit's closed-loop benchmark (npm run bench:ratelimit --
// --family): the controller on services unlike the one it was first tuned on.
//
// Plants: capacity 20 to 5,000 requests/s, 1 to 64 servers, service time jittered (+-20%),
// exponential or heavy-tailed (lognormal). SLOs on p50, p90 and p99, each at 2.5 times that
// percentile of the bare service time. Loads: a 3x step, a slow ramp to 2x, a short 5x spike, a
// 60% capacity drop, a healthy 0.8x from a cold start, and 1 request/s per worker. 4 and 8
// workers. Every (plant, load) pair runs once; the SLO and the worker count rotate over the
// pairs so that every percentile and both worker counts meet every plant and every load; the
// step and the drop run on a second seed too.
import {
  type Outcome, type Result, type Scenario, type ServiceDist, aimd, arrivals, evaluate, fixedRate, gradient, none, runFilter, runPolicy, serviceQuantile,
} from "./closed-loop.js";

export interface PlantSpec { servers: number; serviceMs: number; dist: ServiceDist }

export const PLANTS: PlantSpec[] = [
  { servers: 1, serviceMs: 50, dist: "jitter" }, // 20/s, one server
  { servers: 4, serviceMs: 20, dist: "exponential" }, // 200/s
  { servers: 16, serviceMs: 50, dist: "jitter" }, // 320/s, the tuned plant
  { servers: 8, serviceMs: 10, dist: "heavy" }, // 800/s
  { servers: 32, serviceMs: 20, dist: "heavy" }, // 1,600/s
  { servers: 64, serviceMs: 12.8, dist: "exponential" }, // 5,000/s
];

export type LoadKind = "step" | "ramp" | "spike" | "drop" | "healthy" | "low";
export const LOADS: LoadKind[] = ["step", "ramp", "spike", "drop", "healthy", "low"];
const PERCENTILES = [0.5, 0.9, 0.99];
const SECONDS = 40;

export interface Cell { scenario: Scenario; plant: PlantSpec; load: LoadKind; seed: number }

export const capacityOf = (p: PlantSpec) => (p.servers * 1000) / p.serviceMs;

function scenarioOf(p: PlantSpec, load: LoadKind, q: number, workers: number): Scenario {
  const setpointMs = Math.round(2.5 * serviceQuantile(p.dist, q) * p.serviceMs);
  const base = { seconds: SECONDS, servers: p.servers, serviceMs: p.serviceMs, dist: p.dist, percentile: q, setpointMs, workers };
  const name = `${p.servers}x${p.serviceMs} ms ${p.dist} (${capacityOf(p)}/s), ${load}, p${q * 100} <= ${setpointMs} ms, ${workers} workers`;
  switch (load) {
    case "step": return { ...base, name, disturbanceAt: 10, offered: (t, c) => (t < 10 ? 0.6 * c : 3 * c) };
    // 0.3x to 2x over the run: capacity is crossed at about 16.5 s.
    case "ramp": return { ...base, name, disturbanceAt: 17, offered: (t, c) => (0.3 + (1.7 * t) / SECONDS) * c };
    case "spike": return { ...base, name, disturbanceAt: 10, offered: (t, c) => (t >= 10 && t < 12 ? 5 * c : 0.6 * c) };
    case "drop": return { ...base, name, disturbanceAt: 10, offered: (_t, c) => 0.8 * c, serversAt: (t) => (t < 10 ? p.servers : Math.max(1, Math.round(0.4 * p.servers))) };
    case "healthy": return { ...base, name, disturbanceAt: 0, offered: (_t, c) => 0.8 * c };
    case "low": return { ...base, name, disturbanceAt: 0, offered: () => workers };
  }
}

/** Every cell of the family, in table order. */
export function cells(): Cell[] {
  const out: Cell[] = [];
  PLANTS.forEach((plant, i) => {
    LOADS.forEach((load, j) => {
      const q = PERCENTILES[(i + j) % 3], workers = (i + j) % 2 === 0 ? 4 : 8;
      out.push({ scenario: scenarioOf(plant, load, q, workers), plant, load, seed: 42 });
      if (load === "step" || load === "drop") out.push({ scenario: scenarioOf(plant, load, q, workers), plant, load, seed: 7 });
    });
  });
  return out;
}

/** The filter as the family runs it: its defaults but for the SLO and max_rate (10x capacity). */
export function familyConfig(s: Scenario): object {
  const c = (s.servers * 1000) / s.serviceMs;
  return { tick_ms: 100, rules: [{ name: "api", controller: { signal: "latency", percentile: (s.percentile ?? 0.99) * 100, setpoint_ms: s.setpointMs, max_rate: 10 * c } }] };
}

export interface CellResult {
  cell: string; load: LoadKind; seed: number; capacity: number; setpointMs: number;
  pid: Result; baselines: Result[];
  /** The best fixed rate in hindsight (not a baseline a user could configure ahead). */
  oracle: Result;
  /**
   * The service meets the SLO without any limiter at this load (a spike cell: at its base load,
   * 0.6x, without the spike).
   */
  healthy: boolean;
  /** Rejected share after the spike has passed (from 10 s after it), %. */
  rejectedAfterPct: number;
  missed: string[];
}

function rejectedAfter(outcomes: Outcome[], fromMs: number): number {
  const after = outcomes.filter((o) => o.arrival >= fromMs);
  return after.length === 0 ? 0 : (100 * after.filter((o) => !o.admitted).length) / after.length;
}

/** A spike cell's base load alone, 0.6x from the start, judged like a healthy cell. */
function baseLoadOf(s: Scenario): Scenario {
  return { ...s, name: s.name + " (base load)", disturbanceAt: 0, offered: (_t, c) => 0.6 * c };
}

/** Runs one cell: the filter in the host and the TypeScript baselines, on the same arrivals. */
export async function runCell(cell: Cell): Promise<CellResult> {
  const s = cell.scenario;
  const c = (s.servers * 1000) / s.serviceMs;
  const q = s.percentile ?? 0.99, setpoint = s.setpointMs ?? 150;
  const times = arrivals(s, cell.seed);
  const outcomes = await runFilter(s, times, familyConfig(s));
  const pid = evaluate("adaptive-ratelimit (PID)", s, outcomes);
  const baselines = [
    evaluate("no limiter", s, runPolicy(s, times, none())),
    evaluate("static limit at capacity", s, runPolicy(s, times, fixedRate(c))),
    evaluate("AIMD", s, runPolicy(s, times, aimd(c, q, setpoint))),
    evaluate("gradient (Envoy defaults, p50)", s, runPolicy(s, times, gradient())),
    evaluate(`gradient, p${q * 100}`, s, runPolicy(s, times, gradient(q))),
  ];
  const rejectedAfterPct = rejectedAfter(outcomes, 22_000);
  // What any limiter could have done: the best fixed rate, found in hindsight by trying 30% to
  // 110% of capacity on the same arrivals. Where even that stays under 90% of capacity, the
  // service cannot carry 90% of its capacity within the SLO (queueing at that utilisation
  // already breaks it): the 90% target is unreachable in principle, and PID is judged on its
  // share of the oracle instead.
  let oracle: Result = evaluate("best fixed rate (oracle)", s, runPolicy(s, times, fixedRate(0.3 * c)));
  for (let f = 0.4; f <= 1.101; f += 0.1) {
    const r = evaluate("best fixed rate (oracle)", s, runPolicy(s, times, fixedRate(f * c)));
    if (r.goodputPct > oracle.goodputPct) oracle = { ...r, controller: `best fixed rate (oracle, ${(f * 100).toFixed(0)}%)` };
  }
  const missed: string[] = [];
  const best = Math.max(...baselines.map((b) => b.goodputPct));
  if (cell.load === "step" || cell.load === "drop" || cell.load === "ramp") {
    if (oracle.goodputPct >= 90 && pid.goodputPct < 90) missed.push("goodput < 90% of capacity");
    if (oracle.goodputPct < 90 && pid.goodputPct < 0.9 * oracle.goodputPct) missed.push("goodput < 90% of the oracle (90% of capacity is out of reach)");
    if (pid.goodputPct < 0.95 * best) missed.push("goodput < 95% of the best baseline");
  }
  if (cell.load !== "healthy" && cell.load !== "low") {
    if (pid.p99Ms > 1.1 * setpoint) missed.push("percentile after settling > 110% of the setpoint");
    if (pid.settlingIntervals === null || pid.settlingIntervals > 10) missed.push("settling > 10 intervals");
  }
  // Healthy: the service meets the SLO with no limiter at all; then nothing may be rejected. For
  // a spike the question is whether the load it returns to is healthy: where the base load alone
  // misses the SLO without a limiter, shedding part of it after the spike is the SLO enforced.
  const base = cell.load === "spike" ? baseLoadOf(s) : null;
  const unlimited = base !== null ? evaluate("no limiter", base, runPolicy(base, arrivals(base, cell.seed), none())) : baselines[0];
  const healthy = unlimited.p99Ms <= setpoint && (unlimited.settlingIntervals ?? 1) === 0;
  if (cell.load === "spike" && healthy && rejectedAfterPct > 1) missed.push("rejects after the spike");
  if ((cell.load === "healthy" || cell.load === "low") && healthy && pid.rejectedPct > 0) missed.push("rejects a healthy service");
  return { cell: s.name, load: cell.load, seed: cell.seed, capacity: c, setpointMs: setpoint, pid, baselines, oracle, healthy, rejectedAfterPct, missed };
}

/** The family table: one row per cell. */
export function familyTable(results: CellResult[]): string[] {
  const lines = [
    "| plant, load, SLO, workers | seed | PID goodput | best baseline | PID / best | oracle | after settling / setpoint | settling | rejected | missed |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    const best = r.baselines.reduce((a, b) => (b.goodputPct > a.goodputPct ? b : a));
    const ratio = best.goodputPct > 0 ? `${((100 * r.pid.goodputPct) / best.goodputPct).toFixed(0)}%` : "-";
    let rejected = r.load === "spike" ? `${r.pid.rejectedPct.toFixed(1)}% (after: ${r.rejectedAfterPct.toFixed(1)}%${r.healthy ? "" : "; base load not healthy: with no limiter, a 1 s window misses the SLO"})` : `${r.pid.rejectedPct.toFixed(1)}%`;
    if ((r.load === "healthy" || r.load === "low") && !r.healthy) rejected += " (not healthy: with no limiter, a 1 s window misses the SLO)";
    lines.push(`| ${r.cell} | ${r.seed} | ${r.pid.goodputPct.toFixed(1)}% | ${best.controller} ${best.goodputPct.toFixed(1)}% | ${ratio} | ${r.oracle.goodputPct.toFixed(1)}% | ${((100 * r.pid.p99Ms) / r.setpointMs).toFixed(0)}% | ${r.pid.settlingIntervals ?? "never"} | ${rejected} | ${r.missed.length === 0 ? "none" : r.missed.join("; ")} |`);
  }
  return lines;
}

