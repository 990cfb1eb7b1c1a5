// manifests/envoy/envoy.yaml: all four filters in one standalone Envoy, in front of example
// upstreams on 127.0.0.1 (the local gateway of `npm start` reads the same file). Filter order:
// podip-router (sanitises and pins first), adaptive-ratelimit (sheds before work),
// header-normalizer, env-router (decides the route last), then Envoy's strict stateful_session
// and the router.
import { wasmHttpFilter, hcmListener, ROUTER_FILTER } from "./wasm.js";
import { statefulSessionFilter, originalDstCluster, pinRoute, SESSION_HEADER, PIN_HEADER } from "./podip-router.js";

export const SERVICES: Record<string, Record<string, number>> = {
  reviews: { default: 18111, "feature-x": 18112 },
  ratings: { default: 18121 },
  details: { default: 18131, "feature-x": 18132 },
};
export const WEB_REPLICAS = [18101, 18102, 18103];
export const LISTEN_PORT = 10000;

export const CONFIGS = {
  "podip-router": {
    allow_loopback: true, allowed_cidrs: ["127.0.0.0/8"], allowed_ports: ["18100-18199"], default_port: 18101,
    authorization: { source_cidrs: ["127.0.0.0/8"] }, session_header: SESSION_HEADER, pin_header: PIN_HEADER, stamp_build: true,
  },
  "adaptive-ratelimit": {
    rules: [{ name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", percentile: 99, setpoint_ms: 200, min_rate: 5, max_rate: 2000, initial_rate: 50 }, burst_ms: 200 }],
    stamp_build: true,
  },
  "header-normalizer": { stamp_build: true },
  "env-router": {
    services: Object.fromEntries(Object.entries(SERVICES).map(([s, envs]) => [s, Object.keys(envs)])),
    explain: true, stamp_build: true,
  },
};

function cluster(name: string, ports: number[]): Record<string, unknown> {
  return {
    name, type: "STATIC", connect_timeout: "1s",
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: ports.map((p) => ({ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: p } } } })) }] },
  };
}

export function suiteBootstrap(): Record<string, unknown> {
  const envHosts = Object.entries(SERVICES).map(([service, envs]) => ({
    name: service,
    domains: [service, `${service}:*`],
    routes: [
      ...Object.keys(envs).filter((e) => e !== "default").map((env) => ({
        match: { prefix: "/", headers: [{ name: "x-env-route", string_match: { exact: env } }] },
        route: { cluster: `${service}.${env}` },
      })),
      { match: { prefix: "/" }, route: { cluster: `${service}.default` } },
    ],
  }));
  return {
    static_resources: {
      listeners: [hcmListener("suite", LISTEN_PORT, {
        stat_prefix: "suite",
        route_config: {
          name: "suite",
          virtual_hosts: [...envHosts, { name: "web", domains: ["*"], routes: [pinRoute(), { match: { prefix: "/" }, route: { cluster: "web" } }] }],
        },
        http_filters: [
          wasmHttpFilter({ filter: "podip-router", filename: "dist/podip-router.wasm", failOpen: false, configuration: CONFIGS["podip-router"] }),
          wasmHttpFilter({ filter: "adaptive-ratelimit", filename: "dist/adaptive-ratelimit.wasm", failOpen: true, configuration: CONFIGS["adaptive-ratelimit"] }),
          wasmHttpFilter({ filter: "header-normalizer", filename: "dist/header-normalizer.wasm", failOpen: true, configuration: CONFIGS["header-normalizer"] }),
          wasmHttpFilter({ filter: "env-router", filename: "dist/env-router.wasm", failOpen: true, configuration: CONFIGS["env-router"] }),
          statefulSessionFilter(SESSION_HEADER),
          ROUTER_FILTER,
        ],
      })],
      clusters: [
        cluster("web", WEB_REPLICAS),
        ...Object.entries(SERVICES).flatMap(([service, envs]) => Object.entries(envs).map(([env, port]) => cluster(`${service}.${env}`, [port]))),
        originalDstCluster(null),
      ],
    },
  };
}
