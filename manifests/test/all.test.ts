// Every rendered manifest, whatever the filter, passes every check; and a deliberately broken
// fixture for each check proves the check can fail.
import { describe, expect, test } from "vitest";
import { parseAllDocuments } from "yaml";
import { checkDocument } from "../lib/checks.js";
import { renderAll } from "../src/render.js";

const rendered = [...renderAll()].flatMap(([file, text]) =>
  parseAllDocuments(text).map((d, i) => ({ file, index: i, doc: d.toJS() as any })));

test("the generator renders manifests for every filter of the suite", () => {
  const filters = new Set<string>();
  for (const { doc } of rendered) {
    const name = doc?.metadata?.labels?.["filter-suite/filter"];
    if (name) filters.add(name);
  }
  expect([...filters].sort()).toEqual(["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router"]);
});

describe.each(rendered.map((r) => [`${r.file}#${r.index} ${r.doc?.kind ?? "Bootstrap"} ${r.doc?.metadata?.name ?? ""}`, r]))("%s", (_name, r) => {
  test("passes every check", () => {
    expect(checkDocument(r.doc, `${r.file}#${r.index}`)).toEqual([]);
  });
});

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));
const first = (kind: string, filter?: string) =>
  clone(rendered.find((r) => r.doc?.kind === kind && (!filter || r.doc.metadata.labels?.["filter-suite/filter"] === filter) && r.doc.spec?.configPatches?.[0]?.applyTo !== "CLUSTER" && (kind !== "EnvoyFilter" || r.doc.spec.configPatches[0].patch.value?.typed_config?.config))!.doc);
const wasmPatchConfig = (ef: any) => ef.spec.configPatches[0].patch.value.typed_config.config;

describe("broken fixtures: each check can fail", () => {
  const cases: Array<[string, () => any, RegExp]> = [
    ["EnvoyFilter without workloadSelector", () => { const d = first("EnvoyFilter", "env-router"); delete d.spec.workloadSelector; return d; }, /without workloadSelector/],
    ["a typo in applyTo (Istio's schema)", () => { const d = first("EnvoyFilter", "env-router"); d.spec.configPatches[0].applyTo = "HTTP_FILTR"; return d; }, /Istio schema/],
    ["an unknown field in a patch value (Envoy's protos)", () => { const d = first("EnvoyFilter", "env-router"); d.spec.configPatches[0].patch.value.typed_config.config.vm_config.vmid = "x"; return d; }, /unknown field of envoy\.extensions\.wasm\.v3\.VmConfig/],
    ["an unknown field in an EnvoyFilter spec (Istio's CRD, strict as kubectl apply)", () => { const d = first("EnvoyFilter", "env-router"); d.spec.configPatches[0].match.proxyy = {}; return d; }, /Istio schema[\s\S]*proxyy/],
    ["no proxyVersion match", () => { const d = first("EnvoyFilter", "env-router"); delete d.spec.configPatches[0].match.proxy; return d; }, /proxyVersion must be/],
    ["a configuration the schema refuses", () => { const d = first("EnvoyFilter", "header-normalizer"); wasmPatchConfig(d).configuration.value = JSON.stringify({ dryrun: true }); return d; }, /config\.schema\.json: \/ must NOT have additional properties/],
    ["a configuration the schema allows but the filter refuses", () => { const d = first("EnvoyFilter", "podip-router"); const c = wasmPatchConfig(d); const v = JSON.parse(c.configuration.value); v.allowed_cidrs = ["10.8.0.1/16"]; c.configuration.value = JSON.stringify(v); return d; }, /the filter refuses this configuration: .*allowed_cidrs\[0\]: not a canonical CIDR/],
    ["a root_id that is not one of the suite's filters", () => { const d = first("EnvoyFilter", "env-router"); wasmPatchConfig(d).root_id = "env_router"; return d; }, /is not a filter of the suite/],
    ["no failure policy", () => { const d = first("EnvoyFilter", "env-router"); delete wasmPatchConfig(d).failure_policy; return d; }, /no deliberate failure policy/],
    ["a configuration that is not a StringValue", () => { const d = first("EnvoyFilter", "env-router"); wasmPatchConfig(d).configuration["@type"] = "type.googleapis.com/google.protobuf.Struct"; return d; }, /must be a StringValue/],
    ["WasmPlugin without selector", () => { const d = first("WasmPlugin", "env-router"); delete d.spec.selector; return d; }, /without selector or targetRefs/],
    ["WasmPlugin pluginConfig the schema refuses", () => { const d = first("WasmPlugin", "env-router"); d.spec.pluginConfig = { mode: "sideways" }; return d; }, /config\.schema\.json/],
    ["a bootstrap with a misspelt field", () => { const d = clone(rendered.find((r) => r.file === "envoy/envoy.yaml")!.doc); d.static_resources.clusters[0].conect_timeout = "1s"; return d; }, /unknown field of envoy\.config\.cluster\.v3\.Cluster/],
    ["a bootstrap filter configuration the filter refuses", () => {
      const d = clone(rendered.find((r) => r.file === "envoy/envoy.yaml")!.doc);
      const f = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find((h: any) => h.name === "adaptive-ratelimit");
      f.typed_config.config.configuration.value = JSON.stringify({ rules: [{ name: "api", controller: { signal: "latency", setpoint_ms: 200, min_rate: 9, max_rate: 1 } }] });
      return d;
    }, /min_rate: must be <= max_rate/],
  ];
  test.each(cases)("%s", (_name, make, expected) => {
    const problems = checkDocument(make(), "fixture");
    expect(problems.join("\n")).toMatch(expected);
  });
});
