// Link-time strictness: reference section 1.1 (exports) and 1.2 (imports).
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../src/index.js";
import { fixtureWasm, probeModule, wat } from "./helpers.js";

async function load(text: string, version = "1.36") {
  const envoy = new Envoy({ version });
  return envoy.addPlugin({ name: "probe", wasm: await wat(text) });
}

describe("imports (section 1.2)", () => {
  test("a module using only provided imports loads", async () => {
    await expect(load(probeModule(`(import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))`))).resolves.toBeDefined();
  });

  test("AssemblyScript's default env.abort is not provided: the load fails naming it", async () => {
    const text = probeModule(`(import "env" "abort" (func (param i32 i32 i32 i32)))`);
    await expect(load(text)).rejects.toThrow("missing import: env.abort");
    await expect(load(text)).rejects.toBeInstanceOf(PluginLoadError);
  });

  test("proxy_clear_route_cache exists only for ABI 0.1.0, so a 0.2.x module importing it is rejected", async () => {
    await expect(load(probeModule(`(import "env" "proxy_clear_route_cache" (func (result i32)))`))).rejects.toThrow("env.proxy_clear_route_cache");
  });

  test("proxy_get_log_level is provided for 0.2.1 but not for 0.2.0", async () => {
    const imp = `(import "env" "proxy_get_log_level" (func (param i32) (result i32)))`;
    await expect(load(probeModule(imp))).resolves.toBeDefined();
    await expect(load(probeModule(imp, "proxy_abi_version_0_2_0"))).rejects.toThrow("env.proxy_get_log_level");
  });

  test("a signature mismatch fails the load (proxy-runtime's 10-argument proxy_grpc_call)", async () => {
    const imp = `(import "env" "proxy_grpc_call" (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))`;
    await expect(load(probeModule(imp))).rejects.toThrow("import type mismatch: env.proxy_grpc_call");
  });

  test("WASI sched_yield is provided from Envoy 1.33 only, under both WASI module names", async () => {
    for (const mod of ["wasi_unstable", "wasi_snapshot_preview1"]) {
      const imp = `(import "${mod}" "sched_yield" (func (result i32)))`;
      await expect(load(probeModule(imp), "1.32")).rejects.toThrow(`${mod}.sched_yield`);
      await expect(load(probeModule(imp), "1.33")).resolves.toBeDefined();
    }
  });

  test("global imports are rejected", async () => {
    await expect(load(probeModule(`(import "env" "g" (global i32))`))).rejects.toThrow("missing import: env.g");
  });
});

describe("exports (section 1.1)", () => {
  test("no ABI version export", async () => {
    await expect(load(probeModule("", "not_an_abi_marker"))).rejects.toThrow("Missing or unknown Proxy-Wasm ABI version");
  });

  test("two ABI version exports", async () => {
    await expect(load(probeModule(`(func (export "proxy_abi_version_0_2_0"))`))).rejects.toThrow("More than one Proxy-Wasm ABI version");
  });

  test("no malloc nor proxy_on_memory_allocate", async () => {
    const text = probeModule().replace(`(func (export "malloc") (param i32) (result i32) (i32.const 1024))`, "");
    await expect(load(text)).rejects.toThrow("missing malloc");
  });

  test("proxy_on_memory_allocate is accepted instead of malloc", async () => {
    const text = probeModule().replace(`(export "malloc")`, `(export "proxy_on_memory_allocate")`);
    await expect(load(text)).resolves.toBeDefined();
  });

  test("a 0.1.0-style two-argument proxy_on_request_headers has a bad signature", async () => {
    const text = probeModule(`(func (export "proxy_on_request_headers") (param i32 i32) (result i32) (i32.const 0))`);
    await expect(load(text)).rejects.toThrow("Bad function signature for: proxy_on_request_headers");
  });
});

describe("start-up restrictions (section 1.8)", () => {
  test("a proxy_* hostcall other than proxy_log during _start traps the load", async () => {
    const text = probeModule(`
      (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
      (func (export "_start") (drop (call $tick (i32.const 10))))`);
    await expect(load(text)).rejects.toThrow("restricted_callback");
  });

  test("proxy_log during _start is allowed", async () => {
    const text = probeModule(`
      (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
      (func (export "_start") (drop (call $log (i32.const 2) (i32.const 0) (i32.const 0))))`);
    await expect(load(text)).resolves.toBeDefined();
  });
});

test("the fixture (built with the suite's toolchain) links against every emulated Envoy version", () => {
  for (const version of ["1.28", "1.32", "1.33", "1.36"]) {
    const envoy = new Envoy({ version });
    expect(() => envoy.addPlugin({ name: "f", rootId: "fixture", wasm: fixtureWasm() })).not.toThrow();
  }
});
