// Everything the kind target deploys, as plain objects: the echo services (node:20.19.0-alpine
// running the bundled echo from a ConfigMap), an ingress Gateway, per service a DestinationRule
// (subset per env label) and a VirtualService on x-env-route for both the mesh and the ingress,
// the four filters as WasmPlugins pinned to the images `npm run package` pushed, and Envoy's
// strict stateful_session on the ingress gateway for podip-router. env-router's and
// podip-router's resources come from the shipped generators (manifests/src), with kind's values.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { wasmPlugin } from "../../manifests/src/wasm.js";
import { EnvRouterSpec, destinationRule, healthFallbackEnvoyFilter, virtualService, wasmPlugins as envWasmPlugins } from "../../manifests/src/env-router.js";
import { SESSION_HEADER, PIN_HEADER, wasmPlugins as podipWasmPlugins } from "../../manifests/src/podip-router.js";
import { preserveCaseEnvoyFilters } from "../../manifests/src/header-normalizer.js";

export const NS = "e2e";
/**
 * The kind target's ingress gateways: the suite's (`istio: ingressgateway`, every suite filter),
 * the control (the same routes, none of the suite's resources on it), and one per failure policy
 * running the crash fixture (one worker each, so that the request after a trap meets the VM that
 * trapped). Each has its own Gateway resource; every VirtualService bound to the suite's is bound
 * to all of them.
 */
export const GATEWAYS = {
  suite: { gateway: "e2e", label: "ingressgateway", deployment: "istio-ingressgateway", port: 18080, role: "suite" },
  control: { gateway: "e2e-control", label: "control-gateway", deployment: "control-gateway", port: 18081, role: "control" },
} as const;
export const CRASH_POLICIES = ["FAIL_OPEN", "FAIL_CLOSE", "FAIL_RELOAD"] as const;
export type CrashPolicy = (typeof CRASH_POLICIES)[number];
export const crashGateway = (policy: CrashPolicy, i: number) => {
  const name = `crash-${policy.toLowerCase().replace("_", "-")}`;
  return { gateway: `e2e-${name}`, label: name, deployment: name, port: 18082 + i, policy, role: policy };
};
export const CRASH_GATEWAYS = CRASH_POLICIES.map(crashGateway);
/** Every gateway; `role` is what run.sh does with its port-forward (suite, control, or a crash policy). */
export const ALL_GATEWAYS = [GATEWAYS.suite, GATEWAYS.control, ...CRASH_GATEWAYS];

/**
 * The IstioOperator run.sh installs: the demo profile, the agent allowed to pull from the
 * in-cluster registry over plain HTTP, and the extra gateways (ClusterIP: kind has no load
 * balancer; the crash gateways with one worker).
 */
export function istioOperator(): Record<string, unknown> {
  const extra = (g: { label: string; deployment: string }, workers?: number) => ({
    name: g.deployment, enabled: true, label: { istio: g.label },
    k8s: { service: { type: "ClusterIP", ports: [{ name: "http2", port: 80, targetPort: 8080 }] }, ...(workers ? { podAnnotations: { "proxy.istio.io/config": `concurrency: ${workers}` } } : {}) },
  });
  return {
    apiVersion: "install.istio.io/v1alpha1", kind: "IstioOperator",
    spec: {
      profile: "demo",
      meshConfig: { defaultConfig: { proxyMetadata: { WASM_INSECURE_REGISTRIES: "kind-registry:5000" } } },
      components: {
        // A list in the overlay replaces the profile's: the demo's own gateway is named again.
        ingressGateways: [{ name: GATEWAYS.suite.deployment, enabled: true }, extra(GATEWAYS.control), ...CRASH_GATEWAYS.map((g) => extra(g, 1))],
      },
    },
  };
}
export const SERVICES: Record<string, string[]> = { reviews: ["default", "feature-x"], ratings: ["default"], details: ["default", "feature-x"], web: ["default"] };
export const WEB_REPLICAS = 3;
export const POD_CIDR = "10.244.0.0/16";

/** The manifest digest of a packaged filter image (dist/oci/<filter>/index.json). */
export function imageDigest(root: string, filter: string): string {
  const index = JSON.parse(readFileSync(join(root, "dist", "oci", filter, "index.json"), "utf8"));
  return index.manifests[0].digest.replace("sha256:", "");
}

function deployment(service: string, env: string, replicas: number): Record<string, unknown> {
  return {
    apiVersion: "apps/v1", kind: "Deployment",
    metadata: { name: `${service}-${env}`, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: service, env } },
      template: {
        metadata: { labels: { app: service, env, "env-router": "enabled" } },
        spec: {
          containers: [{
            name: "echo", image: "node:20.19.0-alpine", command: ["node", "/echo/echo.mjs"], ports: [{ containerPort: 8080 }],
            env: [{ name: "ECHO_SERVICE", value: service }, { name: "ECHO_ENV", value: env }, { name: "ECHO_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }],
            volumeMounts: [{ name: "echo", mountPath: "/echo" }],
          }],
          volumes: [{ name: "echo", configMap: { name: "echo" } }],
        },
      },
    },
  };
}

