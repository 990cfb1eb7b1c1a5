// podip-router's shipped original-dst mode: the ORIGINAL_DST cluster must route on the header
// hand-off (Envoy reads x-envoy-original-dst-host only with use_http_header), and its mTLS must
// accept only the target service's identity, not every workload of the trust domain (istiod,
// other namespaces).
import { describe, expect, test } from "vitest";
import { parseAllDocuments } from "yaml";
import { renderAll } from "../src/render.js";

const docs = (file: string) => parseAllDocuments(renderAll().get(file)!).map((d) => d.toJS() as any);
const clusterOf = (ef: any) => ef.spec.configPatches.find((p: any) => p.applyTo === "CLUSTER").patch.value;

describe("podip-router original-dst mode (manifests/podip-router/istio-original-dst.yaml)", () => {
  const cluster = clusterOf(docs("podip-router/istio-original-dst.yaml")[0]);
  test("the ORIGINAL_DST cluster reads the header hand-off", () => {
    expect(cluster.type).toBe("ORIGINAL_DST");
    expect(cluster.original_dst_lb_config).toEqual({ use_http_header: true });
  });
  test("its mTLS accepts exactly the target services' SPIFFE ids, no prefix", () => {
    const sans = cluster.transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names;
    expect(sans.length).toBeGreaterThan(0);
    for (const s of sans) {
      expect(s.san_type).toBe("URI");
      expect(Object.keys(s.matcher)).toEqual(["exact"]);
      expect(s.matcher.exact).toMatch(/^spiffe:\/\/[^/]+\/ns\/[^/]+\/sa\/[^/]+$/);
    }
  });
  test("the standalone bootstraps' ORIGINAL_DST clusters read the header too", () => {
    for (const file of ["envoy/podip-router.yaml", "envoy/envoy.yaml"]) {
      const c = docs(file)[0].static_resources.clusters.find((x: any) => x.type === "ORIGINAL_DST");
      expect(c.original_dst_lb_config, file).toEqual({ use_http_header: true });
    }
  });
});

describe("podip-router's authorisation and shipping", () => {
  const session = docs("podip-router/istio-session.yaml");
  const wp = docs("podip-router/wasmplugin.yaml");
  const guardOf = (list: any[]) => list.find((d) => d.kind === "EnvoyFilter" && d.metadata.name === "podip-router-auth-guard");

  test.each([["istio-session.yaml", session], ["wasmplugin.yaml", wp]])("%s removes every client copy of the authorisation header first on the gateway", (_f, list) => {
    const g = guardOf(list);
    expect(g.spec.workloadSelector.labels).toEqual(list.find((d: any) => d.metadata.name !== "podip-router-auth-guard").spec.workloadSelector?.labels ?? list.find((d: any) => d.kind === "WasmPlugin").spec.selector.matchLabels);
    const p = g.spec.configPatches[0];
    expect([p.applyTo, p.match.context, p.patch.operation]).toEqual(["HTTP_FILTER", "GATEWAY", "INSERT_FIRST"]);
    expect(p.patch.value.typed_config.mutations.request_mutations).toEqual([{ remove: "x-ops-authenticated" }]);
  });

  test("the example trusts no source range (a load balancer's SNAT address lands in any private range)", () => {
    const wasm = wp.find((d: any) => d.kind === "WasmPlugin");
    expect(wasm.spec.pluginConfig.authorization).toEqual({ header: "x-ops-authenticated" });
  });

  test("wasmplugin.yaml carries the strict session filter on its own: applying it never loads podip-router twice", () => {
    const efs = wp.filter((d: any) => d.kind === "EnvoyFilter" && d.metadata.name !== "podip-router-auth-guard");
    expect(efs.map((d: any) => d.metadata.name)).toEqual(["podip-router-session"]);
    const values = efs[0].spec.configPatches.map((p: any) => p.patch.value.name);
    expect(values).toEqual(["envoy.filters.http.stateful_session"]);
  });

  test("the fail-closed WasmPlugin runs on a dedicated pin gateway: a failed fetch cannot close the shared ingress gateway", () => {
    const wasm = wp.find((d: any) => d.kind === "WasmPlugin");
    expect(wasm.spec.failStrategy).toBe("FAIL_CLOSE");
    expect(wasm.spec.selector.matchLabels).not.toEqual({ istio: "ingressgateway" });
    for (const d of wp) expect(d.metadata.namespace).toBe("istio-system");
  });
});
