// header-normalizer's resources: the filter on a workload's inbound sidecar and on the gateway
// (EnvoyFilter or WasmPlugin), and the preserve_case formatter that restores header-name case on
// HTTP/1 hops (on the connection managers and on the clusters; Envoy's own headers Proper-Case).
import { CONTEXT, envoyFilter, envoyFilterResource, HCM_NAME, HCM_TYPE, hcmListener, ROUTER_FILTER, LEGACY_PRESERVE_CASE_PROXY_VERSION, suiteMetadata, UNPINNED_DIGEST, wasmHttpFilter, wasmPlugin } from "./wasm.js";

export const PRESERVE_CASE = {
  name: "preserve_case",
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig",
    forward_reason_phrase: false,
    formatter_type_on_envoy_headers: "PROPER_CASE",
  },
};

export function clusterProtocolOptions(): Record<string, unknown> {
  return {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
      "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
      explicit_http_config: { http_protocol_options: { header_key_format: { stateful_formatter: PRESERVE_CASE } } },
    },
  };
}

const SELECTOR = { app: "legacy-app" };
const CONFIG = {};

export function placements(): Record<string, unknown>[] {
  const base = { filter: "header-normalizer", filename: "/var/local/lib/wasm/header-normalizer.wasm", failOpen: true, configuration: CONFIG };
  return [
    // On the app's sidecar: just before the router, after anything on that proxy (an ext_authz)
    // that could add a duplicate; the last repair before the app.
    envoyFilter({ ...base, name: "header-normalizer", namespace: "default", selector: SELECTOR, placement: "sidecar-inbound" }),
    // At the edge: first, so that Istio's authentication and RBAC judge the normalised request.
    envoyFilter({ ...base, name: "header-normalizer-gateway", namespace: "istio-system", selector: { istio: "ingressgateway" }, placement: "gateway", first: true }),
  ];
}

export function wasmPlugins(): Record<string, unknown>[] {
  const base = { filter: "header-normalizer", url: "oci://ghcr.io/example/filter-suite/header-normalizer:0.1.0",
    sha256: UNPINNED_DIGEST, failStrategy: "FAIL_OPEN" as const, configuration: CONFIG };
  return [
    wasmPlugin({ ...base, phase: "STATS", priority: 300, name: "header-normalizer", namespace: "default", selector: SELECTOR, placement: "sidecar-inbound" }),
    // AUTHN, the earliest phase, ahead of podip-router's AUTHN instance (priority 1000).
    wasmPlugin({ ...base, phase: "AUTHN", priority: 2000, name: "header-normalizer-gateway", namespace: "istio-system", selector: { istio: "ingressgateway" }, placement: "gateway" }),
  ];
}

/** Where header-name case must survive: one HTTP/1.1 app, the workloads that call it, the gateway. */
export interface CaseSpec {
  namespace: string;
  app: { selector: Record<string, string>; host: string; port: number };
  /** Labels of the calling workloads (their sidecars' outbound hop to the app). */
  callers: Record<string, string>;
  /** The ingress gateway: its namespace (a selector reaches only its own namespace), labels and listener port. */
  gateway: { namespace: string; selector: Record<string, string>; port: number };
}

export const CASE_EXAMPLE: CaseSpec = {
  namespace: "default",
  app: { selector: SELECTOR, host: "legacy-app.default.svc.cluster.local", port: 8080 },
  callers: { "filter-suite/preserve-header-case": "true" },
  gateway: { namespace: "istio-system", selector: { istio: "ingressgateway" }, port: 8080 },
};

/**
 * preserve_case for Istio versions without ProxyConfig.proxyHeaders.preserveHttp1HeaderCase
 * (1.20-1.24, guarded to them: see LEGACY_PRESERVE_CASE_PROXY_VERSION), scoped to the one HTTP/1.1 app: on each hop the connection manager of the
 * listener on the app's port captures the request's names, and the app's cluster (and only it)
 * captures the response's. Every other cluster keeps Istio's own protocol options.
 */
export function preserveCaseEnvoyFilters(spec: CaseSpec = CASE_EXAMPLE): Record<string, unknown>[] {
  const hcm = (context: string, port: number) => ({
    applyTo: "NETWORK_FILTER",
    match: { context, proxy: { proxyVersion: LEGACY_PRESERVE_CASE_PROXY_VERSION }, listener: { portNumber: port, filterChain: { filter: { name: HCM_NAME } } } },
    patch: { operation: "MERGE", value: { name: HCM_NAME, typed_config: { "@type": HCM_TYPE, http_protocol_options: { header_key_format: { stateful_formatter: PRESERVE_CASE } } } } },
  });
  const cluster = (context: string, match: Record<string, unknown>) => ({
    applyTo: "CLUSTER",
    match: { context, proxy: { proxyVersion: LEGACY_PRESERVE_CASE_PROXY_VERSION }, cluster: match },
    patch: { operation: "MERGE", value: { typed_extension_protocol_options: clusterProtocolOptions() } },
  });
  const { app } = spec;
  return [
    envoyFilterResource(suiteMetadata("header-normalizer-preserve-case-app", spec.namespace, "header-normalizer"), app.selector,
      [hcm(CONTEXT["sidecar-inbound"], app.port), cluster(CONTEXT["sidecar-inbound"], { portNumber: app.port })]),
    envoyFilterResource(suiteMetadata("header-normalizer-preserve-case-callers", spec.namespace, "header-normalizer"), spec.callers,
      [hcm(CONTEXT["sidecar-outbound"], app.port), cluster(CONTEXT["sidecar-outbound"], { service: app.host, portNumber: app.port })]),
    envoyFilterResource(suiteMetadata("header-normalizer-preserve-case-gateway", spec.gateway.namespace, "header-normalizer"), spec.gateway.selector,
      [hcm(CONTEXT.gateway, spec.gateway.port), cluster(CONTEXT.gateway, { service: app.host, portNumber: app.port })]),
  ];
}

/** Standalone Envoy: the filter in front of an HTTP/1.1 app, with case preserved on both sides. */
export function standaloneBootstrap(listenPort: number, appPort: number): Record<string, unknown> {
  return {
    static_resources: {
      listeners: [hcmListener("header-normalizer", listenPort, {
        stat_prefix: "header_normalizer",
        http_protocol_options: { header_key_format: { stateful_formatter: PRESERVE_CASE } },
        route_config: { name: "local", virtual_hosts: [{ name: "app", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "app" } }] }] },
        http_filters: [
          wasmHttpFilter({ filter: "header-normalizer", filename: "dist/header-normalizer.wasm", failOpen: true, configuration: CONFIG }),
          ROUTER_FILTER,
        ],
      })],
      clusters: [{
        name: "app", type: "STATIC", connect_timeout: "1s",
        load_assignment: { cluster_name: "app", endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: appPort } } } }] }] },
        typed_extension_protocol_options: clusterProtocolOptions(),
      }],
    },
  };
}
