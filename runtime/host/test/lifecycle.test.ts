// Lifecycle: reference sections 1.3 (VM topology), 1.4 (root start-up), 1.5 (rejection),
// 1.6 (per-stream order), 1.7 (shutdown).
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../src/index.js";
import { readFileSync } from "node:fs";
import { fixtureWasm, wasmPath } from "./helpers.js";

function traced(workers = 2) {
  const envoy = new Envoy({ workers, traceCalls: true });
  const plugin = envoy.addPlugin({ name: "p", rootId: "fixture", vmId: "vm", wasm: fixtureWasm(), configuration: "{}" });
  return { envoy, plugin, calls: envoy.calls! };
}

describe("VM topology and root start-up (1.3, 1.4)", () => {
  test("on_vm_start and on_configure run N+1 times: the canary, then each of N workers", () => {
    const { calls } = traced(3);
    const starts = calls.filter((c) => c.name === "proxy_on_vm_start").map((c) => c.worker);
    const configures = calls.filter((c) => c.name === "proxy_on_configure").map((c) => c.worker);
    expect(starts).toEqual(["canary", 0, 1, 2]);
    expect(configures).toEqual(["canary", 0, 1, 2]);
    // The base VM never gets a root context.
    expect(calls.some((c) => c.worker === "base")).toBe(false);
  });

  test("root start-up order is context_create(root, 0), vm_start, configure; the root id is 1", () => {
    const { calls } = traced(1);
    const worker0 = calls.filter((c) => c.worker === 0).map((c) => `${c.name}(${c.args.join(",")})`);
    expect(worker0).toEqual(["proxy_on_context_create(1,0)", "proxy_on_vm_start(1,0)", "proxy_on_configure(1,2)"]);
  });

  test("each worker VM has its own linear memory", () => {
    const { envoy, plugin } = traced(2);
    const [a, b] = plugin.workerVms;
    expect(a!.memory).not.toBe(b!.memory);
    expect(envoy.memoryPages(plugin).every((p) => p >= 1)).toBe(true);
  });
});

