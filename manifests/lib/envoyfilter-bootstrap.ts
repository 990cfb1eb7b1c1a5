// Renders an Istio EnvoyFilter's patches into a standalone Envoy bootstrap, the way istiod would
// apply them to a proxy's config, so that real Envoy can judge the values (`envoy --mode validate`).
// The base stands in for what Istio generates: one listener whose HTTP connection manager ends with
// the router, the virtual hosts (and named routes) the patches' matches name, the STATIC clusters
// they name (Istio's `direction|port|subset|host` names) beside an unrelated one, and the SDS
// cluster Istio's secrets come from. Merge follows protobuf merge (Istio's MERGE): messages merge
// field by field, lists append, scalars replace. Only the operations the suite ships are
// rendered; anything else is refused by name.
import { HCM_NAME as HCM, HCM_TYPE, ROUTER_FILTER } from "../src/wasm.js";

const ROUTER = "envoy.filters.http.router";

function mergeInto(dst: any, src: any): any {
  if (Array.isArray(dst) && Array.isArray(src)) return [...dst, ...structuredClone(src)];
  if (dst && src && typeof dst === "object" && typeof src === "object" && !Array.isArray(dst) && !Array.isArray(src)) {
    for (const [k, v] of Object.entries(src)) dst[k] = k in dst ? mergeInto(dst[k], v) : structuredClone(v);
    return dst;
  }
  return structuredClone(src);
}

/** Local wasm paths of a pod (/var/local/lib/wasm/<name>.wasm) -> the built module under dist/. */
function localModules(value: any): any {
  return JSON.parse(JSON.stringify(value).replace(/"\/var\/local\/lib\/wasm\/([a-z0-9-]+\.wasm)"/g, '"dist/$1"'));
}

/** Does an Istio-named cluster (`direction|port|subset|host`) match a patch's `match.cluster`? */
function clusterMatches(name: string, m: any): boolean {
  if (!m) return true;
  if (m.name !== undefined) return m.name === name;
  const [, port, subset, host] = name.split("|");
  if (m.portNumber !== undefined && String(m.portNumber) !== port) return false;
  if (m.service !== undefined && m.service !== host) return false;
  if (m.subset !== undefined && m.subset !== subset) return false;
  return port !== undefined;
}

/** The cluster Istio would generate for a patch's `match.cluster` in that context. */
function istioClusterName(context: string, m: any): string {
  if (m.name !== undefined) return m.name;
  if (context === "SIDECAR_INBOUND") return `inbound|${m.portNumber ?? 8080}||`;
  return `outbound|${m.portNumber ?? 80}|${m.subset ?? ""}|${m.service ?? "service.default.svc.cluster.local"}`;
}

export interface PatchedBootstrapOptions {
  /** Apply only the patches of this context (default: every patch). */
  context?: string;
  /** Where each cluster's one endpoint listens (default 127.0.0.1:18999; null: no endpoint). */
  endpointPort?: (cluster: string) => number | null;
  /** More STATIC clusters Istio would have made (subset clusters a patch refers to). */
  extraClusters?: string[];
}

