// env-router's resources: per service, a DestinationRule with one subset per env label and a
// VirtualService routing on the x-env-route header the filter writes, `default` last; the
// filter's placements (sidecar inbound and outbound, gateway); and a standalone Envoy
// bootstrap whose route table does the same routing with one cluster per service and env.
import { createHash } from "node:crypto";
import { CONTEXT, envoyFilter, envoyFilterResource, hcmListener, ROUTER_FILTER, headerGuard, PROXY_VERSION_REGEX, suiteMetadata, UNPINNED_DIGEST, wasmHttpFilter, wasmPlugin } from "./wasm.js";

export interface EnvRouterSpec {
  namespace: string;
  /** Label carrying a pod's env. */
  envLabel: string;
  routeHeader: string;
  defaultEnv: string;
  /** service short name -> envs that run it. */
  services: Record<string, string[]>;
  /** Workloads whose sidecars run the filter, and the gateway. */
  sidecarSelector: Record<string, string>;
  gatewaySelector: Record<string, string>;
  /** The gateway's own namespace: a workloadSelector or selector reaches only its resource's namespace. */
  gatewayNamespace: string;
  /**
   * Who may set the tag at the gateway: a header that only a trusted hop on the gateway sets
   * (the trust guard removes every client copy first), and/or source ranges.
   */
  gatewayTrust: { source_cidrs?: string[]; header?: string };
  /** The services' HTTP port (Istio names its clusters and virtual hosts after it). */
  servicePort: number;
  /** An Istio Gateway (in `namespace`) the VirtualServices also bind to, for the short host names. */
  ingressGateway?: string;
  /** Extra filter configuration for every placement (e.g. stamp_build, explain). */
  extraConfig?: Record<string, unknown>;
  image: { url: string; sha256: string };
}

/** A DNS-1123 subset name for an env (dots are not allowed there). */
export function subsetName(env: string): string {
  if (!env.includes(".")) return env;
  const hash = createHash("sha256").update(env).digest("hex").slice(0, 6);
  return `${env.replace(/\./g, "-").slice(0, 55)}-${hash}`;
}

function fqdn(spec: EnvRouterSpec, service: string): string {
  return `${service}.${spec.namespace}.svc.cluster.local`;
}

export function destinationRule(spec: EnvRouterSpec, service: string): Record<string, unknown> {
  return {
    apiVersion: "networking.istio.io/v1",
    kind: "DestinationRule",
    metadata: { name: `${service}-env`, namespace: spec.namespace },
    spec: {
      host: fqdn(spec, service),
      // A pod that fails while ready leaves its subset (and its env falls back) after 3 errors.
      trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3, interval: "5s", baseEjectionTime: "15s", maxEjectionPercent: 100 } },
      subsets: spec.services[service].map((env) => ({ name: subsetName(env), labels: { [spec.envLabel]: env } })),
    },
  };
}

export function virtualService(spec: EnvRouterSpec, service: string): Record<string, unknown> {
  const envs = spec.services[service];
  const host = fqdn(spec, service);
  const others = envs.filter((e) => e !== spec.defaultEnv);
  return {
    apiVersion: "networking.istio.io/v1",
    kind: "VirtualService",
    metadata: { name: `${service}-env`, namespace: spec.namespace },
    spec: {
      // The service's FQDN only: Istio refuses a short name bound to a gateway (it cannot tell
      // which namespace the name means), and clients through the gateway send the FQDN as Host.
      hosts: [host],
      ...(spec.ingressGateway ? { gateways: ["mesh", spec.ingressGateway] } : {}),
      http: [
        ...others.map((env) => ({
          name: `env-${subsetName(env)}`,
          match: [{ headers: { [spec.routeHeader]: { exact: env } } }],
          route: [{ destination: { host, subset: subsetName(env) } }],
        })),
        { name: "env-default", route: [{ destination: { host, subset: subsetName(spec.defaultEnv) } }] },
      ],
    },
  };
}

/** Istio's name of the outbound cluster of a service's subset. */
function subsetCluster(spec: EnvRouterSpec, service: string, env: string): string {
  return `outbound|${spec.servicePort}|${subsetName(env)}|${fqdn(spec, service)}`;
}

/**
 * Health-aware fallback on the sidecars: per service and test env, an aggregate cluster over the
 * subset clusters of the env's fallback chain (ending at default), and the VirtualService's route
 * for that env pointed at it. Envoy then sends a request to the first subset that has a healthy
 * endpoint: an env whose pods are gone or not ready (Istio sends only ready endpoints) falls back
 * instead of answering 503; DestinationRule outlier detection ejects pods that fail while ready.
 */