describe("rejection (1.5)", () => {
  test("on_configure returning false rejects the plugin, with the filter's one critical line naming the field", () => {
    const envoy = new Envoy();
    expect(() => envoy.addPlugin({ name: "p", rootId: "fixture", wasm: fixtureWasm(), configuration: `{"tick_ms": -5}` }))
      .toThrow(PluginLoadError);
    const critical = envoy.logsAt("critical");
    expect(critical[0]).toBe("wasm log fixture: fixture: tick_ms: must be >= 0, got -5");
    expect(critical[1]).toBe("Failed to configure base Wasm plugin p");
    expect(envoy.plugins).toHaveLength(0);
  });

  test("an unknown configuration field is rejected, not ignored", () => {
    const envoy = new Envoy();
    expect(() => envoy.addPlugin({ name: "p", rootId: "fixture", wasm: fixtureWasm(), configuration: `{"tick": 5}` })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical")[0]).toContain("tick: unknown field");
  });

  test("malformed JSON is rejected with the offset", () => {
    const envoy = new Envoy();
    expect(() => envoy.addPlugin({ name: "p", rootId: "fixture", wasm: fixtureWasm(), configuration: `{"tick_ms": }` })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical")[0]).toContain("invalid JSON at offset 12");
  });

  test("a trap during on_configure rejects the plugin", () => {
    const envoy = new Envoy();
    expect(() => envoy.addPlugin({ name: "p", rootId: "fixture", wasm: fixtureWasm(), configuration: `{"trap_on_configure": true}` }))
      .toThrow(/Unable to create Wasm plugin p: trap/);
    expect(envoy.logsAt("error")[0]).toBe("Function: proxy_on_configure failed: Uncaught RuntimeError: unreachable");
  });

  test("a root_id the module never registered traps in on_context_create (proxy-runtime throws)", () => {
    const envoy = new Envoy();
    expect(() => envoy.addPlugin({ name: "p", rootId: "nope", wasm: fixtureWasm() })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical").join("\n")).toContain("Missing root context factory for root id: nope");
  });

  test("fail_open and failure_policy together are rejected", () => {
    const envoy = new Envoy();
    expect(() => envoy.addPlugin({ name: "p", rootId: "fixture", wasm: fixtureWasm(), failOpen: true, failurePolicy: "FAIL_OPEN" }))
      .toThrow("only one of fail_open or failure_policy can be set");
  });

  test("failure_policy does not exist before Envoy 1.33", () => {
    const envoy = new Envoy({ version: "1.32" });
    expect(() => envoy.addPlugin({ name: "p", rootId: "fixture", wasm: fixtureWasm(), failurePolicy: "FAIL_OPEN" })).toThrow(/added in 1.33/);
  });
});

describe("per-stream order (1.6)", () => {
  test("create, headers, body, trailers, response side, then log, done, delete", async () => {
    const { envoy, calls } = traced(1);
    calls.length = 0;
    await envoy.request({
      method: "POST", body: "abc", trailers: [["x-t", "1"]],
      upstream: () => ({ status: 200, body: "xyz", trailers: [["x-rt", "2"]] }),
    });
    expect(calls.map((c) => c.name)).toEqual([
      "proxy_on_context_create", "proxy_on_request_headers", "proxy_on_request_body", "proxy_on_request_trailers",
      "proxy_on_response_headers", "proxy_on_response_body", "proxy_on_response_trailers",
      "proxy_on_log", "proxy_on_done", "proxy_on_delete",
    ]);
    expect(calls[0].args).toEqual([2, 1]);
    // end_of_stream is 0 on headers when a body follows, and 0 on the body when trailers follow.
    // Four entries (:authority, :path, :method, :scheme), end_of_stream 0.
    expect(calls[1].args).toEqual([2, 4, 0]);
    expect(calls[2].args).toEqual([2, 3, 0]);
  });

  test("stream context ids are per VM, start at 2 and are never reused", async () => {
    const { envoy, calls } = traced(2);
    calls.length = 0;
    for (let i = 0; i < 3; i++) await envoy.request({ worker: 0 });
    await envoy.request({ worker: 1 });
    const creates = calls.filter((c) => c.name === "proxy_on_context_create").map((c) => `${c.worker}:${c.args[0]}`);
    expect(creates).toEqual(["0:2", "0:3", "0:4", "1:2"]);
  });

  test("a body-less request gets end_of_stream on headers and no body callback", async () => {
    const { envoy, calls } = traced(1);
    calls.length = 0;
    await envoy.request({});
    expect(calls.find((c) => c.name === "proxy_on_request_headers")!.args[2]).toBe(1);
    expect(calls.some((c) => c.name === "proxy_on_request_body")).toBe(false);
  });

  test("when an earlier filter answers locally, a later filter still gets create, log, done, delete but no request or response callbacks", async () => {
    const envoy = new Envoy({ workers: 1, traceCalls: true });
    const first = envoy.addPlugin({ name: "first", rootId: "fixture", wasm: fixtureWasm() });
    const second = envoy.addPlugin({ name: "second", rootId: "add_header", wasm: readFileSync(wasmPath("sdk-readme")) });
    envoy.calls!.length = 0;
    const res = await envoy.request({ headers: [["x-fixture-action", "local"]], filters: [first, second] });
    expect(res.status).toBe(403);
    expect(res.header("hello")).toBeUndefined();
    expect(envoy.calls!.filter((c) => c.plugin === "second").map((c) => c.name))
      .toEqual(["proxy_on_context_create", "proxy_on_log", "proxy_on_done", "proxy_on_delete"]);
  });
});

describe("shutdown (1.7)", () => {
  test("removing a plugin calls on_done then on_delete on every worker root", () => {
    const { envoy, plugin, calls } = traced(2);
    calls.length = 0;
    envoy.removePlugin(plugin);
    expect(calls.map((c) => `${c.worker}:${c.name}(${c.args[0]})`)).toEqual([
      "0:proxy_on_done(1)", "0:proxy_on_delete(1)", "1:proxy_on_done(1)", "1:proxy_on_delete(1)",
    ]);
  });
});
