// Placing a wasm filter: the Envoy HTTP filter message, an Istio EnvoyFilter that inserts it
// (workloadSelector always), and an Istio WasmPlugin. Shared by every filter's manifests.

/**
 * The Istio minors the suite supports: 1.28 to 1.32, whose proxies are Envoy 1.36 to 1.40 (the
 * range envoy-versions.json tests). A patch is guarded to them because its Envoy fields are
 * checked against that range only; on a newer Istio it stops applying (and the filter's
 * failure policy does not say so), so extend this range with envoy-versions.json when a new
 * minor is tested (e2e/istio translates the manifests for each of them).
 */
export const PROXY_VERSION_REGEX = "^1\\.(2[89]|3[0-2])\\..*";

/**
 * The preserve-case EnvoyFilters' guard: Istio 1.20-1.24, the releases without Istio's own
 * ProxyConfig.proxyHeaders.preserveHttp1HeaderCase. On the supported 1.28-1.32 they must not
 * apply: their cluster MERGE replaces the cluster's whole HttpProtocolOptions (a
 * DestinationRule's idle timeout and max requests per connection with it), where Istio's own
 * option adds the formatter to what it generates (e2e/istio shows both).
 */
export const LEGACY_PRESERVE_CASE_PROXY_VERSION = "^1\\.(2[0-4])\\..*";

export type Placement = "sidecar-inbound" | "sidecar-outbound" | "gateway";

export const CONTEXT: Record<Placement, string> = {
  "sidecar-inbound": "SIDECAR_INBOUND",
  "sidecar-outbound": "SIDECAR_OUTBOUND",
  gateway: "GATEWAY",
};

export interface WasmFilterSpec {
  /** The filter's name: root_id, plugin name and vm_id. */
  filter: string;
  /** The plugin configuration, serialised as the StringValue text. */
  configuration: object;
  /** Where Envoy finds the module (standalone and EnvoyFilter placements). */
  filename: string;
  /**
   * Fail open (`failure_policy: FAIL_OPEN`: the filter is skipped once its VM failed) or closed
   * (`FAIL_RELOAD`: 503 while a fresh VM is started after the backoff). Every supported Envoy
   * (1.36+) has failure_policy, so the deprecated legacy `fail_open` is not used.
   */
  failOpen: boolean;
}

/**
 * The sha256 of every committed WasmPlugin: not a digest, so that Istio's schema (and so the
 * Kubernetes API server) refuses to apply the file as it is. `npm run package` writes copies
 * pinned to the built image's digest (dist/oci/<filter>.wasmplugin.yaml).
 */
export const UNPINNED_DIGEST = "unpinned-run-npm-run-package-for-the-digest";

/** Metadata of every resource the suite ships: its name, namespace and the suite's labels. */
export function suiteMetadata(name: string, namespace: string, filter: string): Record<string, unknown> {
  return { name, namespace, labels: { "app.kubernetes.io/part-of": "envoy-wasm-filter-suite", "filter-suite/filter": filter } };
}

/** The HTTP connection manager's network filter name. */
export const HCM_NAME = "envoy.filters.network.http_connection_manager";

export const HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/** The router, the last HTTP filter of every connection manager. */
export const ROUTER_FILTER = { name: "envoy.filters.http.router", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } };

/** A plain-HTTP listener on 127.0.0.1 whose one network filter is the HTTP connection manager `hcm` (its fields after "@type"). */
export function hcmListener(name: string, port: number, hcm: Record<string, unknown>): Record<string, unknown> {
  return {
    name,
    address: { socket_address: { address: "127.0.0.1", port_value: port } },
    filter_chains: [{ filters: [{ name: HCM_NAME, typed_config: { "@type": HCM_TYPE, ...hcm } }] }],
  };
}

/** envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter running the module. */
export function wasmHttpFilter(spec: WasmFilterSpec, nameSuffix = ""): Record<string, unknown> {
  return {
    name: spec.filter + nameSuffix,
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
      config: {
        name: spec.filter + nameSuffix,
        root_id: spec.filter,
        failure_policy: spec.failOpen ? "FAIL_OPEN" : "FAIL_RELOAD",
        configuration: {
          "@type": "type.googleapis.com/google.protobuf.StringValue",
          value: JSON.stringify(spec.configuration),
        },
        vm_config: {
          vm_id: spec.filter,
          runtime: "envoy.wasm.runtime.v8",
          code: { local: { filename: spec.filename } },
        },
      },
    },
  };
}

export interface IstioPlacementSpec extends WasmFilterSpec {
  name: string;
  namespace: string;
  selector: Record<string, string>;
  placement: Placement;
  /** First in the chain (INSERT_FIRST), ahead of Istio's own filters, instead of just before the router. */
  first?: boolean;
}

