// Runtime traps and failure policies: reference section 1.9 (and the 1.33/1.35 deltas, section 6).
import { describe, expect, test } from "vitest";
import { withFixture } from "./helpers.js";

const trap: [string, string] = ["x-fixture-action", "trap"];

describe("the trap itself", () => {
  test("Envoy's log line, then a backtrace with function names from the name section", async () => {
    const { envoy } = withFixture({ workers: 1 });
    await envoy.request({ headers: [trap] });
    const errors = envoy.logsAt("error");
    expect(errors[0]).toBe("Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable");
    const lines = errors[1].split("\n");
    expect(lines[0]).toBe("Proxy-Wasm plugin in-VM backtrace:");
    // The optimiser inlines the abort handler, so the top frame is the filter's own method.
    expect(lines[1]).toMatch(/^ {2}0: {2}0x[0-9a-f]+ - .*FixtureStream#onRequestHeaders$/);
    // The build shortens the SDK's path prefix to "sdk:" (scripts/build.mjs, shortName).
    expect(lines[2]).toMatch(/^ {2}1: {2}0x[0-9a-f]+ - sdk:exports\/proxy_on_request_headers$/);
    // proxy-runtime's abort handler logs the message at critical before proc_exit.
    expect(envoy.logsAt("critical")[0]).toContain("fixture trap in on_request_headers");
  });

  test("Envoy 1.35+: the trapping stream gets 503 with details wasm_fail_stream and gRPC status 14", async () => {
    const { envoy } = withFixture({ workers: 1, version: "1.35" });
    const res = await envoy.request({ headers: [trap] });
    expect(res.status).toBe(503);
    expect(res.details).toBe("wasm_fail_stream");
    expect(res.grpcStatus).toBe(14);
    expect(res.body).toBe("");
    expect(res.upstream).toBeNull();
  });

  test("Envoy <= 1.34: the 503 never reaches the client (issue #38801)", async () => {
    const { envoy } = withFixture({ workers: 1, version: "1.34" });
    const res = await envoy.request({ headers: [trap] });
    expect(res.hung).toBe(true);
    expect(res.status).toBe(0);
  });

  test("a trap in a response callback replaces the response with the 503", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ headers: [["x-fixture-action", "trap-response"]] });
    expect(res.upstream).not.toBeNull();
    expect(res.status).toBe(503);
    expect(res.details).toBe("wasm_fail_stream");
  });

  test("other workers' VMs are unaffected", async () => {
    const { envoy, fixture } = withFixture({ workers: 2 });
    await envoy.request({ worker: 0, headers: [trap] });
    expect(fixture.workerVms[0]!.failed).toBe(true);
    const res = await envoy.request({ worker: 1 });
    expect(res.status).toBe(200);
    expect(res.header("x-fixture-context")).toBe("2");
  });
});

describe("later streams on the failed worker", () => {
  test("FAIL_CLOSED: every later request gets the 503 and the VM is not called again", async () => {
    const { envoy } = withFixture({ workers: 1, traceCalls: true }, { failurePolicy: "FAIL_CLOSED" });
    await envoy.request({ headers: [trap] });
    envoy.calls!.length = 0;
    const res = await envoy.request({});
    expect(res.status).toBe(503);
    expect(res.details).toBe("wasm_fail_stream");
    expect(envoy.calls).toEqual([]);
  });

  test("unset failure policy behaves as FAIL_CLOSED (proto and code, not the 1.33 changelog)", async () => {
    const { envoy } = withFixture({ workers: 1 });
    await envoy.request({ headers: [trap] });
    expect((await envoy.request({})).status).toBe(503);
  });

  test("FAIL_OPEN: the trapping stream still fails closed; later streams skip the filter", async () => {
    const { envoy } = withFixture({ workers: 1 }, { failurePolicy: "FAIL_OPEN" });
    expect((await envoy.request({ headers: [trap] })).status).toBe(503);
    const res = await envoy.request({});
    expect(res.status).toBe(200);
    expect(res.upstream!.header("x-fixture-count")).toBeUndefined();
    expect(res.header("x-fixture-context")).toBeUndefined();
  });

  test("legacy fail_open: true: even the trapping stream continues without the filter", async () => {
    const { envoy } = withFixture({ workers: 1 }, { failOpen: true });
    const res = await envoy.request({ headers: [trap] });
    expect(res.status).toBe(200);
    expect(res.upstream).not.toBeNull();
    expect(res.header("x-fixture-context")).toBeUndefined();
  });

  test("FAIL_RELOAD: fail closed within the backoff, then a fresh VM with new memory and a fresh configure", async () => {
    const { envoy, fixture } = withFixture({ workers: 1, traceCalls: true }, { failurePolicy: "FAIL_RELOAD", reloadBackoffMs: 1000 });
    await envoy.request({ headers: [["x-fixture-action", "shared"]] });
    const before = fixture.workerVms[0]!;
    await envoy.request({ headers: [trap] });
    expect((await envoy.request({})).status).toBe(503);
    await envoy.advance(1000);
    envoy.calls!.length = 0;
    const res = await envoy.request({ headers: [["x-fixture-action", "shared"]] });
    expect(res.status).toBe(200);
    expect(fixture.workerVms[0]).not.toBe(before);
    expect(envoy.calls!.slice(0, 3).map((c) => c.name)).toEqual(["proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure"]);
    // In-VM state is lost (stream ids restart at 2); shared data survives (the counter goes on).
    expect(res.header("x-fixture-context")).toBe("2");
    expect(res.upstream!.header("x-fixture-hits")).toBe("2");
    expect(envoy.metric("wasm.fixture-plugin.vm_reload_success")).toBe(1);
  });

  test("Envoy 1.28-1.32: the VM is never restarted", async () => {
    const { envoy } = withFixture({ workers: 1, version: "1.30" });
    await envoy.request({ headers: [trap] });
    await envoy.advance(60_000);
    const res = await envoy.request({});
    expect(res.hung).toBe(true);
  });

  test("a failed VM gets no more on_tick", async () => {
    const { envoy, fixture } = withFixture({ workers: 1 }, { configuration: `{"tick_ms": 10}` });
    await envoy.request({ headers: [trap] });
    const vm = fixture.workerVms[0]!;
    const calls = vm.hostcalls;
    await envoy.advance(100);
    expect(vm.hostcalls).toBe(calls);
  });
});