export function healthFallbackEnvoyFilter(spec: EnvRouterSpec): Record<string, unknown> {
  const match = { context: CONTEXT["sidecar-outbound"], proxy: { proxyVersion: PROXY_VERSION_REGEX } };
  const patches: unknown[] = [];
  for (const service of Object.keys(spec.services).sort()) {
    for (const env of spec.services[service].filter((e) => e !== spec.defaultEnv)) {
      const name = `env-router-fallback|${spec.servicePort}|${subsetName(env)}|${fqdn(spec, service)}`;
      patches.push({
        applyTo: "CLUSTER", match,
        patch: { operation: "ADD", value: {
          name, connect_timeout: "1s", lb_policy: "CLUSTER_PROVIDED",
          cluster_type: { name: "envoy.clusters.aggregate", typed_config: {
            "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
            clusters: healthChain(spec, service, env).map((e) => subsetCluster(spec, service, e)),
          } },
        } },
      }, {
        applyTo: "HTTP_ROUTE",
        match: { ...match, routeConfiguration: { vhost: { name: `${fqdn(spec, service)}:${spec.servicePort}`, route: { name: `env-${subsetName(env)}` } } } },
        patch: { operation: "MERGE", value: { route: { cluster: name } } },
      });
    }
  }
  return envoyFilterResource(suiteMetadata("env-router-health-fallback", spec.namespace, "env-router"), spec.sidecarSelector, patches);
}

/** Every Istio resource env-router needs, in apply order. */
export function istioResources(spec: EnvRouterSpec): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const service of Object.keys(spec.services).sort()) {
    out.push(destinationRule(spec, service), virtualService(spec, service));
  }
  const base = { namespace: spec.namespace, filter: "env-router", filename: "/var/local/lib/wasm/env-router.wasm", failOpen: true };
  const outbound = { services: spec.services, default_env: spec.defaultEnv, route_header: spec.routeHeader, ...spec.extraConfig };
  out.push(
    envoyFilter({ ...base, name: "env-router-outbound", selector: spec.sidecarSelector, placement: "sidecar-outbound", configuration: { mode: "outbound", ...outbound } }),
    envoyFilter({ ...base, name: "env-router-inbound", selector: spec.sidecarSelector, placement: "sidecar-inbound", configuration: { mode: "inbound", ...spec.extraConfig } }),
    envoyFilter({ ...base, namespace: spec.gatewayNamespace, name: "env-router-gateway", selector: spec.gatewaySelector, placement: "gateway", configuration: { mode: "gateway", trust: spec.gatewayTrust, ...outbound } }),
    ...trustGuard(spec),
    healthFallbackEnvoyFilter(spec),
  );
  return out;
}

/**
 * The first HTTP filter of the gateway removes every client copy of the trust header, so that
 * the only copy env-router can see is one a later hop on the gateway set (for example Istio's
 * RequestAuthentication with outputClaimToHeaders, from a verified token). env-router itself
 * removes the header before the request leaves the gateway.
 */
export function trustGuard(spec: EnvRouterSpec): Record<string, unknown>[] {
  if (!spec.gatewayTrust.header) return [];
  return [headerGuard("env-router-trust-guard", spec.gatewayNamespace, "env-router", spec.gatewaySelector, spec.gatewayTrust.header)];
}

/** The same placements as Istio WasmPlugins pulled from a registry (pinned by digest). */
export function wasmPlugins(spec: EnvRouterSpec): Record<string, unknown>[] {
  const outbound = { services: spec.services, default_env: spec.defaultEnv, route_header: spec.routeHeader, ...spec.extraConfig };
  const base = { namespace: spec.namespace, filter: "env-router", url: spec.image.url, sha256: spec.image.sha256, phase: "STATS" as const, priority: 10, failStrategy: "FAIL_OPEN" as const };
  return [
    wasmPlugin({ ...base, name: "env-router-outbound", selector: spec.sidecarSelector, placement: "sidecar-outbound", configuration: { mode: "outbound", ...outbound } }),
    wasmPlugin({ ...base, name: "env-router-inbound", selector: spec.sidecarSelector, placement: "sidecar-inbound", configuration: { mode: "inbound", ...spec.extraConfig } }),
    wasmPlugin({ ...base, namespace: spec.gatewayNamespace, name: "env-router-gateway", selector: spec.gatewaySelector, placement: "gateway", configuration: { mode: "gateway", trust: spec.gatewayTrust, ...outbound } }),
    ...trustGuard(spec),
  ];
}

