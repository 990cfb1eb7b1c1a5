import { readFileSync } from "node:fs";
import { test } from "vitest";
import { Envoy } from "/work/main/runtime/host/src/index.js";
test("dbg", async () => {
  const envoy = new Envoy({ workers: 2, logLevel: "info" });
  envoy.addPlugin({ name: "adaptive-ratelimit", rootId: "adaptive-ratelimit", vmId: "arl", wasm: readFileSync("/work/main/dist/adaptive-ratelimit.wasm"), configuration: JSON.stringify({ tick_ms: 100, rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 50, setpoint_ms: 100, max_rate: 250 } }] }) });
  const pending: Promise<unknown>[] = [];
  const t0 = envoy.nowMs();
  for (let i = 0; i < 2000; i++) {
    const at = i * 5;
    envoy.at(t0 + at, () => { pending.push(envoy.request({ path: "/api/x", worker: i % 2, upstream: async () => { await envoy.sleep(i % 5 < 3 ? 40 : 300); return { status: 200 }; } }).then((r) => { if (r.status != 200) console.log(at, r.status, r.body, i % 2); })); });
  }
  for (let t = 0; t < 30; t++) { await envoy.advance(100); const m = (n: string) => envoy.metric("adaptive_ratelimit.api." + n); console.log(envoy.nowMs() - t0, "limit", m("limit"), "inflight", m("inflight"), m("inflight_limit"), "measured", m("measured_milli")); }
  await envoy.advance(8000);
  await Promise.all(pending);
});
