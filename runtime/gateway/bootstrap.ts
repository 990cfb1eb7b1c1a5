// Reads the subset of an Envoy bootstrap the suite's standalone manifests use, and refuses
// everything else by name: a gateway that silently ignored config would lie about Envoy.
import { readFileSync } from "node:fs";
import { parse } from "yaml";

export interface WasmFilterConfig {
  kind: "wasm";
  name: string;
  rootId: string;
  vmId: string;
  configuration: string;
  filename: string;
  /** Legacy fail_open, when set. */
  failOpen?: boolean;
  /** failure_policy (Envoy 1.33+), when set. */
  failurePolicy?: "FAIL_RELOAD" | "FAIL_CLOSED" | "FAIL_OPEN" | "UNSPECIFIED";
}
export interface SessionFilterConfig { kind: "stateful_session"; header: string; strict: boolean }
export type FilterConfig = WasmFilterConfig | SessionFilterConfig;

export interface RouteConfig { prefix: string; headers: Array<{ name: string; exact: string }>; cluster: string; timeoutMs: number }
export interface VirtualHost { name: string; domains: string[]; routes: RouteConfig[] }
/** Envoy's preserve_case header formatter: names keep the case they arrived in; `properCase` formats the rest. */
export interface CaseFormatter { properCase: boolean }
export interface ClusterConfig {
  name: string;
  type: "STATIC" | "ORIGINAL_DST";
  endpoints: Array<{ address: string; port: number }>;
  /** ORIGINAL_DST: original_dst_lb_config.use_http_header (and its header name). */
  originalDstHeader?: string;
  /** preserve_case on the cluster's HTTP/1 protocol options: captures the response's names. */
  headerCase?: CaseFormatter;
}

export interface GatewayConfig {
  listener: { name: string; address: string; port: number };
  /** The connection manager's request-header limits. */
  limits: { maxHeadersCount: number; maxRequestHeadersKb: number };
  /** preserve_case on the connection manager: captures the request's names. */
  headerCase?: CaseFormatter;
  filters: FilterConfig[];
  virtualHosts: VirtualHost[];
  clusters: Map<string, ClusterConfig>;
}

export class UnsupportedConfig extends Error {}

function allow(obj: Record<string, unknown>, path: string, keys: string[]): void {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) throw new UnsupportedConfig(`${path}.${k}: not interpreted by the local gateway (it runs the suite's subset of Envoy; use --envoy for the rest)`);
}

const T = {
  hcm: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
  wasm: "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
  session: "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
  headerState: "type.googleapis.com/envoy.extensions.http.stateful_session.header.v3.HeaderBasedSessionState",
  router: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
  string: "type.googleapis.com/google.protobuf.StringValue",
};

function caseFormatter(format: any, path: string): CaseFormatter | undefined {
  if (!format) return undefined;
  const f = format.stateful_formatter;
  const type = "type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig";
  if (!f || f.typed_config?.["@type"] !== type) throw new UnsupportedConfig(`${path}: only the preserve_case stateful formatter is interpreted`);
  return { properCase: f.typed_config.formatter_type_on_envoy_headers === "PROPER_CASE" };
}

/** A protobuf Duration in its JSON/YAML form ("30s", "0.5s") in milliseconds. */
function durationMs(text: unknown, path: string): number {
  const m = typeof text === "string" ? /^(\d+(?:\.\d+)?)s$/.exec(text) : null;
  if (!m) throw new UnsupportedConfig(`${path}: a duration such as "30s" is expected`);
  return Math.round(Number(m[1]) * 1000);
}

export function loadBootstrap(file: string): GatewayConfig {
  return interpret(parse(readFileSync(file, "utf8")));
}