/**
 * An EnvoyFilter inserting the filter just before the router of the selected workloads'
 * HTTP connection managers, for the supported proxy versions only. Code comes from a local file
 * (mount it into the proxy, e.g. with sidecar.istio.io/userVolume); prefer the WasmPlugin when
 * the module can be pulled from a registry.
 */
export function envoyFilter(spec: IstioPlacementSpec): Record<string, unknown> {
  const patch = spec.first
    ? { applyTo: "HTTP_FILTER", match: { context: CONTEXT[spec.placement], proxy: { proxyVersion: PROXY_VERSION_REGEX }, listener: { filterChain: { filter: { name: HCM_NAME } } } }, patch: { operation: "INSERT_FIRST", value: wasmHttpFilter(spec) } }
    : { applyTo: "HTTP_FILTER", match: beforeRouterMatch(CONTEXT[spec.placement]), patch: { operation: "INSERT_BEFORE", value: wasmHttpFilter(spec) } };
  return envoyFilterResource(suiteMetadata(spec.name, spec.namespace, spec.filter), spec.selector, [patch]);
}

/**
 * The order of the suite's filters in one HTTP filter chain (manifests/README.md says why), as
 * EnvoyFilter priorities: Istio applies EnvoyFilters by ascending priority (then creation time,
 * then name), and each inserts just before the router, so a filter applied later sits after
 * the ones applied before it. Without a priority the order is the order the files were applied.
 */
export const SUITE_PRIORITY: Record<string, number> = {
  "header-normalizer": 10,
  "podip-router": 20,
  "env-router": 30,
  "adaptive-ratelimit": 40,
};

/** An Istio EnvoyFilter (networking.istio.io/v1alpha3) applied to the workloads `selector` picks, at its filter's priority. */
export function envoyFilterResource(metadata: Record<string, unknown>, selector: Record<string, string>, configPatches: unknown[]): Record<string, unknown> {
  const filter = (metadata.labels as Record<string, string> | undefined)?.["filter-suite/filter"];
  const priority = filter === undefined ? undefined : SUITE_PRIORITY[filter];
  if (priority === undefined) throw new Error(`envoyFilterResource: ${String(metadata.name)}: no suite priority for filter ${String(filter)}`);
  return { apiVersion: "networking.istio.io/v1alpha3", kind: "EnvoyFilter", metadata, spec: { workloadSelector: { labels: selector }, priority, configPatches } };
}

/** The match of an HTTP filter inserted just before the router of the HTTP connection manager in `context`. */
export function beforeRouterMatch(context: string): Record<string, unknown> {
  return {
    context,
    proxy: { proxyVersion: PROXY_VERSION_REGEX },
    listener: { filterChain: { filter: { name: HCM_NAME, subFilter: { name: "envoy.filters.http.router" } } } },
  };
}

export interface WasmPluginSpec {
  name: string;
  namespace: string;
  filter: string;
  selector: Record<string, string>;
  placement: Placement;
  /** oci:// or https:// URL of the module, pinned by digest. */
  url: string;
  sha256: string;
  phase: "AUTHN" | "AUTHZ" | "STATS" | "UNSPECIFIED_PHASE";
  priority: number;
  failStrategy: "FAIL_CLOSE" | "FAIL_OPEN" | "FAIL_RELOAD";
  configuration: object;
}

/** An Istio WasmPlugin (extensions.istio.io/v1alpha1). */
export function wasmPlugin(spec: WasmPluginSpec): Record<string, unknown> {
  const mode = spec.placement === "sidecar-inbound" ? "SERVER" : spec.placement === "sidecar-outbound" ? "CLIENT" : "CLIENT";
  return {
    apiVersion: "extensions.istio.io/v1alpha1",
    kind: "WasmPlugin",
    metadata: suiteMetadata(spec.name, spec.namespace, spec.filter),
    spec: {
      selector: { matchLabels: spec.selector },
      url: spec.url,
      sha256: spec.sha256,
      imagePullPolicy: "IfNotPresent",
      pluginName: spec.filter,
      phase: spec.phase,
      priority: spec.priority,
      failStrategy: spec.failStrategy,
      match: [{ mode }],
      pluginConfig: spec.configuration,
    },
  };
}

/**
 * An EnvoyFilter putting Envoy's header_mutation first on the gateway's connection managers,
 * removing every client copy of `header`: after it, only a later hop on the gateway (an
 * authenticator writing a verified claim) can set that header.
 */
export function headerGuard(name: string, namespace: string, filter: string, selector: Record<string, string>, header: string): Record<string, unknown> {
  return envoyFilterResource(suiteMetadata(name, namespace, filter), selector, [{
    applyTo: "HTTP_FILTER",
    match: { context: CONTEXT.gateway, proxy: { proxyVersion: PROXY_VERSION_REGEX }, listener: { filterChain: { filter: { name: HCM_NAME } } } },
    patch: {
      operation: "INSERT_FIRST",
      value: {
        name,
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
          mutations: { request_mutations: [{ remove: header }] },
        },
      },
    },
  }]);
}
