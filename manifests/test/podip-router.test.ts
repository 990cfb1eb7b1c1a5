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
