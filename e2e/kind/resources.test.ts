// The kind target cannot run here (no Docker), but what it deploys is checked like every shipped
// manifest: Istio's schemas, Envoy's protos, placement rules, filter schemas and on_configure.
import { describe, expect, test } from "vitest";
import { checkDocument } from "../../manifests/lib/checks.js";
import { validateIstio } from "../../manifests/lib/istio.js";
import { CRASH_GATEWAYS, GATEWAYS, istioOperator, istioResources, kubernetesResources, SERVICES } from "./resources.js";
import { EXAMPLE, wasmPlugins as shippedEnv } from "../../manifests/src/env-router.js";
import { EXAMPLE as podipExample, wasmPlugins as shippedPodip } from "../../manifests/src/podip-router.js";

const digests = Object.fromEntries(["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router", "fixture"].map((f, i) => [f, String(i).repeat(64)]));
const istio = istioResources(digests, "kind-registry:5000/suite") as any[];
const isFixture = (d: any) => d.kind === "WasmPlugin" && d.spec.pluginName === "fixture";
/** The resources that select gateway pods labelled istio=<label>. */
const selecting = (label: string) => istio.filter((d) => (d.spec.selector?.matchLabels ?? d.spec.workloadSelector?.labels ?? (d.kind === "Gateway" ? d.spec.selector : undefined))?.istio === label);

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

  test.each(istio.map((d, i) => [`${d.kind} ${d.metadata.name}`, d, i]).filter(([, d]) => !isFixture(d)))("%s passes the manifests checks", (_n, doc, i) => {
    expect(checkDocument(doc, `istio[${i}]`)).toEqual([]);
  });

  test("the crash fixture's WasmPlugins (not a suite filter) pass Istio's schema", () => {
    const fixtures = istio.filter(isFixture);
    expect(fixtures.length).toBe(3);
    for (const d of fixtures) expect(() => validateIstio(d)).not.toThrow();
  });

  test("the control gateway has the routes and none of the suite's resources", () => {
    expect(selecting(GATEWAYS.control.label).map((d) => d.kind)).toEqual(["Gateway"]);
    expect(selecting(GATEWAYS.suite.label).filter((d) => d.kind === "WasmPlugin").map((d) => d.spec.pluginName).sort())
      .toEqual(["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router"]);
  });

  test("each crash gateway runs only the fixture, under its own failure policy, with one worker", () => {
    const policies = CRASH_GATEWAYS.map((g) => {
      const on = selecting(g.label);
      expect(on.map((d) => d.kind).sort()).toEqual(["Gateway", "WasmPlugin"]);
      return on.find(isFixture).spec.failStrategy;
    });
    expect(policies).toEqual(["FAIL_OPEN", "FAIL_CLOSE", "FAIL_RELOAD"]);
    const gateways = (istioOperator() as any).spec.components.ingressGateways;
    for (const g of CRASH_GATEWAYS) {
      expect(gateways.find((x: any) => x.label?.istio === g.label).k8s.podAnnotations["proxy.istio.io/config"]).toBe("concurrency: 1");
    }
    expect(gateways.map((x: any) => x.name)).toContain("istio-ingressgateway");
  });

  test("every VirtualService bound to the suite's gateway is bound to the control and crash gateways too", () => {
    const bound = istio.filter((d) => d.kind === "VirtualService" && d.spec.gateways?.includes(GATEWAYS.suite.gateway));
    expect(bound.length).toBe(Object.keys(SERVICES).length);
    for (const vs of bound) expect(vs.spec.gateways).toEqual(expect.arrayContaining([GATEWAYS.control.gateway, ...CRASH_GATEWAYS.map((g) => g.gateway)]));
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