export function envoyFilterBootstrap(ef: any, opts: PatchedBootstrapOptions = {}): Record<string, any> {
  const hcm: any = {
    "@type": HCM_TYPE,
    stat_prefix: "patched",
    route_config: { name: "patched", virtual_hosts: [] as any[] },
    http_filters: [ROUTER_FILTER],
  };
  const staticCluster = (name: string) => {
    const port = opts.endpointPort ? opts.endpointPort(name) : 18999;
    return {
      name, type: "STATIC", connect_timeout: "1s",
      load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: port === null ? [] : [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] }] },
    };
  };
  const patches = (ef.spec.configPatches as any[]).filter((p) => !opts.context || p.match?.context === opts.context);
  const sds = {
    ...staticCluster("sds-grpc"),
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
  // An unrelated cluster ("other", which no scoped patch may touch), and the clusters the patches name.
  const clusters: any[] = [staticCluster("outbound|9090||other.default.svc.cluster.local")];
  for (const p of patches) {
    if (p.applyTo === "CLUSTER" && p.match?.cluster) {
      const name = istioClusterName(p.match.context, p.match.cluster);
      if (!clusters.some((c) => c.name === name)) clusters.push(staticCluster(name));
    }
  }
  for (const name of opts.extraClusters ?? []) if (!clusters.some((c) => c.name === name)) clusters.push(staticCluster(name));
  const routed = clusters[clusters.length - 1].name;
  // Virtual hosts as the patches name them (the first one takes every domain), each with a route
  // to the last cluster; a named route a MERGE patch matches is created first in its host.
  const vhosts = hcm.route_config.virtual_hosts as any[];
  const vhost = (name: string) => {
    let vh = vhosts.find((v) => v.name === name);
    if (!vh) {
      vh = { name, domains: [vhosts.length === 0 ? "*" : name], routes: [{ match: { prefix: "/" }, route: { cluster: routed } }] };
      vhosts.push(vh);
    }
    return vh;
  };
  for (const p of patches) if (p.match?.routeConfiguration?.vhost?.name) vhost(p.match.routeConfiguration.vhost.name);
  if (vhosts.length === 0) vhost("service");
  for (const [i, p] of patches.entries()) {
    const at = `${ef.metadata.name}.configPatches[${i}]`;
    const value = localModules(p.patch.value);
    const op = `${p.applyTo} ${p.patch.operation}`;
    if (op === "HTTP_FILTER INSERT_BEFORE" || op === "HTTP_FILTER INSERT_AFTER") {
      const sub = p.match?.listener?.filterChain?.filter?.subFilter?.name;
      const idx = hcm.http_filters.findIndex((f: any) => f.name === sub);
      if (idx < 0) throw new Error(`${at}: subFilter ${sub} is not in the connection manager`);
      hcm.http_filters.splice(p.patch.operation === "INSERT_BEFORE" ? idx : idx + 1, 0, value);
    } else if (op === "HTTP_FILTER INSERT_FIRST") {
      hcm.http_filters.unshift(value);
    } else if (op === "NETWORK_FILTER MERGE") {
      if (value.name !== HCM) throw new Error(`${at}: only the HTTP connection manager is merged`);
      const { "@type": type, ...fields } = value.typed_config;
      if (type !== HCM_TYPE) throw new Error(`${at}: typed_config is not the HTTP connection manager`);
      mergeInto(hcm, fields);
    } else if (op === "CLUSTER MERGE") {
      for (const c of clusters) if (clusterMatches(c.name, p.match?.cluster)) mergeInto(c, value);
    } else if (op === "CLUSTER ADD") {
      clusters.push(value);
    } else if (op === "HTTP_ROUTE INSERT_FIRST") {
      vhost(p.match?.routeConfiguration?.vhost?.name ?? vhosts[0].name).routes.unshift(value);
    } else if (op === "HTTP_ROUTE MERGE") {
      const vh = vhost(p.match?.routeConfiguration?.vhost?.name ?? vhosts[0].name);
      const routeName = p.match?.routeConfiguration?.vhost?.route?.name;
      let r = vh.routes.find((x: any) => x.name === routeName);
      if (!r) {
        r = { name: routeName, match: { prefix: "/", headers: [{ name: "x-patched-route", string_match: { exact: String(routeName) } }] }, route: { cluster: routed } };
        vh.routes.unshift(r);
      }
      mergeInto(r, value);
    } else {
      throw new Error(`${at}: ${op} is not rendered`);
    }
  }
  return {
    // Istio's proxies always have a node id and cluster (SDS secrets require them).
    node: { id: "sidecar~10.0.0.1~app.default~default.svc.cluster.local", cluster: "app.default" },
    static_resources: {
      listeners: [{
        name: "patched",
        address: { socket_address: { address: "127.0.0.1", port_value: 0 } },
        filter_chains: [{ filters: [{ name: HCM, typed_config: hcm }] }],
      }],
      clusters: [...clusters, sds],
    },
  };
}
