// The closed loop as a regression test: the built module against the benchmark's simulated
// upstream (bench/closed-loop.ts), on the seed the README table shows. Virtual time, so the
// outcome is deterministic; a change to the control law that gives up the targets
// fails here, not only in `npm run bench:ratelimit`.
import { describe, expect, test } from "vitest";
import {
  SCENARIOS, SETPOINT_MS, aimd, arrivals, evaluate, gradient, none, pidConfig, runFilter, runPolicy, staticConfig,
} from "../../../bench/closed-loop.js";
import { type Cell, type CellResult, cells, runCell } from "../../../bench/family.js";

const CAPACITY = 320;
const SEED = 42;

function scenario(prefix: string) {
  const s = SCENARIOS.find((x) => x.name.startsWith(prefix));
  if (!s) throw new Error(`no scenario ${prefix}`);
  return s;
}

describe("closed loop on the simulated upstream (the README's seed)", () => {
  test.each(["overload", "capacity drops"])("%s: at least 95 percent of capacity as goodput within the SLO, more than every baseline; p99 at most 110 percent of the setpoint; settled within 10 intervals", async (prefix) => {
    const s = scenario(prefix);
    const times = arrivals(s, SEED);
    const pid = evaluate("pid", s, await runFilter(s, times, pidConfig(CAPACITY)));
    expect(pid.goodputPct).toBeGreaterThanOrEqual(95);
    expect(pid.p99Ms).toBeLessThanOrEqual(SETPOINT_MS * 1.1);
    expect(pid.settlingIntervals).not.toBeNull();
    expect(pid.settlingIntervals!).toBeLessThanOrEqual(10);
    const baselines = [
      evaluate("none", s, runPolicy(s, times, none())),
      evaluate("static", s, await runFilter(s, times, staticConfig(CAPACITY))),
      evaluate("aimd", s, runPolicy(s, times, aimd(CAPACITY))),
      evaluate("gradient (Envoy defaults, p50)", s, runPolicy(s, times, gradient())),
      evaluate("gradient, p99 samples", s, runPolicy(s, times, gradient(0.99))),
    ];
    for (const b of baselines) expect(pid.goodputPct, b.controller).toBeGreaterThan(b.goodputPct);
  }, 120_000);

  test("low traffic (1 request/s per worker): nothing is rejected", async () => {
    const s = scenario("low traffic");
    const r = evaluate("pid", s, await runFilter(s, arrivals(s, SEED), pidConfig(CAPACITY)));
    expect(r.rejectedPct).toBe(0);
  }, 60_000);
});

/** Runs the family's cells that `pick` chooses; each must meet every target. Returns their results. */
async function expectEveryTargetMet(pick: (c: Cell) => boolean): Promise<CellResult[]> {
  const out: CellResult[] = [];
  for (const cell of cells().filter(pick)) {
    const r = await runCell(cell);
    expect({ load: cell.load, seed: cell.seed, missed: r.missed }).toEqual({ load: cell.load, seed: cell.seed, missed: [] });
    out.push(r);
  }
  return out;
}

