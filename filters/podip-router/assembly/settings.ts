// podip-router configuration. Mirrors ../config.schema.json.
import { ConfigReader, fieldPath, indexPath } from "../../../runtime/assembly/config";
import { JsonKind, JsonNumber, JsonObject, JsonString } from "../../../runtime/assembly/json";
import { Cidr, parseCidr, parseIp } from "../../../runtime/assembly/ip";
import { deniedRanges, parsePort } from "./target";

export enum HandOff { Session, OriginalDstFilterState, OriginalDstHeader }

export class PortRange {
  constructor(public low: i32, public high: i32) {}
}

export class Settings {
  handOff: HandOff = HandOff.Session;
  pathPrefix: string = "/_pod/";
  hostSuffix: string = "";
  podNames: Map<string, string> = new Map<string, string>();
  defaultPort: i32 = 0;
  allowedCidrs: Array<Cidr> = new Array<Cidr>();
  allowedPorts: Array<PortRange> = new Array<PortRange>();
  denied: Array<Cidr> = deniedRanges();
  trustedCidrs: Array<Cidr> = new Array<Cidr>();
  trustedHeader: string = "";
  principals: Array<string> = new Array<string>();
  sessionHeader: string = "x-podip-session";
  pinHeader: string = "x-podip-router-pin";
  responseHeader: string = "x-pinned-upstream";
  rewriteAuthority: string = "";
  strip: Array<string> = new Array<string>();
  dryRun: bool = false;
  stampBuild: bool = false;
  allowLoopback: bool = false;

  portAllowed(port: i32): bool {
    for (let i = 0; i < this.allowedPorts.length; i++) {
      const r = unchecked(this.allowedPorts[i]);
      if (port >= r.low && port <= r.high) return true;
    }
    return false;
  }
}

function headerName(r: ConfigReader, obj: JsonObject, path: string, key: string, fallback: string): string {
  const v = r.str(obj, path, key, fallback);
  if (v.length == 0) { r.fail(fieldPath(path, key), "must not be empty"); return fallback; }
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f)) {
      r.fail(fieldPath(path, key), "must be a lowercase header name, got \"" + v + "\"");
      return fallback;
    }
  }
  return v;
}

