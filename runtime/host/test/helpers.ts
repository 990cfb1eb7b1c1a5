import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Envoy, EnvoyOptions, PluginConfig } from "../src/index.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

export function wasmPath(name: string): string {
  return name === "fixture" || name === "noop" ? `${root}dist/fixtures/${name}.wasm` : `${root}dist/${name}.wasm`;
}

export const fixtureWasm = (): Buffer => readFileSync(wasmPath("fixture"));

/** An Envoy with the fixture filter loaded. */
export function withFixture(opts: EnvoyOptions = {}, plugin: Partial<PluginConfig> = {}) {
  const envoy = new Envoy(opts);
  const fixture = envoy.addPlugin({ name: "fixture-plugin", rootId: "fixture", vmId: "vm1", wasm: fixtureWasm(), configuration: "{}", ...plugin });
  return { envoy, fixture };
}
