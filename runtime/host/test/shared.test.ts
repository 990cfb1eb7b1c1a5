// Cross-worker state: shared data (2.11), queues (2.12), ticks (2.6).
import { describe, expect, test } from "vitest";
import { Envoy } from "../src/index.js";
import { fixtureWasm, withFixture } from "./helpers.js";

const action = (a: string): [string, string] => ["x-fixture-action", a];

describe("shared data (2.11)", () => {
  test("every worker VM with the same vm_id sees one store: a CAS counter counts all requests", async () => {
    const { envoy } = withFixture({ workers: 3 });
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await envoy.request({ worker: i % 3, headers: [action("shared")] });
      seen.push(r.upstream!.header("x-fixture-hits")!);
    }
    expect(seen).toEqual(["1", "2", "3", "4", "5", "6"]);
  });

  test("a different vm_id is a different namespace", async () => {
    const envoy = new Envoy({ workers: 1 });
    const a = envoy.addPlugin({ name: "a", rootId: "fixture", vmId: "one", wasm: fixtureWasm() });
    const b = envoy.addPlugin({ name: "b", rootId: "fixture", vmId: "two", wasm: fixtureWasm() });
    await envoy.request({ filters: [a], headers: [action("shared")] });
    const r = await envoy.request({ filters: [b], headers: [action("shared")] });
    expect(r.upstream!.header("x-fixture-hits")).toBe("1");
  });

  test("a stale CAS loses with CasMismatch", async () => {
    const { envoy } = withFixture({ workers: 1 });
    await envoy.request({ headers: [action("cas-stale")] }); // creates the key
    const r = await envoy.request({ headers: [action("cas-stale")] });
    expect(r.upstream!.header("x-fixture-rc")).toBe("8");
  });

  test("a set with a nonzero CAS on an absent key succeeds; the CAS counter is global", () => {
    const envoy = new Envoy();
    expect(envoy.sharedData.set("vm", "k", Buffer.from("x"), 999)).toBe(true);
    envoy.sharedData.set("other", "k", Buffer.from("y"), 0);
    expect(envoy.sharedData.get("vm", "k")!.cas).toBe(1);
    expect(envoy.sharedData.get("other", "k")!.cas).toBe(2);
    expect(envoy.sharedData.set("vm", "k", Buffer.from("z"), 2)).toBe(false);
    expect(envoy.sharedData.set("vm", "k", Buffer.from("z"), 1)).toBe(true);
  });
});

describe("ticks (2.6)", () => {
  test("each worker ticks independently, first one period after on_configure set the timer", async () => {
    const { envoy } = withFixture({ workers: 2, traceCalls: true }, { configuration: `{"tick_ms": 1000}` });
    const ticks = () => envoy.calls!.filter((c) => c.name === "proxy_on_tick").map((c) => c.worker);
    await envoy.advance(999);
    expect(ticks()).toEqual([]);
    await envoy.advance(1);
    expect(ticks().sort()).toEqual([0, 1]);
    await envoy.advance(2000);
    expect(ticks()).toHaveLength(6);
    // The canary's timer died with the canary.
    expect(ticks()).not.toContain("canary");
  });

  test("the clock the module reads is the virtual clock", async () => {
    const { envoy } = withFixture({ workers: 1, startTimeMs: 1_700_000_000_000 });
    await envoy.advance(1500);
    const r = await envoy.request({ headers: [action("time")] });
    expect(r.upstream!.header("x-fixture-time")).toBe(String(1_700_000_001_500n * 1_000_000n));
  });
});

describe("shared queues (2.12)", () => {
  test("with every worker registering the same queue, only the last registrant gets on_queue_ready, asynchronously", async () => {
    const { envoy } = withFixture({ workers: 2, traceCalls: true }, { configuration: `{"queue": "fixture-queue"}` });
    const r = await envoy.request({ worker: 0, headers: [action("enqueue")] });
    expect(r.upstream!.header("x-fixture-rc")).toBe("0");
    await envoy.settle();
    expect(envoy.calls!.filter((c) => c.name === "proxy_on_queue_ready").map((c) => c.worker)).toEqual([1]);
    expect(envoy.logsAt("info")).toContain("wasm log fixture vm1: queue message: hello from 2");
  });

  test("resolving an unregistered queue is NotFound", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const r = await envoy.request({ headers: [action("enqueue")] });
    expect(r.upstream!.header("x-fixture-rc")).toBe("notfound");
  });
});
