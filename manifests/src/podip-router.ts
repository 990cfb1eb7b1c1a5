// podip-router's resources. Session mode (default): the filter, then Envoy's stateful_session
// filter in strict mode reading the filter's header, then the router, on the gateway: Envoy
// only routes to real endpoints of the route's own EDS cluster, over its usual mTLS.
// Original-dst mode (opt-in): a dedicated ORIGINAL_DST cluster with the mesh's mTLS and a route
// selecting it when the filter marked the request.
import { beforeRouterMatch, CONTEXT, envoyFilterResource, hcmListener, ROUTER_FILTER, headerGuard, PROXY_VERSION_REGEX, suiteMetadata, UNPINNED_DIGEST, wasmHttpFilter, wasmPlugin } from "./wasm.js";

export interface PodIpSpec {
  namespace: string;
  gatewaySelector: Record<string, string>;
  /** The gateway virtual host whose routes pin requests use (original-dst mode). */
  gatewayVirtualHost: string;
  /**
   * The WasmPlugin placement's gateway: a dedicated one for pin traffic. Istio pulls a WasmPlugin's
   * module at run time; with FAIL_CLOSE a failed fetch or checksum makes that proxy answer 403 to
   * every request, so the fail-closed plugin must not sit on the gateway every host shares.
   */
  pinGatewaySelector: Record<string, string>;
  /** The WasmPlugin's image (default: the unappliable placeholder that npm run package pins). */
  image?: { url: string; sha256: string };
  /**
   * Original-dst mode: the SPIFFE ids the pinned pods may present (the target services' service
   * accounts). Any other peer, istiod or a workload of another namespace, fails the TLS handshake.
   */
  originalDstIdentities: string[];
  configuration: Record<string, unknown>;
}

export const SESSION_HEADER = "x-podip-session";
export const PIN_HEADER = "x-podip-router-pin";
export const ORIGINAL_DST_CLUSTER = "podip-original-dst";

export function statefulSessionFilter(header: string): Record<string, unknown> {
  return {
    name: "envoy.filters.http.stateful_session",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
      // strict: an address that is not an endpoint of the cluster gets 503, never another host.
      strict: true,
      session_state: {
        name: "envoy.http.stateful_session.header",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.http.stateful_session.header.v3.HeaderBasedSessionState",
          name: header,
        },
      },
    },
  };
}

function podipFilter(spec: PodIpSpec, filename: string): Record<string, unknown> {
  // Fail closed: a dead filter must not let client-supplied destination headers through.
  return wasmHttpFilter({ filter: "podip-router", filename, failOpen: false, configuration: spec.configuration });
}

function meshSds(name: string): Record<string, unknown> {
  return {
    name,
    sds_config: {
      api_config_source: {
        api_type: "GRPC",
        transport_api_version: "V3",
        grpc_services: [{ envoy_grpc: { cluster_name: "sds-grpc" } }],
      },
      resource_api_version: "V3",
    },
  };
}

/**
 * The ORIGINAL_DST cluster of original-dst mode. It takes the destination from the filter state
 * or, with use_http_header, from x-envoy-original-dst-host (Envoy ignores that header otherwise:
 * shown on real Envoy by the e2e suite); only podip-router sets either, after stripping the
 * client's copies, and only requests it marked with the pin header are routed here. With
 * `identities`, it speaks the mesh's mTLS (Istio's SDS secrets) and accepts only those SPIFFE ids.
 */
export function originalDstCluster(identities: string[] | null): Record<string, unknown> {
  const cluster: Record<string, unknown> = {
    name: ORIGINAL_DST_CLUSTER,
    type: "ORIGINAL_DST",
    lb_policy: "CLUSTER_PROVIDED",
    connect_timeout: "2s",
    cleanup_interval: "60s",
    original_dst_lb_config: { use_http_header: true },
  };
  if (identities !== null) {
    for (const id of identities) {
      if (!/^spiffe:\/\/[^/]+\/ns\/[^/]+\/sa\/[^/]+$/.test(id)) throw new Error(`originalDstIdentities: ${id} is not a workload SPIFFE id (spiffe://<trust domain>/ns/<namespace>/sa/<service account>)`);
    }
    cluster.transport_socket = {
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        common_tls_context: {
          alpn_protocols: ["istio-http/1.1", "istio", "http/1.1"],
          tls_certificate_sds_secret_configs: [meshSds("default")],
          combined_validation_context: {
            default_validation_context: {
              match_typed_subject_alt_names: identities.map((id) => ({ san_type: "URI", matcher: { exact: id } })),
            },
            validation_context_sds_secret_config: meshSds("ROOTCA"),
          },
        },
      },
    };
  }
  return cluster;
}

export function pinRoute(): Record<string, unknown> {
  return {
    name: "podip-router-original-dst",
    match: { prefix: "/", headers: [{ name: PIN_HEADER, string_match: { exact: "original-dst" } }] },
    route: { cluster: ORIGINAL_DST_CLUSTER, timeout: "30s" },
  };
}

const GATEWAY_HCM_MATCH = beforeRouterMatch(CONTEXT.gateway);
/** Envoy's strict stateful_session filter just before the gateway's router. */
const SESSION_PATCH = { applyTo: "HTTP_FILTER", match: GATEWAY_HCM_MATCH, patch: { operation: "INSERT_BEFORE", value: statefulSessionFilter(SESSION_HEADER) } };

