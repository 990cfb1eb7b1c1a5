// Logs (2.5), metrics (2.15), properties (2.10).
import { describe, expect, test } from "vitest";
import { Envoy } from "../src/index.js";
import { fixtureWasm, withFixture } from "./helpers.js";

const action = (a: string): [string, string] => ["x-fixture-action", a];

describe("logging (2.5)", () => {
  test("stream logs carry ' <plugin name> <root_id> <vm_id>'; root logs omit the plugin name", async () => {
    const { envoy } = withFixture({ workers: 1, logLevel: "debug" });
    await envoy.request({ headers: [action("log-debug")] });
    expect(envoy.logsAt("debug")).toContain("wasm log fixture-plugin fixture vm1: fixture debug on stream 2");
  });

  test("with the wasm logger at info, a guarded debug log makes no hostcall at all", async () => {
    const { envoy, fixture } = withFixture({ workers: 1, logLevel: "info" });
    const vm = fixture.workerVms[0]!;
    await envoy.request({ headers: [action("log-debug")] });
    const logsBefore = vm.hostcallsByName.get("proxy_log") ?? 0;
    await envoy.request({ headers: [action("log-debug")] });
    expect(vm.hostcallsByName.get("proxy_log") ?? 0).toBe(logsBefore);
    expect(envoy.logsAt("debug")).toEqual([]);
  });

  test("the cached level follows Envoy's level after the next tick", async () => {
    const { envoy } = withFixture({ workers: 1, logLevel: "info" }, { configuration: `{"tick_ms": 10}` });
    envoy.logLevel = "debug";
    await envoy.advance(10);
    await envoy.request({ headers: [action("log-debug")] });
    expect(envoy.logsAt("debug").some((l) => l.includes("fixture debug on stream"))).toBe(true);
  });
});

describe("metrics (2.15)", () => {
  test("the same metric name on every worker is one stat: counters aggregate process-wide", async () => {
    const { envoy } = withFixture({ workers: 2 });
    for (let i = 0; i < 5; i++) await envoy.request({});
    expect(envoy.metric("fixture_requests")).toBe(5);
    // The gauge went +1 on request headers and -1 on response headers for each request.
    expect(envoy.metric("fixture_inflight")).toBe(0);
  });

  test("histograms record samples and cannot be read back as a value", async () => {
    const { envoy } = withFixture({ workers: 1 });
    await envoy.request({ upstream: () => ({ status: 200, body: "12345" }) });
    expect(envoy.metrics.snapshot()["fixture_request_bytes"].samples).toEqual([5]);
    expect(envoy.metric("fixture_request_bytes")).toBeUndefined();
  });

  test("a module reads a counter back with proxy_get_metric", async () => {
    const { envoy } = withFixture({ workers: 1 });
    await envoy.request({});
    const r = await envoy.request({ headers: [action("metrics-read")] });
    expect(r.upstream!.header("x-fixture-requests")).toBe("2");
  });

  test("counter increments must be positive; histograms refuse increments", () => {
    const envoy = new Envoy();
    envoy.metrics.define("c", "counter");
    envoy.metrics.define("h", "histogram");
    expect(envoy.metrics.increment("c", 0n)).toBe(false);
    expect(envoy.metrics.increment("c", -1n)).toBe(false);
    expect(envoy.metrics.increment("c", 2n)).toBe(true);
    expect(envoy.metrics.increment("h", 1n)).toBe(false);
  });
});

describe("properties (2.10)", () => {
  async function property(path: string, spec: Parameters<Envoy["request"]>[0] = {}) {
    const { envoy } = withFixture({ workers: 1 });
    const extra = Array.isArray(spec.headers) ? spec.headers : [];
    const r = await envoy.request({ ...spec, headers: [action("property"), ["x-fixture-property", path], ...extra] });
    return r.upstream!.header("x-fixture-property-value");
  }

  test("plugin and request properties", async () => {
    expect(await property("plugin_name")).toBe("fixture-plugin");
    expect(await property("plugin_root_id")).toBe("fixture");
    expect(await property("plugin_vm_id")).toBe("vm1");
    expect(await property("request.path", { path: "/a?b=1" })).toBe("/a?b=1");
    expect(await property("request.url_path", { path: "/a?b=1" })).toBe("/a");
    expect(await property("request.host", { authority: "svc.ns" })).toBe("svc.ns");
    expect(await property("source.address", { source: "10.1.2.3:5555" })).toBe("10.1.2.3:5555");
    expect(await property("connection.uri_san_peer_certificate", { connection: { uriSanPeerCertificate: "spiffe://cluster.local/ns/a/sa/b" } }))
      .toBe("spiffe://cluster.local/ns/a/sa/b");
  });

  test("request.headers.<name> is every value joined with a comma", async () => {
    expect(await property("request.headers.x-a", { headers: [["x-a", "1"], ["x-a", "2"]] })).toBe("1,2");
  });

  test("a missing property is NotFound, which the patched SDK no longer turns into a trap", async () => {
    expect(await property("connection.requested_server_name")).toBe("<absent>");
    expect(await property("no.such.thing")).toBe("<absent>");
  });

  test("node metadata keys are readable", async () => {
    const envoy = new Envoy({ workers: 1, node: { metadata: { CLUSTER_ID: "east" } } });
    envoy.addPlugin({ name: "p", rootId: "fixture", wasm: fixtureWasm() });
    const r = await envoy.request({ headers: [action("property"), ["x-fixture-property", "xds.node.metadata.CLUSTER_ID"]] });
    expect(r.upstream!.header("x-fixture-property-value")).toBe("east");
  });

  test("set_property stores filter state readable by its name", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const r = await envoy.request({ headers: [action("set-property")] });
    expect(r.upstream!.header("x-fixture-rc")).toBe("0");
    expect(r.upstream!.header("x-fixture-state")).toBe("hello");
  });

  test("the clear_route_cache foreign function exists from 1.33 only", async () => {
    for (const [version, rc] of [["1.32", "1"], ["1.33", "0"]]) {
      const { envoy } = withFixture({ workers: 1, version });
      const r = await envoy.request({ headers: [action("route-cache")] });
      expect(r.upstream!.header("x-fixture-rc")).toBe(rc);
    }
  });
});
