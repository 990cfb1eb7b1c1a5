// env-router's generated manifests: committed output equals the generator's; every resource is
// valid by Istio's and Envoy's schemas; and the pieces agree with each other and with the filter.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { parseAllDocuments } from "yaml";
import { Envoy } from "../../runtime/host/src/index.js";
import { wasmPath } from "../../runtime/host/test/helpers.js";
import { validateMessage } from "../lib/envoy-proto.js";
import { validateIstio } from "../lib/istio.js";
import { asPinned } from "../lib/checks.js";
import { EXAMPLE, subsetName } from "../src/env-router.js";
import { PROXY_VERSION_REGEX } from "../src/wasm.js";
import { renderAll } from "../src/render.js";

const rendered = renderAll();
const load = (rel: string) => parseAllDocuments(readFileSync(new URL(`../${rel}`, import.meta.url), "utf8")).map((d) => d.toJS());
const wasm = readFileSync(wasmPath("env-router"));

test.each([...rendered.keys()])("committed manifests/%s is what the generator renders (run `npm run manifests`)", (rel) => {
  expect(readFileSync(new URL(`../${rel}`, import.meta.url), "utf8")).toBe(rendered.get(rel));
});

describe("manifests/env-router/istio.yaml", () => {
  const docs = load("env-router/istio.yaml");

  test.each(docs.map((d) => [`${d.kind} ${d.metadata.name}`, d]))("%s is valid by Istio's schema", (_n, doc) => {
    expect(() => validateIstio(doc)).not.toThrow();
  });

  test("every VirtualService routes on the route header, default last, to subsets its DestinationRule defines", () => {
    for (const service of Object.keys(EXAMPLE.services)) {
      const vs = docs.find((d) => d.kind === "VirtualService" && d.metadata.name === `${service}-env`);
      const dr = docs.find((d) => d.kind === "DestinationRule" && d.metadata.name === `${service}-env`);
      const subsets = dr.spec.subsets.map((s: any) => s.name);
      const routes = vs.spec.http;
      expect(routes[routes.length - 1].match).toBeUndefined();
      expect(routes[routes.length - 1].route[0].destination.subset).toBe("default");
      for (const r of routes) expect(subsets).toContain(r.route[0].destination.subset);
      for (const env of EXAMPLE.services[service].filter((e) => e !== "default")) {
        const r = routes.find((x: any) => x.match?.[0].headers["x-env-route"].exact === env);
        expect(r.route[0].destination.subset).toBe(subsetName(env));
        expect(dr.spec.subsets.find((s: any) => s.name === subsetName(env)).labels.env).toBe(env);
      }
    }
  });

  test("subset names are DNS labels even for dotted envs", () => {
    expect(subsetName("feature-x.team-a")).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(subsetName("feature-x.team-a")).not.toBe(subsetName("feature-x-team-a"));
  });

  // The wasm placements (the trust guard is checked below).
  const filters = docs.filter((d) => d.kind === "EnvoyFilter" && !["env-router-trust-guard", "env-router-health-fallback"].includes(d.metadata.name));
  test.each(filters.map((d) => [d.metadata.name, d]))("EnvoyFilter %s: selector, proxy version, a valid HttpFilter the module accepts", (_n, ef) => {
    expect(Object.keys(ef.spec.workloadSelector.labels).length).toBeGreaterThan(0);
    const patch = ef.spec.configPatches[0];
    expect(patch.match.proxy.proxyVersion).toBe(PROXY_VERSION_REGEX);
    expect(patch.match.listener.filterChain.filter.subFilter.name).toBe("envoy.filters.http.router");
    expect(patch.patch.operation).toBe("INSERT_BEFORE");
    expect(validateMessage("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", patch.patch.value)).toEqual([]);
    const config = patch.patch.value.typed_config.config;
    expect(config.root_id).toBe("env-router");
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({ name: config.name, rootId: config.root_id, wasm, configuration: config.configuration.value })).not.toThrow();
  });
});

describe("manifests/env-router/wasmplugin.yaml", () => {
  const docs = load("env-router/wasmplugin.yaml").filter((d) => d.kind === "WasmPlugin");
  test.each(docs.map((d) => [d.metadata.name, d]))("WasmPlugin %s is valid and its pluginConfig loads", (_n, wp) => {
    expect(() => validateIstio(asPinned(wp))).not.toThrow();
    expect(wp.spec.pluginName).toBe("env-router");
    expect(Object.keys(wp.spec.selector.matchLabels).length).toBeGreaterThan(0);
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({ name: wp.metadata.name, rootId: wp.spec.pluginName, wasm, configuration: JSON.stringify(wp.spec.pluginConfig) })).not.toThrow();
  });
});