export function sessionEnvoyFilter(spec: PodIpSpec): Record<string, unknown> {
  return envoyFilterResource(suiteMetadata("podip-router", spec.namespace, "podip-router"), spec.gatewaySelector, [
    { applyTo: "HTTP_FILTER", match: GATEWAY_HCM_MATCH, patch: { operation: "INSERT_BEFORE", value: podipFilter(spec, "/var/local/lib/wasm/podip-router.wasm") } },
    SESSION_PATCH,
  ]);
}

/** The strict session filter alone, for the WasmPlugin placement (the plugin brings the filter). */
export function sessionOnlyEnvoyFilter(spec: PodIpSpec, selector: Record<string, string>): Record<string, unknown> {
  return envoyFilterResource(suiteMetadata("podip-router-session", spec.namespace, "podip-router"), selector, [SESSION_PATCH]);
}

/**
 * Removes every client copy of the authorisation header first on the gateway, so that only a
 * later hop (an authenticator writing a verified claim) can set it. Empty without one.
 */
export function authGuard(spec: PodIpSpec, selector: Record<string, string>): Record<string, unknown>[] {
  const header = (spec.configuration.authorization as { header?: string } | undefined)?.header;
  return header ? [headerGuard("podip-router-auth-guard", spec.namespace, "podip-router", selector, header)] : [];
}

export function originalDstEnvoyFilter(spec: PodIpSpec): Record<string, unknown> {
  return envoyFilterResource(suiteMetadata("podip-router-original-dst", spec.namespace, "podip-router"), spec.gatewaySelector, [
    { applyTo: "CLUSTER", match: { context: CONTEXT.gateway, proxy: { proxyVersion: PROXY_VERSION_REGEX } }, patch: { operation: "ADD", value: originalDstCluster(spec.originalDstIdentities) } },
    {
      applyTo: "HTTP_ROUTE",
      match: { context: CONTEXT.gateway, proxy: { proxyVersion: PROXY_VERSION_REGEX }, routeConfiguration: { vhost: { name: spec.gatewayVirtualHost } } },
      patch: { operation: "INSERT_FIRST", value: pinRoute() },
    },
  ]);
}

/** Standalone Envoy: the filter, the strict session filter and the router in front of a static "web" cluster. */
export function standaloneBootstrap(spec: PodIpSpec, listenPort: number, endpoints: number[]): Record<string, unknown> {
  return {
    static_resources: {
      listeners: [hcmListener("podip-router", listenPort, {
        stat_prefix: "podip_router",
        route_config: {
          name: "pods",
          virtual_hosts: [{
            name: "web",
            domains: ["*"],
            routes: [pinRoute(), { match: { prefix: "/" }, route: { cluster: "web" } }],
          }],
        },
        http_filters: [
          podipFilter(spec, "dist/podip-router.wasm"),
          statefulSessionFilter(SESSION_HEADER),
          ROUTER_FILTER,
        ],
      })],
      clusters: [
        {
          name: "web",
          type: "STATIC",
          connect_timeout: "1s",
          load_assignment: {
            cluster_name: "web",
            endpoints: [{ lb_endpoints: endpoints.map((port) => ({ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } })) }],
          },
        },
        originalDstCluster(null),
      ],
    },
  };
}

export const EXAMPLE: PodIpSpec = {
  namespace: "istio-system",
  gatewaySelector: { istio: "ingressgateway" },
  pinGatewaySelector: { istio: "pod-gateway" },
  gatewayVirtualHost: "gw.example.com:443",
  originalDstIdentities: ["spiffe://cluster.local/ns/web/sa/web"],
  configuration: {
    allowed_cidrs: ["10.8.0.0/16"],
    allowed_ports: [8080, "9000-9100"],
    authorization: { header: "x-ops-authenticated" },
    host_suffix: "pods.example.com",
    default_port: 8080,
    session_header: SESSION_HEADER,
    pin_header: PIN_HEADER,
  },
};

/** The standalone example pins among local replicas (127.0.0.1 is the allowed range there). */
export const STANDALONE_CONFIGURATION = {
  allow_loopback: true,
  allowed_cidrs: ["127.0.0.0/8"],
  allowed_ports: ["18100-18199"],
  authorization: { source_cidrs: ["127.0.0.0/8"] },
  default_port: 18101,
  session_header: SESSION_HEADER,
  pin_header: PIN_HEADER,
};

/**
 * The filter as a WasmPlugin on the gateway: early (AUTHN phase, so nothing else sees a
 * client-supplied destination), failing closed. A WasmPlugin cannot add Envoy's stateful_session
 * filter: apply only that patch of the session EnvoyFilter, or label the Service for Istio's
 * (non-strict) persistent session.
 */
export function wasmPlugins(spec: PodIpSpec): Record<string, unknown>[] {
  const selector = spec.pinGatewaySelector;
  return [
    ...authGuard(spec, selector),
    wasmPlugin({
      name: "podip-router", namespace: spec.namespace, filter: "podip-router", selector, placement: "gateway",
      url: spec.image?.url ?? "oci://ghcr.io/example/filter-suite/podip-router:0.1.0", sha256: spec.image?.sha256 ?? UNPINNED_DIGEST,
      phase: "AUTHN", priority: 1000, failStrategy: "FAIL_CLOSE", configuration: spec.configuration,
    }),
    sessionOnlyEnvoyFilter(spec, selector),
  ];
}
