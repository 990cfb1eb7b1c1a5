// The kind target cannot run here (no Docker), but what it deploys is checked like every shipped
// manifest: Istio's schemas, Envoy's protos, placement rules, filter schemas and on_configure.
import { describe, expect, test } from "vitest";
import { checkDocument } from "../../manifests/lib/checks.js";
import { istioResources, kubernetesResources, SERVICES } from "./resources.js";
import { EXAMPLE, wasmPlugins as shippedEnv } from "../../manifests/src/env-router.js";
import { EXAMPLE as podipExample, wasmPlugins as shippedPodip } from "../../manifests/src/podip-router.js";

const digests = Object.fromEntries(["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router"].map((f, i) => [f, String(i).repeat(64)]));
const istio = istioResources(digests, "kind-registry:5000/suite") as any[];

describe("kind target resources", () => {
  test("every Gateway host and every host of a VirtualService bound to a gateway is a fully qualified name (Istio refuses short ones there)", () => {
    const hosts = istio.flatMap((d) => d.kind === "Gateway" ? d.spec.servers.flatMap((s: any) => s.hosts)
      : d.kind === "VirtualService" && (d.spec.gateways ?? []).some((g: string) => g !== "mesh") ? d.spec.hosts : []);
    expect(hosts.length).toBeGreaterThan(0);
    expect(hosts.filter((h: string) => !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(h))).toEqual([]);
  });

  test("every image is pinned to a version", () => {
    const images = (kubernetesResources("") as any[]).flatMap((d) => d.spec?.template?.spec?.containers?.map((c: any) => c.image) ?? []);
    expect(images.length).toBeGreaterThan(0);
    expect(images.filter((i: string) => !/:\d+\.\d+\.\d+/.test(i))).toEqual([]);
  });

  test.each(istio.map((d, i) => [`${d.kind} ${d.metadata.name}`, d, i]))("%s passes the manifests checks", (_n, doc, i) => {
    expect(checkDocument(doc, `istio[${i}]`)).toEqual([]);
  });

  test("env-router's and podip-router's resources are the shipped generators' (same names, namespaces and placements as manifests/)", () => {
    const names = (list: any[]) => list.map((d) => `${d.kind} ${d.metadata.namespace}/${d.metadata.name}`);
    const shipped = [...names(shippedEnv(EXAMPLE)), ...names(shippedPodip({ ...podipExample, pinGatewaySelector: podipExample.gatewaySelector }))]
      .map((n) => n.replace("/bookinfo/", "/e2e/").replace(" bookinfo/", " e2e/"));
    const kind = names(istio);
    for (const n of shipped.filter((x) => x.includes("WasmPlugin") || x.includes("health-fallback") || x.includes("podip-router-session"))) expect(kind).toContain(n);
  });

  test("WasmPlugins are pinned to the pushed digests", () => {
    for (const d of istio.filter((x) => x.kind === "WasmPlugin")) {
      expect(d.spec.url).toBe(`oci://kind-registry:5000/suite/${d.spec.pluginName}@sha256:${digests[d.spec.pluginName]}`);
      expect(d.spec.sha256).toBe(digests[d.spec.pluginName]);
    }
  });

  test("every service has a Service and a Deployment per env whose pods match the DestinationRule subsets", () => {
    const k8s = kubernetesResources("// echo") as any[];
    for (const [service, envs] of Object.entries(SERVICES)) {
      expect(k8s.some((d) => d.kind === "Service" && d.metadata.name === service && d.spec.selector.app === service)).toBe(true);
      const dr = istio.find((d) => d.kind === "DestinationRule" && d.metadata.name === `${service}-env`);
      for (const env of envs) {
        const dep = k8s.find((d) => d.kind === "Deployment" && d.metadata.name === `${service}-${env}`);
        expect(dep.spec.template.metadata.labels).toMatchObject({ app: service, env, "env-router": "enabled" });
        expect(dep.spec.selector.matchLabels).toEqual({ app: service, env });
        expect(dr.spec.subsets.some((s: any) => s.labels.env === env)).toBe(true);
      }
    }
  });
});