/**
 * A standalone Envoy bootstrap: one listener with env-router (outbound mode) before the
 * router, a virtual host per service whose routes match the route header, and a static
 * cluster per service and env (ports from `port(service, env)`).
 */
/** The aggregate cluster that serves `env` of `service`, or the next env of its chain that is healthy. */
export function fallbackCluster(service: string, env: string): string {
  return `${service}.${env}.fallback`;
}

/**
 * The envs that may serve `env` of `service`, in order, as the filter's fallback chain names them
 * (`feature-x.team-a` -> `team-a` -> default, the hierarchical default), keeping those the service runs.
 */
export function healthChain(spec: EnvRouterSpec, service: string, env: string): string[] {
  const chain = [env];
  for (let rest = env; rest.includes("."); ) {
    rest = rest.slice(rest.indexOf(".") + 1);
    chain.push(rest);
  }
  chain.push(spec.defaultEnv);
  return [...new Set(chain)].filter((e) => spec.services[service].includes(e));
}

export function standaloneBootstrap(spec: EnvRouterSpec, listenPort: number, port: (service: string, env: string) => number): Record<string, unknown> {
  const services = Object.keys(spec.services).sort();
  const cluster = (service: string, env: string) => `${service}.${env}`;
  return {
    static_resources: {
      listeners: [hcmListener("env-router", listenPort, {
        stat_prefix: "env_router",
        route_config: {
          name: "env-routes",
          virtual_hosts: services.map((service) => ({
            name: service,
            domains: [service, `${service}:*`, fqdn(spec, service), `${fqdn(spec, service)}:*`],
            routes: [
              ...spec.services[service].filter((e) => e !== spec.defaultEnv).map((env) => ({
                match: { prefix: "/", headers: [{ name: spec.routeHeader, string_match: { exact: env } }] },
                route: { cluster: fallbackCluster(service, env) },
              })),
              { match: { prefix: "/" }, route: { cluster: cluster(service, spec.defaultEnv) } },
            ],
          })),
        },
        http_filters: [
          wasmHttpFilter({ filter: "env-router", filename: "dist/env-router.wasm", failOpen: true,
            configuration: { mode: "outbound", services: spec.services, default_env: spec.defaultEnv, route_header: spec.routeHeader, explain: true } }),
          ROUTER_FILTER,
        ],
      })],
      clusters: [
        ...services.flatMap((service) => spec.services[service].map((env) => ({
          name: cluster(service, env),
          type: "STATIC",
          connect_timeout: "1s",
          load_assignment: {
            cluster_name: cluster(service, env),
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port(service, env) } } } }] }],
          },
          // Health is what the fallback follows: a replica that stops answering leaves the env's
          // cluster within about a second, and comes back as soon as it answers again.
          health_checks: [{ timeout: "0.5s", interval: "1s", no_traffic_interval: "1s", unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }],
        }))),
        // Per test env, an aggregate cluster over the env's fallback chain that exists for the
        // service (ending at default): Envoy sends the request to the first with a healthy endpoint.
        ...services.flatMap((service) => spec.services[service].filter((e) => e !== spec.defaultEnv).map((env) => ({
          name: fallbackCluster(service, env),
          connect_timeout: "1s",
          lb_policy: "CLUSTER_PROVIDED",
          cluster_type: {
            name: "envoy.clusters.aggregate",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
              clusters: healthChain(spec, service, env).map((e) => cluster(service, e)),
            },
          },
        }))),
      ],
    },
  };
}

/** The example the rendered manifests are made from: bookinfo with two test envs. */
export const EXAMPLE: EnvRouterSpec = {
  namespace: "bookinfo",
  envLabel: "env",
  routeHeader: "x-env-route",
  defaultEnv: "default",
  services: {
    productpage: ["default", "feature-x"],
    reviews: ["default", "feature-x", "team-a"],
    ratings: ["default", "team-a"],
    details: ["default"],
  },
  sidecarSelector: { "env-router.filter-suite/enabled": "true" },
  gatewaySelector: { istio: "ingressgateway" },
  gatewayNamespace: "istio-system",
  gatewayTrust: { header: "x-env-trusted" },
  servicePort: 9080,
  image: { url: "oci://ghcr.io/example/filter-suite/env-router:0.1.0", sha256: UNPINNED_DIGEST },
};
