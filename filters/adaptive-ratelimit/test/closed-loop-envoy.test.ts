// The closed loop on real Envoy, short (the full run is npm run bench:ratelimit -- --envoy):
// Envoy with 4 workers and the built module in front of bench/upstream.mjs (8 servers x 50 ms,
// 160 requests/s), in real time. Under a 3x overload the filter sheds; after it, it admits again;
// at low load it admits everything. The bounds are wide: a 2-core machine running Envoy, the
// upstream and the generator is noisy, and the test is about direction, not figures.
import { describe, expect, inject, test } from "vitest";
import { type Outcome, type Scenario, pidConfig } from "../../../bench/closed-loop.js";
import { runOnEnvoy } from "../../../bench/envoy-loop.js";

const SERVERS = 8, SERVICE_MS = 50;
const CAPACITY = (SERVERS * 1000) / SERVICE_MS;

// 0-4 s at 0.6x, 4-12 s at 3x, 12-20 s at 0.6x, 20-25 s at 4 requests/s.
const smoke: Scenario = {
  name: "smoke", seconds: 25, disturbanceAt: 4, servers: SERVERS, serviceMs: SERVICE_MS,
  offered: (t, c) => (t < 4 ? 0.6 * c : t < 12 ? 3 * c : t < 20 ? 0.6 * c : 4),
};

const rejectedShare = (outcomes: Outcome[], fromS: number, toS: number) => {
  const w = outcomes.filter((o) => o.arrival >= fromS * 1000 && o.arrival < toS * 1000);
  return w.filter((o) => !o.admitted).length / Math.max(1, w.length);
};

describe.each(inject("envoys").slice(-1))("adaptive-ratelimit's closed loop on Envoy $version (4 workers, real time)", ({ bin }) => {
  test("sheds under a 3x overload, admits again after it, admits everything at low load", async () => {
    const outcomes = await runOnEnvoy(bin, smoke, "pid", pidConfig(CAPACITY), 42);
    // The second half of the overload: a good part of the 3x is turned away (ideally two thirds).
    expect(rejectedShare(outcomes, 8, 12)).toBeGreaterThan(0.3);
    // The last 3 s of the recovery: (nearly) nothing is.
    expect(rejectedShare(outcomes, 17, 20)).toBeLessThan(0.05);
    // Low load: nothing is.
    expect(rejectedShare(outcomes, 21, 25)).toBe(0);
    // And the admitted requests of the overload's second half were served near the setpoint,
    // not after a backlog of seconds (p90 under twice the setpoint).
    const late = outcomes.filter((o) => o.admitted && o.arrival >= 8000 && o.arrival < 12000).map((o) => o.latency!).sort((a, b) => a - b);
    expect(late[Math.floor(0.9 * late.length)]).toBeLessThan(300);
  }, 90_000);
});
