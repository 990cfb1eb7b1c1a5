// The case-preservation manifests, checked against the schemas Istio and Envoy use:
// Istio's own CRD schema for the EnvoyFilter resource, Envoy's protos for every Envoy message.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { Envoy } from "../../runtime/host/src/index.js";
import { wasmPath } from "../../runtime/host/test/helpers.js";
import { validateMessage } from "../lib/envoy-proto.js";
import { validateIstio } from "../lib/istio.js";

const read = (rel: string) => parse(readFileSync(new URL(`../${rel}`, import.meta.url), "utf8"));
const PRESERVE_CASE = "type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig";

function preserveCase(headerKeyFormat: any): boolean {
  const f = headerKeyFormat?.stateful_formatter;
  return f?.name === "preserve_case" && f.typed_config?.["@type"] === PRESERVE_CASE && f.typed_config.formatter_type_on_envoy_headers === "PROPER_CASE";
}

describe("the validator itself", () => {
  test("a complete message must carry what Envoy requires; a MERGE fragment need not", () => {
    const hcm = { "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", stat_prefix: "x" };
    expect(validateMessage("google.protobuf.Any", hcm, "hcm")).toEqual([
      "hcm: one of oneof 'route_specifier' (rds, route_config, scoped_routes) is required by envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    ]);
    expect(validateMessage("google.protobuf.Any", hcm, "hcm", { partial: true })).toEqual([]);
  });

  test("catches a misspelt field, a bad enum value, an unknown type URL and a oneof set twice", () => {
    const hcm = (formatter: object) => ({
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      stat_prefix: "x",
      http_protocol_options: { header_key_format: formatter },
    });
    const any = (v: object) => validateMessage("google.protobuf.Any", v, "hcm", { partial: true });
    expect(any(hcm({ stateful_formatter: { name: "preserve_case", typed_config: { "@type": PRESERVE_CASE, formatter_type_on_envoy_header: "PROPER_CASE" } } })))
      .toEqual([`hcm.http_protocol_options.header_key_format.stateful_formatter.typed_config.formatter_type_on_envoy_header: unknown field of envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig`]);
    expect(any(hcm({ stateful_formatter: { name: "preserve_case", typed_config: { "@type": PRESERVE_CASE, formatter_type_on_envoy_headers: "UPPER" } } }))[0])
      .toMatch(/"UPPER" is not a value of FormatterTypeOnEnvoyHeaders/);
    expect(any(hcm({ stateful_formatter: { name: "preserve_case", typed_config: { "@type": "type.googleapis.com/envoy.nope.v3.Nope" } } }))[0])
      .toMatch(/unknown type URL/);
    expect(any(hcm({ proper_case_words: {}, stateful_formatter: { name: "x", typed_config: { "@type": PRESERVE_CASE } } }))[0])
      .toMatch(/only one of oneof 'header_format'/);
  });
});

describe("manifests/envoy/header-normalizer.yaml (standalone Envoy)", () => {
  const bootstrap = read("envoy/header-normalizer.yaml");

  test("is a valid envoy.config.bootstrap.v3.Bootstrap", () => {
    expect(validateMessage("envoy.config.bootstrap.v3.Bootstrap", bootstrap)).toEqual([]);
  });

  const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;

  test("preserve_case is set on the connection manager and on the cluster", () => {
    expect(preserveCase(hcm.http_protocol_options.header_key_format)).toBe(true);
    const opts = bootstrap.static_resources.clusters[0].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    expect(preserveCase(opts.explicit_http_config.http_protocol_options.header_key_format)).toBe(true);
  });

  test("the wasm filter runs before the router, with the root_id the module registers and a config it accepts", () => {
    const names = hcm.http_filters.map((f: any) => f.name);
    expect(names).toEqual(["header-normalizer", "envoy.filters.http.router"]);
    const plugin = hcm.http_filters[0].typed_config.config;
    expect(plugin.failure_policy).toBe("FAIL_OPEN");
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({
      name: plugin.name, rootId: plugin.root_id, vmId: plugin.vm_config.vm_id,
      wasm: readFileSync(wasmPath("header-normalizer")), configuration: plugin.configuration.value,
    })).not.toThrow();
  });
});

describe("manifests/header-normalizer/preserve-case.envoyfilter.yaml (Istio before 1.25)", () => {
  const efs = parseAllDocuments(readFileSync(new URL("../header-normalizer/preserve-case.envoyfilter.yaml", import.meta.url), "utf8")).map((d) => d.toJS() as any);
  const patches = efs.flatMap((ef: any) => ef.spec.configPatches.map((p: any) => ({ ef, p })));

  test("three valid Istio EnvoyFilters with workload selectors: the app, its callers, the gateway", () => {
    expect(efs.map((ef: any) => ef.metadata.name)).toEqual(["header-normalizer-preserve-case-app", "header-normalizer-preserve-case-callers", "header-normalizer-preserve-case-gateway"]);
    for (const ef of efs) {
      expect(() => validateIstio(ef)).not.toThrow();
      expect(Object.keys(ef.spec.workloadSelector.labels).length).toBeGreaterThan(0);
    }
  });

  test("the gateway's resource lives in the gateway's namespace (a selector reaches only its own namespace)", () => {
    expect(efs[2].metadata.namespace).toBe("istio-system");
    expect(efs[2].spec.workloadSelector.labels).toEqual({ istio: "ingressgateway" });
  });

  test("each hop patches the connection manager of the app's port and the app's cluster", () => {
    const kinds = patches.map(({ p }: any) => `${p.applyTo}/${p.match.context}`).sort();
    expect(kinds).toEqual(["CLUSTER/GATEWAY", "CLUSTER/SIDECAR_INBOUND", "CLUSTER/SIDECAR_OUTBOUND", "NETWORK_FILTER/GATEWAY", "NETWORK_FILTER/SIDECAR_INBOUND", "NETWORK_FILTER/SIDECAR_OUTBOUND"]);
  });

  test("no patch reaches beyond the app: every CLUSTER patch names its port (and, outbound, the app's host); every connection manager patch its listener port", () => {
    for (const { p } of patches) {
      if (p.applyTo === "CLUSTER") {
        expect(p.match.cluster?.portNumber, JSON.stringify(p.match)).toBe(8080);
        if (p.match.context !== "SIDECAR_INBOUND") expect(p.match.cluster.service).toBe("legacy-app.default.svc.cluster.local");
      } else {
        expect(p.match.listener.portNumber, JSON.stringify(p.match)).toBe(8080);
      }
    }
  });

  test.each([0, 1, 2, 3, 4, 5])("patch %i is a valid Envoy message of the type it patches, with preserve_case", (i) => {
    const { p: patch } = patches[i];
    const type = patch.applyTo === "CLUSTER" ? "envoy.config.cluster.v3.Cluster" : "envoy.config.listener.v3.Filter";
    expect(patch.patch.operation).toBe("MERGE");
    expect(validateMessage(type, patch.patch.value, `configPatches[${i}].patch.value`, { partial: true })).toEqual([]);
    const v = patch.patch.value;
    const format = patch.applyTo === "CLUSTER"
      ? v.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http_protocol_options.header_key_format
      : v.typed_config.http_protocol_options.header_key_format;
    expect(preserveCase(format)).toBe(true);
  });
});