describe("closed loop on plants of the family (bench/family.ts)", () => {
  // Exponential service on 4 servers, a p90 setpoint, a 3x step: where a limit on requests in
  // flight (the gradient controller) used to beat the rate by 5-10% of capacity.
  test("4 x 20 ms exponential, 3x step, p90: every target of the cell met, on both seeds", async () => {
    for (const r of await expectEveryTargetMet((c) => c.scenario.name.startsWith("4x20 ms exponential") && c.load === "step")) {
      const best = Math.max(...r.baselines.map((b) => b.goodputPct));
      expect(r.pid.goodputPct).toBeGreaterThanOrEqual(0.95 * best);
    }
  }, 60000);

  // Heavy-tailed service (lognormal) on 8 servers, a p50 setpoint, a 3x step: the in-flight bound
  // at 1.5x the mean let a queue form that pushed half the requests past the setpoint; in an
  // overload the bound is 1.25x (PID had 60.8% and 59.6% against the gradient's 66.7% and 65.7%).
  test("8 x 10 ms heavy-tailed, 3x step, p50: every target of the cell met, on both seeds", async () => {
    await expectEveryTargetMet((c) => c.scenario.name.startsWith("8x10 ms heavy") && c.load === "step");
  }, 120000);

  // One server behind 4 and 8 workers: a bound of two requests in flight split into parts was
  // one request a worker (4 to 8 in flight). Held exactly across workers it is a concurrency
  // limit again (before: the step on seed 7 at 72.2% against the oracle's 85.7%, settling 21
  // intervals; the steady 0.8x "drop" on seed 42 at 58.2% against AIMD's 63.2%). In the ramp the
  // rate held under the bound of two kept it from being refilled (81.5% against AIMD's 86.3%);
  // up to the rate where the bound would grow, it now rises.
  test("1 x 50 ms (one server), 3x step, ramp and steady 0.8x on every seed: every target of the cell met", async () => {
    await expectEveryTargetMet((c) => c.scenario.name.startsWith("1x50 ms") && (c.load === "step" || c.load === "ramp" || c.load === "drop"));
  }, 120000);

  // A 60% capacity drop on the tuned plant: the requests queued at the old capacity completed
  // after the first cut, and their latency cut again (to 38/s against 120/s for 4 s). A request
  // admitted before the latest cut (or before the guard followed it) no longer counts in the
  // reading after it (before: 86.6% and 88.1% against the gradient's 97.2% and 97.0%).
  test("16 x 50 ms, 60% capacity drop, p99: every target of the cell met, on both seeds", async () => {
    await expectEveryTargetMet((c) => c.scenario.name.startsWith("16x50 ms") && c.load === "drop");
  }, 120000);

  // The tuned plant under a ramp that crosses its capacity at about 16.5 s, with a p50 setpoint:
  // the limit starts open, and the queue grew for the rest of the interval in which the reading
  // first passed the setpoint (93.5% against the static limit's 99.7%). With the limit open and
  // the mean past the healthy one, that reading now steps at once.
  test("16 x 50 ms, ramp past capacity, p50: every target of the cell met", async () => {
    await expectEveryTargetMet((c) => c.scenario.name.startsWith("16x50 ms") && c.load === "ramp");
  }, 60000);

  // Exponential service losing 60% of its capacity under a p90 setpoint. The guard, holding the
  // slower service at its bound, must not learn that queue as the healthy latency (its bound
  // would grow with it: with the earlier first cut above, the seed-7 run broke the setpoint at
  // 27 s and settled after 18 intervals).
  test("4 x 20 ms exponential, 60% capacity drop, p90: every target of the cell met, on both seeds", async () => {
    await expectEveryTargetMet((c) => c.scenario.name.startsWith("4x20 ms exponential") && c.load === "drop");
  }, 60000);

  // "No rejection after the spike" holds where the load the spike returns to is healthy. On one
  // server at 0.6x a 1 s window misses p99 <= 3 service times with no limiter at all, so shedding
  // there is the SLO enforced; on the tuned plant the base load is healthy and nothing is shed.
  test("after a spike: judged against the base load's own health, and a healthy base load is not shed", async () => {
    const spike = (prefix: string) => cells().find((c) => c.scenario.name.startsWith(prefix) && c.load === "spike")!;
    const single = await runCell(spike("1x50 ms"));
    expect(single.healthy).toBe(false);
    // The tuned plant, and an exponential one whose bursts at 0.6x bind the exact guard now and
    // then: the controller must not take those for a queue and lower the rate under the demand.
    for (const prefix of ["16x50 ms", "4x20 ms exponential"]) {
      const r = await runCell(spike(prefix));
      expect({ prefix, healthy: r.healthy }).toEqual({ prefix, healthy: true });
      expect(r.rejectedAfterPct).toBeLessThanOrEqual(1);
      expect(r.missed).toEqual([]);
    }
  }, 120000);
});
