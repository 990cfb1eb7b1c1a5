// The short memory soak of `npm test`: every scenario of fuzz/soak-scenarios.ts (each filter's
// realistic mix and its worst case) with a small budget. The long run is `npm run soak`.
// Growth after warm-up at this budget means a leak of at least ~64 KiB per few thousand requests:
// in Envoy that never comes back, on every worker of every pod.
import { describe, expect, it } from "vitest";
import { SCENARIOS, soak } from "./soak-scenarios.js";

const BUDGET = Number(process.env.SOAK_REQUESTS ?? 25_000);

describe("memory soak (short budget)", () => {
  for (const s of SCENARIOS) {
    // The largest-headers case costs ~50x a plain request in this host: a tenth of the budget.
    const requests = s.filter === "header-normalizer" ? Math.floor(BUDGET / 10) : BUDGET;
    it(`${s.name}: no trap, pages flat after warm-up over ${requests} requests`, async () => {
      const r = await soak(s, requests, Math.floor(requests / 10));
      expect(r.trapped).toBe(false);
      expect(r.samples).toHaveLength(10);
      expect(r.growthAfterWarmup, `pages per sample: ${r.samples.join(" ")}`).toBe(0);
      // Every request got a decision a client would see (no 5xx made by the filter itself
      // other than the upstream's own 503s, which the scenarios inject).
      const decided = Object.entries(r.statuses).reduce((n, [status, count]) => n + (Number(status) >= 200 && Number(status) < 600 ? count : 0), 0);
      expect(decided).toBe(requests);
      for (const status of s.exercises ?? []) expect(r.statuses[status] ?? 0, `status ${status} never seen`).toBeGreaterThan(0);
    }, 120_000);
  }

  it("the soak catches a leak: a module keeping 1 KiB per request fails the verdict", async () => {
    const leaky = {
      name: "fixture leaking 1 KiB per request", filter: "fixture", wasm: "dist/fixtures/fixture.wasm", rootId: "fixture", configuration: {},
      request: () => ({ path: "/", headers: [["x-fixture-action", "leak"]] as Array<[string, string]> }),
      response: () => ({ status: 200 }), stepMs: 1,
    };
    const r = await soak(leaky, 2000, 200);
    expect(r.trapped).toBe(false);
    // 1 KiB x 1,600 requests after warm-up = 25 pages at least.
    expect(r.growthAfterWarmup).toBeGreaterThanOrEqual(20);
  });

  it("the worst case really is the largest request head Envoy admits by default", async () => {
    const { ENVOY_MAX_HEADERS_BYTES, ENVOY_MAX_HEADERS_COUNT } = await import("./soak-scenarios.js");
    const s = SCENARIOS.find((x) => x.filter === "header-normalizer")!;
    const headers = s.request(123).headers as Array<[string, string]>;
    const bytes = headers.reduce((n, [k, v]) => n + k.length + v.length, 0);
    expect(headers.length).toBeLessThanOrEqual(ENVOY_MAX_HEADERS_COUNT);
    expect(headers.length).toBeGreaterThanOrEqual(ENVOY_MAX_HEADERS_COUNT - 4);
    expect(bytes).toBeLessThanOrEqual(ENVOY_MAX_HEADERS_BYTES);
    expect(bytes).toBeGreaterThan(ENVOY_MAX_HEADERS_BYTES - 2048);
  });
});
