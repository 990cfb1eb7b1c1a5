// Property lookup (reference section 2.10): the first path segment selects a CEL activation
// name, a wasm token, or filter state; values are encoded as Envoy encodes them.
import { encodePairs, toBytes } from "../abi/pairs.js";
import type { PluginConfig } from "./config.js";
import type { ContextState } from "./contexts.js";

const str = (s: string | undefined): Buffer | undefined => (s === undefined ? undefined : toBytes(s));
const int64 = (n: number | bigint | undefined): Buffer | undefined => {
  if (n === undefined) return undefined;
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(n));
  return b;
};
const bool = (v: boolean | undefined): Buffer | undefined => (v === undefined ? undefined : Buffer.from([v ? 1 : 0]));

export function resolveProperty(cfg: PluginConfig, node: { id: string; cluster: string; metadata: Record<string, string> }, ctx: ContextState | undefined, path: string[]): Buffer | undefined {
  const [head, ...rest] = path;
  switch (head) {
    case "plugin_name":
      return rest.length === 0 ? str(cfg.name) : undefined;
    case "plugin_root_id":
      return rest.length === 0 ? str(cfg.rootId ?? "") : undefined;
    case "plugin_vm_id":
      return rest.length === 0 ? str(cfg.vmId ?? "") : undefined;
  }
  if (head === "xds" && rest[0] === "node") return nodeProperty(node, rest.slice(1));
  if (!ctx || ctx.kind !== "stream") return undefined; // no stream info on a root context
  const s = ctx.stream;
  const info = s.info;
  switch (head) {
    case "connection_id":
      return rest.length === 0 ? int64(info.connectionId) : undefined;
    case "request": {
      const h = s.requestHeadersForProperties(ctx.slot);
      const [field, sub] = rest;
      if (field === "protocol") return str(info.protocol);
      if (field === "time") return int64(BigInt(Math.round(s.startMs * 1000)) * 1000n);
      if (field === "id" || field === "path" || field === "url_path" || field === "host" || field === "scheme" || field === "method" ||
        field === "referer" || field === "useragent" || field === "query" || field === "headers") {
        if (!h) return undefined;
        const path = h.get(":path");
        switch (field) {
          case "path": return str(path);
          case "url_path": return str(path === undefined ? undefined : path.split("?")[0]);
          case "query": return str(path === undefined ? undefined : path.includes("?") ? path.slice(path.indexOf("?") + 1) : "");
          case "host": return str(h.get(":authority"));
          case "scheme": return str(h.get(":scheme"));
          case "method": return str(h.get(":method"));
          case "referer": return str(h.get("referer"));
          case "useragent": return str(h.get("user-agent"));
          case "id": return str(h.get("x-request-id"));
          case "headers":
            if (sub === undefined) return headerMapProperty(h.pairs());
            return rest.length === 2 ? joinedHeader(h.getAll(sub)) : undefined;
        }
      }
      return undefined;
    }
    case "response": {
      const [field, sub] = rest;
      if (field === "code") return int64(s.response?.status);
      if (field === "code_details") return str(s.response?.details);
      if (field === "headers") {
        const h = s.responseHeadersForProperties();
        if (!h) return undefined;
        if (sub === undefined) return headerMapProperty(h.pairs());
        return rest.length === 2 ? joinedHeader(h.getAll(sub)) : undefined;
      }
      return undefined;
    }
    case "source":
    case "destination": {
      const addr = head === "source" ? info.source : info.destination;
      if (rest[0] === "address" && rest.length === 1) return str(addr);
      if (rest[0] === "port" && rest.length === 1) return addr === undefined ? undefined : int64(Number(addr.slice(addr.lastIndexOf(":") + 1)));
      return undefined;
    }
    case "connection": {
      const c = info.connection ?? {};
      if (rest.length !== 1) return undefined;
      switch (rest[0]) {
        case "id": return int64(info.connectionId);
        case "mtls": return bool(c.mtls ?? false);
        case "requested_server_name": return str(c.requestedServerName);
        case "uri_san_peer_certificate": return str(c.uriSanPeerCertificate);
        case "uri_san_local_certificate": return str(c.uriSanLocalCertificate);
        case "dns_san_peer_certificate": return str(c.dnsSanPeerCertificate);
        case "subject_peer_certificate": return str(c.subjectPeerCertificate);
        case "tls_version": return str(c.tlsVersion);
      }
      return undefined;
    }
    case "upstream": {
      if (rest[0] === "address" && rest.length === 1) return str(s.upstreamAddress);
      return undefined;
    }
    case "xds": {
      if (rest[0] === "route_metadata") return routeMetadataProperty(info.routeMetadata, rest.slice(1));
      if (rest.length !== 1) return undefined;
      switch (rest[0]) {
        case "cluster_name": return str(info.clusterName);
        case "route_name": return str(info.routeName);
        case "listener_direction": return int64(({ UNSPECIFIED: 0, INBOUND: 1, OUTBOUND: 2 } as const)[cfg.direction ?? "UNSPECIFIED"]);
      }
      return undefined;
    }
  }
  // filter_state.<key>: an object's string form (a wasm state's bytes); objects set through
  // set_envoy_filter_state are kept under "envoy:<key>" here.
  if (head === "filter_state") {
    if (rest.length !== 1) return undefined;
    return s.filterState.get(rest[0]) ?? s.filterState.get(`envoy:${rest[0]}`);
  }
  // Values written with proxy_set_property live in filter state as "wasm.<name>".
  if (rest.length === 0) return s.filterState.get(`wasm.${head}`);
  return undefined;
}

function joinedHeader(values: string[]): Buffer | undefined {
  return values.length === 0 ? undefined : toBytes(values.join(","));
}

/** A header map as a CEL map: keys deduplicated, values joined with ",". */
function headerMapProperty(pairs: Array<[string, string]>): Buffer {
  const joined = new Map<string, string[]>();
  for (const [k, v] of pairs) joined.set(k, [...(joined.get(k) ?? []), v]);
  return encodePairs([...joined].map(([k, vs]) => [k, vs.join(",")]));
}

function nodeProperty(node: { id: string; cluster: string; metadata: Record<string, string> }, rest: string[]): Buffer | undefined {
  if (rest.length === 1 && rest[0] === "id") return str(node.id);
  if (rest.length === 1 && rest[0] === "cluster") return str(node.cluster);
  if (rest.length === 2 && rest[0] === "metadata") return str(node.metadata[rest[1]]);
  // The whole Node message (binary protobuf) and the metadata Struct are not emulated.
  return undefined;
}

/**
 * xds.route_metadata.filter_metadata.<namespace>.<field>: CEL reads a Struct as a map, so a
 * string field is its bytes, a number a double, a bool one byte. The whole Metadata message and
 * a whole namespace (binary protobuf, a map of Values) are not emulated.
 */
function routeMetadataProperty(md: Record<string, Record<string, string | number | boolean>> | undefined, rest: string[]): Buffer | undefined {
  if (rest.length !== 3 || rest[0] !== "filter_metadata") return undefined;
  const v = md?.[rest[1]]?.[rest[2]];
  if (typeof v === "string") return toBytes(v);
  if (typeof v === "boolean") return bool(v);
  if (typeof v === "number") {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    return b;
  }
  return undefined;
}
