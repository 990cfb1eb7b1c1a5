// header-normalizer's resources: the filter on a workload's inbound sidecar and on the gateway
// (EnvoyFilter or WasmPlugin), and the preserve_case formatter that restores header-name case on
// HTTP/1 hops (on the connection managers and on the clusters; Envoy's own headers Proper-Case).
import { CONTEXT, HCM_TYPE, PROXY_VERSION_REGEX, envoyFilter, envoyFilterResource, hcmListener, suiteMetadata, wasmHttpFilter, wasmPlugin } from "./wasm.js";

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
    envoyFilter({ ...base, name: "header-normalizer", namespace: "default", selector: SELECTOR, placement: "sidecar-inbound" }),
    envoyFilter({ ...base, name: "header-normalizer-gateway", namespace: "istio-system", selector: { istio: "ingressgateway" }, placement: "gateway" }),
  ];
}

export function wasmPlugins(): Record<string, unknown>[] {
  const base = { filter: "header-normalizer", url: "oci://ghcr.io/example/filter-suite/header-normalizer:0.1.0",
    sha256: "0000000000000000000000000000000000000000000000000000000000000000", phase: "STATS" as const, priority: 300, failStrategy: "FAIL_OPEN" as const, configuration: CONFIG };
  return [
    wasmPlugin({ ...base, name: "header-normalizer", namespace: "default", selector: SELECTOR, placement: "sidecar-inbound" }),
    wasmPlugin({ ...base, name: "header-normalizer-gateway", namespace: "istio-system", selector: { istio: "ingressgateway" }, placement: "gateway" }),
  ];
}

/** preserve_case on both hops of a sidecar (HTTP/1.1 only). */
export function preserveCaseEnvoyFilter(): Record<string, unknown> {
  const hcm = (context: string) => ({
    applyTo: "NETWORK_FILTER",
    match: { context, proxy: { proxyVersion: PROXY_VERSION_REGEX }, listener: { filterChain: { filter: { name: "envoy.filters.network.http_connection_manager" } } } },
    patch: { operation: "MERGE", value: { name: "envoy.filters.network.http_connection_manager", typed_config: { "@type": HCM_TYPE, http_protocol_options: { header_key_format: { stateful_formatter: PRESERVE_CASE } } } } },
  });
  const cluster = (context: string) => ({
    applyTo: "CLUSTER",
    match: { context, proxy: { proxyVersion: PROXY_VERSION_REGEX } },
    patch: { operation: "MERGE", value: { typed_extension_protocol_options: clusterProtocolOptions() } },
  });
  return envoyFilterResource(suiteMetadata("header-normalizer-preserve-case", "default", "header-normalizer"), SELECTOR,
    [hcm(CONTEXT["sidecar-inbound"]), hcm(CONTEXT["sidecar-outbound"]), cluster(CONTEXT["sidecar-inbound"]), cluster(CONTEXT["sidecar-outbound"])]);
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
          { name: "envoy.filters.http.router", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } },
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