export function kubernetesResources(echoJs: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: { "istio-injection": "enabled" } } },
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "echo", namespace: NS }, data: { "echo.mjs": echoJs } },
  ];
  for (const [service, envs] of Object.entries(SERVICES)) {
    out.push({ apiVersion: "v1", kind: "Service", metadata: { name: service, namespace: NS }, spec: { selector: { app: service }, ports: [{ name: "http", port: 8080 }] } });
    for (const env of envs) out.push(deployment(service, env, service === "web" ? WEB_REPLICAS : 1));
  }
  return out;
}

export function istioResources(digests: Record<string, string>, registry: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = ALL_GATEWAYS.map((g) => ({
    apiVersion: "networking.istio.io/v1", kind: "Gateway", metadata: { name: g.gateway, namespace: NS },
    // FQDNs: Istio refuses short host names on a Gateway and on the VirtualServices bound to it.
    spec: { selector: { istio: g.label }, servers: [{ port: { number: 80, name: "http", protocol: "HTTP" }, hosts: Object.keys(SERVICES).map((s) => `${s}.${NS}.svc.cluster.local`) }] },
  }));
  // env-router's resources from the shipped generator, with the kind target's values: what is
  // tested is what is shipped. The gateway trusts every caller here (test only: the suite's
  // client sets the tag itself); shipped manifests trust a guarded header instead.
  const envSpec: EnvRouterSpec = {
    namespace: NS, envLabel: "env", routeHeader: "x-env-route", defaultEnv: "default", services: SERVICES,
    sidecarSelector: { "env-router": "enabled" }, gatewaySelector: { istio: "ingressgateway" }, gatewayNamespace: "istio-system",
    gatewayTrust: { source_cidrs: ["0.0.0.0/0"] }, servicePort: 8080, ingressGateway: "e2e", extraConfig: { explain: true, stamp_build: true },
    image: { url: `oci://${registry}/env-router@sha256:${digests["env-router"]}`, sha256: digests["env-router"] },
  };
  for (const service of Object.keys(SERVICES)) {
    const vs = virtualService(envSpec, service) as { spec: { gateways: string[] } };
    vs.spec.gateways = ["mesh", ...ALL_GATEWAYS.map((g) => g.gateway)];
    out.push(destinationRule(envSpec, service), vs);
  }
  out.push(...envWasmPlugins(envSpec), healthFallbackEnvoyFilter(envSpec));
  const stamp = { stamp_build: true };
  const plugin = (name: string, filter: string, selector: Record<string, string>, placement: "gateway" | "sidecar-inbound" | "sidecar-outbound", namespace: string,
    phase: "AUTHN" | "AUTHZ" | "STATS", priority: number, failStrategy: "FAIL_OPEN" | "FAIL_CLOSE" | "FAIL_RELOAD", configuration: object) =>
    wasmPlugin({ name, namespace, filter, selector, placement, url: `oci://${registry}/${filter}@sha256:${digests[filter]}`, sha256: digests[filter], phase, priority, failStrategy, configuration });
  const gw = { istio: "ingressgateway" };
  out.push(
    plugin("adaptive-ratelimit", "adaptive-ratelimit", gw, "gateway", "istio-system", "AUTHZ", 900, "FAIL_OPEN",
      { rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 99, setpoint_ms: 200, min_rate: 5, max_rate: 2000, initial_rate: 50 }, burst_ms: 200 }], ...stamp }),
    plugin("header-normalizer", "header-normalizer", gw, "gateway", "istio-system", "AUTHN", 2000, "FAIL_OPEN", stamp),
  );
  // podip-router from the shipped generator: the WasmPlugin and the strict session filter on its
  // own. Here on the one ingress gateway (the shipped example uses a dedicated pin gateway), and
  // any caller may pin (test only).
  out.push(...podipWasmPlugins({
    namespace: "istio-system", gatewaySelector: gw, pinGatewaySelector: gw, gatewayVirtualHost: "*:80",
    originalDstIdentities: [`spiffe://cluster.local/ns/${NS}/sa/default`],
    image: { url: `oci://${registry}/podip-router@sha256:${digests["podip-router"]}`, sha256: digests["podip-router"] },
    configuration: { allowed_cidrs: [POD_CIDR], allowed_ports: [8080], default_port: 8080, authorization: { source_cidrs: ["0.0.0.0/0"] }, session_header: SESSION_HEADER, pin_header: PIN_HEADER, rewrite_authority: `web.${NS}.svc.cluster.local`, ...stamp },
  }));
  // Header-name case kept on the HTTP/1 hops: the ingress gateway and the web pods' sidecars.
  const [onWeb, , onGateway] = preserveCaseEnvoyFilters({
    namespace: NS,
    app: { selector: { app: "web" }, host: `web.${NS}.svc.cluster.local`, port: 8080 },
    callers: { app: "web" },
    gateway: { namespace: "istio-system", selector: gw, port: 8080 },
  });
  out.push(onWeb, onGateway);
  // The crash fixture (it traps on x-fixture-action: trap) on each crash gateway, with its policy.
  for (const g of CRASH_GATEWAYS) {
    out.push(wasmPlugin({
      name: `fixture-${g.label}`, namespace: "istio-system", filter: "fixture", selector: { istio: g.label }, placement: "gateway",
      url: `oci://${registry}/fixture@sha256:${digests.fixture}`, sha256: digests.fixture, phase: "STATS", priority: 10, failStrategy: g.policy, configuration: {},
    }));
  }
  return out;
}
