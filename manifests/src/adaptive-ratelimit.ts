// adaptive-ratelimit's resources: the filter on the protected workload's inbound sidecar (one
// controller per pod, for that pod's capacity), as an EnvoyFilter or a WasmPlugin, and a
// standalone Envoy bootstrap in front of one upstream.
import { envoyFilter, hcmListener, ROUTER_FILTER, UNPINNED_DIGEST, wasmHttpFilter, wasmPlugin } from "./wasm.js";

export const EXAMPLE_CONFIGURATION = {
  rules: [
    { name: "checkout", match: { path_prefix: "/checkout", method: "POST" }, controller: { signal: "error_ratio", setpoint_ratio: 0.01, min_rate: 20, max_rate: 2000, initial_rate: 200 } },
    { name: "api", match: { path_prefix: "/" }, controller: { signal: "latency", percentile: 99, setpoint_ms: 250, min_rate: 20, max_rate: 5000, initial_rate: 500 } },
  ],
};

const SELECTOR = { app: "checkout" };

/** Fail open: a dead limiter must not take the service down with it. */
export function istioResources(): Record<string, unknown>[] {
  return [envoyFilter({
    name: "adaptive-ratelimit", namespace: "shop", selector: SELECTOR, placement: "sidecar-inbound",
    filter: "adaptive-ratelimit", filename: "/var/local/lib/wasm/adaptive-ratelimit.wasm", failOpen: true,
    configuration: EXAMPLE_CONFIGURATION,
  })];
}

export function wasmPlugins(): Record<string, unknown>[] {
  return [wasmPlugin({
    name: "adaptive-ratelimit", namespace: "shop", filter: "adaptive-ratelimit", selector: SELECTOR, placement: "sidecar-inbound",
    url: "oci://ghcr.io/example/filter-suite/adaptive-ratelimit:0.1.0", sha256: UNPINNED_DIGEST,
    phase: "AUTHZ", priority: 100, failStrategy: "FAIL_OPEN", configuration: EXAMPLE_CONFIGURATION,
  })];
}

export function standaloneBootstrap(listenPort: number, upstreamPort: number): Record<string, unknown> {
  return {
    static_resources: {
      listeners: [hcmListener("adaptive-ratelimit", listenPort, {
        stat_prefix: "adaptive_ratelimit",
        route_config: { name: "local", virtual_hosts: [{ name: "app", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "app" } }] }] },
        http_filters: [
          wasmHttpFilter({ filter: "adaptive-ratelimit", filename: "dist/adaptive-ratelimit.wasm", failOpen: true, configuration: EXAMPLE_CONFIGURATION }),
          ROUTER_FILTER,
        ],
      })],
      clusters: [{
        name: "app", type: "STATIC", connect_timeout: "1s",
        load_assignment: { cluster_name: "app", endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: upstreamPort } } } }] }] },
      }],
    },
  };
}
