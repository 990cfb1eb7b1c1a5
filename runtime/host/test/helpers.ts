import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Envoy, EnvoyOptions, PluginConfig } from "../src/index.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

const FIXTURES = new Set(["fixture", "noop", "sdk-readme"]);

/** Path of a built module: a filter in dist/, a fixture in dist/fixtures/. */
export function wasmPath(name: string): string {
  return FIXTURES.has(name) ? `${root}dist/fixtures/${name}.wasm` : `${root}dist/${name}.wasm`;
}

export const fixtureWasm = (): Buffer => readFileSync(wasmPath("fixture"));

/** An Envoy with the fixture filter loaded. */
export function withFixture(opts: EnvoyOptions = {}, plugin: Partial<PluginConfig> = {}) {
  const envoy = new Envoy(opts);
  const fixture = envoy.addPlugin({ name: "fixture-plugin", rootId: "fixture", vmId: "vm1", wasm: fixtureWasm(), configuration: "{}", ...plugin });
  return { envoy, fixture };
}

import wabtInit from "wabt";

/** Compiles WebAssembly text to a binary, for hand-made modules that probe link rules. */
export async function wat(text: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat("probe.wat", text);
  try {
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

/** A minimal valid 0.2.1 module; `extra` adds imports/exports/functions inside the module. */
export function probeModule(extra = "", abi = "proxy_abi_version_0_2_1"): string {
  return `(module
    ${extra}
    (memory (export "memory") 1)
    (func (export "malloc") (param i32) (result i32) (i32.const 1024))
    (func (export "${abi}"))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  )`;
}