/** Decodes the configuration into `s`. Returns "" or "<field path>: <reason>". */
export function parseSettings(text: string, s: Settings): string {
  const r = new ConfigReader();
  const obj = r.parse(text);
  if (obj === null) return r.error;
  r.allowKeys(obj, "", ["hand_off", "path_prefix", "host_suffix", "pod_names", "default_port", "allowed_cidrs", "allowed_ports",
    "authorization", "session_header", "pin_header", "response_header", "rewrite_authority", "strip_headers", "dry_run", "stamp_build", "allow_loopback"]);
  const handOff = r.oneOf(obj, "", "hand_off", ["session", "original-dst-filter-state", "original-dst-header"], "session");
  s.handOff = handOff == "session" ? HandOff.Session : handOff == "original-dst-header" ? HandOff.OriginalDstHeader : HandOff.OriginalDstFilterState;
  s.pathPrefix = r.str(obj, "", "path_prefix", "/_pod/");
  if (s.pathPrefix.length > 0 && (!s.pathPrefix.startsWith("/") || !s.pathPrefix.endsWith("/") || s.pathPrefix.length < 3 || s.pathPrefix.indexOf("%") >= 0)) {
    r.fail("path_prefix", "must look like \"/_pod/\" (start and end with '/'), or be \"\" to turn the path form off");
  }
  s.hostSuffix = r.str(obj, "", "host_suffix", "");
  if (s.hostSuffix.length > 0 && (s.hostSuffix.startsWith(".") || s.hostSuffix.endsWith(".") || s.hostSuffix.indexOf(".") < 0 || s.hostSuffix.toLowerCase() != s.hostSuffix)) {
    r.fail("host_suffix", "must be a lowercase domain like \"pods.example.com\"");
  }
  if (r.ok && s.pathPrefix.length == 0 && s.hostSuffix.length == 0) r.fail("path_prefix", "both URL forms are off (path_prefix and host_suffix empty)");
  s.podNames = r.stringMap(obj, "", "pod_names", 4096);
  const names = s.podNames.keys();
  for (let i = 0; i < names.length && r.ok; i++) {
    if (parseIp(s.podNames.get(names[i])) === null) r.fail(fieldPath("pod_names", names[i]), "must map to a canonical IP address, got \"" + s.podNames.get(names[i]) + "\"");
  }
  s.defaultPort = <i32>r.int(obj, "", "default_port", 0, 1, 65535);

  const cidrs = r.strings(obj, "", "allowed_cidrs", 1024, new Array<string>());
  if (r.ok && cidrs.length == 0) r.fail("allowed_cidrs", "is required and must not be empty (the pod ranges pins may reach)");
  for (let i = 0; i < cidrs.length && r.ok; i++) {
    const c = parseCidr(cidrs[i]);
    if (c === null) r.fail(indexPath("allowed_cidrs", i), "not a canonical CIDR: \"" + cidrs[i] + "\"");
    else s.allowedCidrs.push(c);
  }
  const ports = r.array(obj, "", "allowed_ports", 256, true);
  if (ports !== null && r.ok) {
    if (ports.items.length == 0) r.fail("allowed_ports", "must not be empty");
    for (let i = 0; i < ports.items.length && r.ok; i++) {
      const v = ports.items[i];
      const p = indexPath("allowed_ports", i);
      if (v.kind == JsonKind.Number) {
        const n = changetype<JsonNumber>(v);
        if (!n.isInteger || n.value < 1 || n.value > 65535) r.fail(p, "must be a port 1-65535");
        else s.allowedPorts.push(new PortRange(<i32>n.value, <i32>n.value));
      } else if (v.kind == JsonKind.String) {
        const t = changetype<JsonString>(v).value;
        const dash = t.indexOf("-");
        const low = dash > 0 ? parsePort(t.substring(0, dash)) : -1;
        const high = dash > 0 ? parsePort(t.substring(dash + 1)) : -1;
        if (low < 0 || high < low) r.fail(p, "must be a range like \"8000-8100\", got \"" + t + "\"");
        else s.allowedPorts.push(new PortRange(low, high));
      } else r.fail(p, "must be a port number or a \"low-high\" range");
    }
  }

  const auth = r.object(obj, "", "authorization", true);
  if (auth !== null && r.ok) {
    r.allowKeys(auth, "authorization", ["source_cidrs", "header", "principals"]);
    const src = r.strings(auth, "authorization", "source_cidrs", 256, new Array<string>());
    for (let i = 0; i < src.length && r.ok; i++) {
      const c = parseCidr(src[i]);
      if (c === null) r.fail(indexPath("authorization.source_cidrs", i), "not a canonical CIDR: \"" + src[i] + "\"");
      else s.trustedCidrs.push(c);
    }
    if (auth.has("header")) s.trustedHeader = headerName(r, auth, "authorization", "header", "");
    s.principals = r.strings(auth, "authorization", "principals", 256, new Array<string>());
    for (let i = 0; i < s.principals.length && r.ok; i++) {
      if (!s.principals[i].startsWith("spiffe://")) r.fail(indexPath("authorization.principals", i), "must be a SPIFFE id (spiffe://...)");
    }
    if (r.ok && s.trustedCidrs.length == 0 && s.trustedHeader.length == 0 && s.principals.length == 0) {
      r.fail("authorization", "needs at least one of source_cidrs, header, principals (who may pin)");
    }
  }
  s.sessionHeader = headerName(r, obj, "", "session_header", "x-podip-session");
  s.pinHeader = headerName(r, obj, "", "pin_header", "x-podip-router-pin");
  s.responseHeader = headerName(r, obj, "", "response_header", "x-pinned-upstream");
  s.rewriteAuthority = r.str(obj, "", "rewrite_authority", "");
  s.strip = r.strings(obj, "", "strip_headers", 32, new Array<string>());
  for (let i = 0; i < s.strip.length && r.ok; i++) {
    const h = s.strip[i];
    if (h.length == 0 || h.toLowerCase() != h || h.startsWith(":")) r.fail(indexPath("strip_headers", i), "must be a lowercase header name");
  }
  s.strip.push("x-envoy-original-dst-host");
  s.strip.push(s.sessionHeader);
  s.strip.push(s.pinHeader);
  s.dryRun = r.bool(obj, "", "dry_run", false);
  s.stampBuild = r.bool(obj, "", "stamp_build", false);
  // Local trials only (replicas on 127.0.0.x): loopback leaves the deny list; nothing else does.
  s.allowLoopback = r.bool(obj, "", "allow_loopback", false);
  if (s.allowLoopback) {
    const kept = new Array<Cidr>();
    for (let i = 0; i < s.denied.length; i++) {
      const d = s.denied[i].toString();
      if (d != "127.0.0.0/8" && d != "::1/128") kept.push(s.denied[i]);
    }
    s.denied = kept;
  }
  return r.error;
}