export function interpret(doc: any): GatewayConfig {
  allow(doc, "bootstrap", ["static_resources"]);
  allow(doc.static_resources, "static_resources", ["listeners", "clusters"]);
  const listeners = doc.static_resources.listeners ?? [];
  if (listeners.length !== 1) throw new UnsupportedConfig(`static_resources.listeners: the local gateway serves exactly one listener, found ${listeners.length}`);
  const l = listeners[0];
  allow(l, "listeners[0]", ["name", "address", "filter_chains"]);
  const sa = l.address?.socket_address;
  if (!sa || sa.address !== "127.0.0.1") throw new UnsupportedConfig("listeners[0].address: the local gateway binds 127.0.0.1 only");
  if (l.filter_chains?.length !== 1 || l.filter_chains[0].filters?.length !== 1) throw new UnsupportedConfig("listeners[0].filter_chains: exactly one chain with one network filter (the HTTP connection manager)");
  const net = l.filter_chains[0].filters[0];
  const hcm = net.typed_config;
  if (net.name !== "envoy.filters.network.http_connection_manager" || hcm?.["@type"] !== T.hcm) throw new UnsupportedConfig("listeners[0]: only the HTTP connection manager is interpreted");
  allow(hcm, "http_connection_manager", ["@type", "stat_prefix", "route_config", "http_filters", "http_protocol_options", "common_http_protocol_options", "max_request_headers_kb"]);
  if (hcm.common_http_protocol_options) allow(hcm.common_http_protocol_options, "common_http_protocol_options", ["max_headers_count"]);
  // Envoy's defaults: 100 headers, 60 KiB of them.
  const limits = { maxHeadersCount: hcm.common_http_protocol_options?.max_headers_count ?? 100, maxRequestHeadersKb: hcm.max_request_headers_kb ?? 60 };
  if (hcm.http_protocol_options) {
    // Only the header-key format is interpreted (preserve_case, below).
    allow(hcm.http_protocol_options, "http_protocol_options", ["header_key_format"]);
  }
  const headerCase = caseFormatter(hcm.http_protocol_options?.header_key_format, "http_protocol_options.header_key_format");
  const filters: FilterConfig[] = [];
  const httpFilters = hcm.http_filters ?? [];
  for (const [i, f] of httpFilters.entries()) {
    const at = `http_filters[${i}]`;
    const type = f.typed_config?.["@type"];
    if (type === T.router) {
      if (i !== httpFilters.length - 1) throw new UnsupportedConfig(`${at}: the router must be last`);
      continue;
    }
    if (type === T.wasm) {
      const c = f.typed_config.config;
      allow(c, `${at}.config`, ["name", "root_id", "fail_open", "failure_policy", "configuration", "vm_config"]);
      if (c.failure_policy !== undefined && !["FAIL_RELOAD", "FAIL_CLOSED", "FAIL_OPEN", "UNSPECIFIED"].includes(c.failure_policy)) {
        throw new UnsupportedConfig(`${at}.config.failure_policy: ${c.failure_policy} is not a FailurePolicy`);
      }
      if (c.configuration?.["@type"] !== T.string) throw new UnsupportedConfig(`${at}.config.configuration: only StringValue is interpreted`);
      const filename = c.vm_config?.code?.local?.filename;
      if (!filename) throw new UnsupportedConfig(`${at}.config.vm_config.code: only local files are interpreted`);
      filters.push({ kind: "wasm", name: c.name, rootId: c.root_id ?? "", vmId: c.vm_config.vm_id ?? "", configuration: c.configuration.value, filename, failOpen: c.fail_open, failurePolicy: c.failure_policy });
      continue;
    }
    if (type === T.session) {
      const st = f.typed_config.session_state;
      if (st?.typed_config?.["@type"] !== T.headerState) throw new UnsupportedConfig(`${at}: only header-based session state is interpreted`);
      filters.push({ kind: "stateful_session", header: st.typed_config.name, strict: f.typed_config.strict === true });
      continue;
    }
    throw new UnsupportedConfig(`${at}: filter ${f.name} (${type}) is not interpreted by the local gateway`);
  }
  const virtualHosts: VirtualHost[] = (hcm.route_config?.virtual_hosts ?? []).map((vh: any, i: number) => {
    allow(vh, `virtual_hosts[${i}]`, ["name", "domains", "routes"]);
    return {
      name: vh.name,
      domains: vh.domains,
      routes: vh.routes.map((r: any, k: number) => {
        allow(r, `virtual_hosts[${i}].routes[${k}]`, ["name", "match", "route"]);
        allow(r.match, `virtual_hosts[${i}].routes[${k}].match`, ["prefix", "headers"]);
        allow(r.route, `virtual_hosts[${i}].routes[${k}].route`, ["cluster", "timeout"]);
        return {
          prefix: r.match.prefix ?? "/",
          headers: (r.match.headers ?? []).map((h: any) => {
            if (h.string_match?.exact === undefined) throw new UnsupportedConfig(`virtual_hosts[${i}].routes[${k}].match.headers: only string_match.exact is interpreted`);
            return { name: h.name, exact: h.string_match.exact };
          }),
          cluster: r.route.cluster,
          timeoutMs: r.route.timeout === undefined ? 15000 : durationMs(r.route.timeout, `virtual_hosts[${i}].routes[${k}].route.timeout`),
        };
      }),
    };
  });
  const clusters = new Map<string, ClusterConfig>();
  for (const [i, c] of (doc.static_resources.clusters ?? []).entries()) {
    if (c.type === "ORIGINAL_DST") {
      allow(c, `clusters[${i}]`, ["name", "type", "lb_policy", "connect_timeout", "cleanup_interval", "original_dst_lb_config", "transport_socket"]);
      const lb = c.original_dst_lb_config ?? {};
      allow(lb, `clusters[${i}].original_dst_lb_config`, ["use_http_header", "http_header_name"]);
      const originalDstHeader = lb.use_http_header === true ? String(lb.http_header_name ?? "x-envoy-original-dst-host").toLowerCase() : undefined;
      clusters.set(c.name, { name: c.name, type: "ORIGINAL_DST", endpoints: [], originalDstHeader });
      continue;
    }
    if (c.type !== "STATIC") throw new UnsupportedConfig(`clusters[${i}].type: ${c.type} is not interpreted (STATIC and ORIGINAL_DST are)`);
    allow(c, `clusters[${i}]`, ["name", "type", "connect_timeout", "load_assignment", "typed_extension_protocol_options"]);
    const opts = c.typed_extension_protocol_options?.["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    const clusterCase = caseFormatter(opts?.explicit_http_config?.http_protocol_options?.header_key_format, `clusters[${i}].typed_extension_protocol_options`);
    const endpoints = c.load_assignment.endpoints.flatMap((e: any) => e.lb_endpoints.map((lb: any) => ({ address: lb.endpoint.address.socket_address.address, port: lb.endpoint.address.socket_address.port_value })));
    for (const e of endpoints) if (e.address !== "127.0.0.1") throw new UnsupportedConfig(`clusters[${i}]: the local gateway only connects to 127.0.0.1`);
    clusters.set(c.name, { name: c.name, type: "STATIC", endpoints, headerCase: clusterCase });
  }
  for (const vh of virtualHosts) for (const r of vh.routes) if (!clusters.has(r.cluster)) throw new UnsupportedConfig(`route to unknown cluster ${r.cluster}`);
  return { listener: { name: l.name, address: sa.address, port: sa.port_value }, limits, headerCase, filters, virtualHosts, clusters };
}