describe("manifests/envoy/env-router.yaml (standalone)", () => {
  const [bootstrap] = load("envoy/env-router.yaml");

  test("is a valid envoy.config.bootstrap.v3.Bootstrap", () => {
    expect(validateMessage("envoy.config.bootstrap.v3.Bootstrap", bootstrap)).toEqual([]);
  });

  test("its route table sends each decision of the filter to that env's cluster (through the env's health fallback)", async () => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const plugin = hcm.http_filters[0].typed_config.config;
    const envoy = new Envoy({ workers: 1 });
    envoy.addPlugin({ name: plugin.name, rootId: plugin.root_id, wasm, configuration: plugin.configuration.value });
    const clusters = new Set(bootstrap.static_resources.clusters.map((c: any) => c.name));
    const route = (authority: string, headers: Array<[string, string]>) => {
      const host = authority.split(":")[0];
      const vh = hcm.route_config.virtual_hosts.find((v: any) => v.domains.includes(host) || v.domains.includes(authority));
      return vh.routes.find((r: any) => (r.match.headers ?? []).every((h: any) => headers.some(([k, v]) => k === h.name && v === h.string_match.exact))).route.cluster;
    };
    // [authority, tag, the cluster the route picks, the clusters it tries in order of health]
    const cases: Array<[string, string, string, string[]]> = [
      ["reviews:9080", "feature-x", "reviews.feature-x.fallback", ["reviews.feature-x", "reviews.default"]],
      ["ratings", "feature-x", "ratings.default", ["ratings.default"]],
      ["ratings", "feature-x.team-a", "ratings.team-a.fallback", ["ratings.team-a", "ratings.default"]],
      ["details", "team-a", "details.default", ["details.default"]],
    ];
    const byName = new Map(bootstrap.static_resources.clusters.map((c: any) => [c.name, c]));
    for (const [authority, env, cluster, tried] of cases) {
      const res = await envoy.request({ authority, headers: [["x-env", env]] });
      const chosen = route(authority, res.upstream!.headers);
      expect(chosen).toBe(cluster);
      expect(clusters.has(chosen)).toBe(true);
      const c: any = byName.get(chosen);
      const order = c.cluster_type ? c.cluster_type.typed_config.clusters : [chosen];
      expect(order).toEqual(tried);
      for (const name of order) expect((byName.get(name) as any).health_checks.length).toBe(1);
    }
  });
});

describe("env-router at the gateway: resources that attach, and a trust header only a trusted hop can set", () => {
  const all = [...load("env-router/istio.yaml"), ...load("env-router/wasmplugin.yaml")];
  const gatewayResources = all.filter((d: any) => JSON.stringify(d.spec?.workloadSelector?.labels ?? d.spec?.selector?.matchLabels ?? {}) === JSON.stringify({ istio: "ingressgateway" }));

  test("every resource selecting the ingress gateway lives in the gateway's namespace (a selector reaches only its own namespace)", () => {
    expect(gatewayResources.length).toBeGreaterThanOrEqual(3);
    for (const d of gatewayResources) expect(`${d.kind} ${d.metadata.name}: ${d.metadata.namespace}`).toBe(`${d.kind} ${d.metadata.name}: istio-system`);
  });

  const gatewayConfig = (d: any) => JSON.parse(d.kind === "WasmPlugin" ? JSON.stringify(d.spec.pluginConfig) : d.spec.configPatches[0].patch.value.typed_config.config.configuration.value);
  test("the example trusts no source range (a load balancer's SNAT address lands in any private range)", () => {
    for (const d of gatewayResources.filter((x: any) => x.metadata.name === "env-router-gateway")) {
      expect(gatewayConfig(d).trust.source_cidrs).toBeUndefined();
      expect(gatewayConfig(d).trust.header).toBe("x-env-trusted");
    }
  });

  test("a guard removes every client copy of the trust header first on the gateway, before any authenticator or wasm filter", () => {
    const guard = all.find((d: any) => d.kind === "EnvoyFilter" && d.metadata.name === "env-router-trust-guard");
    expect(guard.metadata.namespace).toBe("istio-system");
    const p = guard.spec.configPatches[0];
    expect(p.applyTo).toBe("HTTP_FILTER");
    expect(p.match.context).toBe("GATEWAY");
    expect(p.patch.operation).toBe("INSERT_FIRST");
    expect(p.patch.value.typed_config.mutations.request_mutations).toEqual([{ remove: "x-env-trusted" }]);
    expect(() => validateIstio(guard)).not.toThrow();
    expect(validateMessage("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", p.patch.value)).toEqual([]);
  });
});

describe("env-router's health-aware fallback in Istio (EnvoyFilter env-router-health-fallback)", () => {
  const docs = load("env-router/istio.yaml");
  const ef = docs.find((d: any) => d.metadata.name === "env-router-health-fallback");
  test("for every test env of every service, an aggregate cluster over the env's chain of subsets and the env's route pointed at it", () => {
    expect(ef.spec.workloadSelector.labels).toEqual(EXAMPLE.sidecarSelector);
    for (const service of Object.keys(EXAMPLE.services)) {
      const host = `${service}.bookinfo.svc.cluster.local`;
      const vs = docs.find((d: any) => d.kind === "VirtualService" && d.metadata.name === `${service}-env`);
      const dr = docs.find((d: any) => d.kind === "DestinationRule" && d.metadata.name === `${service}-env`);
      for (const env of EXAMPLE.services[service].filter((e) => e !== "default")) {
        const route = ef.spec.configPatches.find((p: any) => p.applyTo === "HTTP_ROUTE" && p.match.routeConfiguration.vhost.name === `${host}:9080` && p.match.routeConfiguration.vhost.route.name === `env-${subsetName(env)}`);
        expect(route, `${service} ${env}`).toBeDefined();
        expect(vs.spec.http.map((r: any) => r.name)).toContain(`env-${subsetName(env)}`);
        const add = ef.spec.configPatches.find((p: any) => p.applyTo === "CLUSTER" && p.patch.value.name === route.patch.value.route.cluster);
        const chain = add.patch.value.cluster_type.typed_config.clusters as string[];
        expect(chain[0]).toBe(`outbound|9080|${subsetName(env)}|${host}`);
        expect(chain[chain.length - 1]).toBe(`outbound|9080|default|${host}`);
        for (const c of chain) expect(dr.spec.subsets.map((x: any) => x.name)).toContain(c.split("|")[2]);
      }
      expect(dr.spec.trafficPolicy.outlierDetection.consecutive5xxErrors).toBeGreaterThan(0);
    }
  });
});
