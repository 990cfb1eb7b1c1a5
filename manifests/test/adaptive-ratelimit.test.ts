// adaptive-ratelimit's manifests: valid by Istio's and Envoy's schemas; the config they carry loads.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { parseAllDocuments } from "yaml";
import { Envoy } from "../../runtime/host/src/index.js";
import { wasmPath } from "../../runtime/host/test/helpers.js";
import { validateMessage } from "../lib/envoy-proto.js";
import { validateIstio } from "../lib/istio.js";
import { asPinned } from "../lib/checks.js";

const load = (rel: string) => parseAllDocuments(readFileSync(new URL(`../${rel}`, import.meta.url), "utf8")).map((d) => d.toJS());
const wasm = readFileSync(wasmPath("adaptive-ratelimit"));
const loads = (config: string) => new Envoy({ workers: 1 }).addPlugin({ name: "a", rootId: "adaptive-ratelimit", wasm, configuration: config });

describe("adaptive-ratelimit manifests", () => {
  test("the EnvoyFilter is valid, selects workloads, fails open, and its config loads", () => {
    const [ef] = load("adaptive-ratelimit/istio.yaml");
    expect(() => validateIstio(ef)).not.toThrow();
    expect(ef.spec.workloadSelector.labels).toEqual({ app: "checkout" });
    const patch = ef.spec.configPatches[0];
    expect(patch.match.context).toBe("SIDECAR_INBOUND");
    expect(validateMessage("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", patch.patch.value)).toEqual([]);
    const config = patch.patch.value.typed_config.config;
    expect(config.failure_policy).toBe("FAIL_OPEN");
    expect(() => loads(config.configuration.value)).not.toThrow();
  });

  test("the WasmPlugin is valid and its pluginConfig loads", () => {
    const [wp] = load("adaptive-ratelimit/wasmplugin.yaml");
    expect(() => validateIstio(asPinned(wp))).not.toThrow();
    expect(wp.spec.failStrategy).toBe("FAIL_OPEN");
    expect(() => loads(JSON.stringify(wp.spec.pluginConfig))).not.toThrow();
  });

  test("the standalone bootstrap is a valid Bootstrap", () => {
    const [b] = load("envoy/adaptive-ratelimit.yaml");
    expect(validateMessage("envoy.config.bootstrap.v3.Bootstrap", b)).toEqual([]);
  });
});
