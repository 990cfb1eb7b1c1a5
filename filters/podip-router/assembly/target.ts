// Reading a pin target from a URL, strictly. Pure functions: every form the README documents
// is accepted and everything else is refused with a reason, before any policy runs.
import { Cidr, IpAddr, parseCidr, parseIp } from "../../../runtime/assembly/ip";

export enum Reject { None, Malformed, UnknownName, DeniedRange, NotAllowedRange, PortNotAllowed, Unauthorized, Unreadable }

export const REASONS: Array<string> = ["", "malformed", "unknown_name", "denied_range", "not_allowed_range", "port_not_allowed", "unauthorized", "unreadable"];

export class Target {
  constructor(
    public addr: IpAddr | null,
    public port: i32,
    /** The request path left after the prefix ("/" at least), query kept. */
    public rest: string,
    public reject: Reject,
    public reason: string,
  ) {}

  static fail(reject: Reject, reason: string): Target { return new Target(null, 0, "", reject, reason); }

  /** "ip:port", IPv6 in brackets (Envoy's address text, and the stateful-session value). */
  hostPort(): string {
    const a = this.addr!;
    return a.v6 ? "[" + a.toString() + "]:" + this.port.toString() : a.toString() + ":" + this.port.toString();
  }
}

/** A decimal port 1-65535 without sign, spaces or leading zeros; -1 otherwise. */
export function parsePort(s: string): i32 {
  if (s.length == 0 || s.length > 5 || s.charCodeAt(0) == 0x30) return -1;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v >= 1 && v <= 65535 ? v : -1;
}

/**
 * Parses "<ipv4>[:port]", "[<ipv6>][:port]" or, when `names` has it, "<pod-name>[:port]".
 * Addresses must be canonical text; anything percent-encoded is refused.
 */
export function parseAddress(seg: string, names: Map<string, string>, defaultPort: i32): Target {
  if (seg.length == 0) return Target.fail(Reject.Malformed, "missing pod address");
  if (seg.length > 80) return Target.fail(Reject.Malformed, "pod address too long");
  if (seg.indexOf("%") >= 0) return Target.fail(Reject.Malformed, "percent-encoded pod address");
  let host: string, portText: string | null = null;
  if (seg.charCodeAt(0) == 0x5b) {
    const close = seg.indexOf("]");
    if (close < 0) return Target.fail(Reject.Malformed, "unterminated IPv6 literal");
    host = seg.substring(1, close);
    const after = seg.substring(close + 1);
    if (after.length > 0) {
      if (after.charCodeAt(0) != 0x3a) return Target.fail(Reject.Malformed, "text after IPv6 literal");
      portText = after.substring(1);
    }
    if (host.indexOf(":") < 0) return Target.fail(Reject.Malformed, "brackets hold no IPv6 address");
  } else {
    const colon = seg.indexOf(":");
    if (colon >= 0) {
      if (seg.indexOf(":", colon + 1) >= 0) return Target.fail(Reject.Malformed, "IPv6 addresses need brackets");
      host = seg.substring(0, colon);
      portText = seg.substring(colon + 1);
    } else host = seg;
  }
  let port = defaultPort;
  if (portText !== null) {
    port = parsePort(portText!);
    if (port < 0) return Target.fail(Reject.Malformed, "port must be 1-65535 in plain decimal");
  }
  if (port <= 0) return Target.fail(Reject.Malformed, "no port given and no default_port configured");
  let addr = parseIp(host);
  if (addr === null && host.indexOf(":") < 0 && names.has(host)) {
    addr = parseIp(names.get(host));
    if (addr === null) return Target.fail(Reject.UnknownName, "pod name maps to no address");
  }
  if (addr === null) {
    return Target.fail(names.size > 0 && isNameLike(host) ? Reject.UnknownName : Reject.Malformed,
      names.size > 0 && isNameLike(host) ? "unknown pod name" : "not a canonical IPv4 or IPv6 address");
  }
  return new Target(addr, port, "", Reject.None, "");
}

function isNameLike(s: string): bool {
  if (s.length == 0 || s.length > 63) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d)) return false;
  }
  return true;
}

/** A path segment that would let the forwarded path climb or smuggle: "..", ".", encoded dots or slashes, backslashes. */
function unsafeRest(rest: string): bool {
  const q = rest.indexOf("?");
  const path = q >= 0 ? rest.substring(0, q) : rest;
  const lower = path.toLowerCase();
  if (lower.indexOf("%2e") >= 0 || lower.indexOf("%2f") >= 0 || lower.indexOf("%5c") >= 0 || path.indexOf("\\") >= 0) return true;
  const segs = path.split("/");
  for (let i = 0; i < segs.length; i++) if (segs[i] == ".." || segs[i] == ".") return true;
  return false;
}

/**
 * The path form: `<prefix><address>[/rest][?query]` with prefix like "/_pod/". Null when the
 * path does not start with the prefix (not a pin request).
 */
export function parsePathForm(path: string, prefix: string, names: Map<string, string>, defaultPort: i32): Target | null {
  if (prefix.length == 0 || !path.startsWith(prefix)) return null;
  const after = path.substring(prefix.length);
  let end = after.length;
  const slash = after.indexOf("/");
  const query = after.indexOf("?");
  if (slash >= 0) end = slash;
  if (query >= 0 && query < end) end = query;
  const t = parseAddress(after.substring(0, end), names, defaultPort);
  if (t.reject != Reject.None) return t;
  let rest = after.substring(end);
  if (rest.length == 0 || rest.charCodeAt(0) == 0x3f) rest = "/" + rest;
  if (rest.startsWith("//")) return Target.fail(Reject.Malformed, "empty path segment after the address");
  const trimmedPrefix = prefix.endsWith("/") ? prefix.substring(0, prefix.length - 1) : prefix;
  if (rest.startsWith(prefix) || rest == trimmedPrefix || rest.startsWith(trimmedPrefix + "?")) return Target.fail(Reject.Malformed, "nested pin prefix");
  if (unsafeRest(rest)) return Target.fail(Reject.Malformed, "path traversal after the address");
  t.rest = rest;
  return t;
}

/**
 * The host form: `<a>-<b>-<c>-<d>.<suffix>` for IPv4, or the canonical IPv6 text with ':'
 * written as '-' (`fd00-10--5.<suffix>` for fd00:10::5). The :authority's port, if any, is
 * the listener's and is ignored. Null when the host does not end with the suffix.
 */
export function parseHostForm(authority: string, suffix: string, names: Map<string, string>, defaultPort: i32): Target | null {
  if (suffix.length == 0) return null;
  let host = authority;
  const colon = host.lastIndexOf(":");
  if (colon > 0) host = host.substring(0, colon);
  const dotSuffix = "." + suffix;
  if (!host.endsWith(dotSuffix)) return null;
  if (host.length == dotSuffix.length) return Target.fail(Reject.Malformed, "empty pod label");
  const label = host.substring(0, host.length - dotSuffix.length);
  if (label.indexOf(".") >= 0) return Target.fail(Reject.Malformed, "the pod label must be a single DNS label");
  // IPv4: exactly three '-' and digits; otherwise IPv6 with ':' spelled '-'.
  let dashes = 0;
  let digitsOnly = true;
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    if (c == 0x2d) dashes++;
    else if (c < 0x30 || c > 0x39) digitsOnly = false;
  }
  if (names.has(label)) return parseAddress(label, names, defaultPort);
  const text = digitsOnly && dashes == 3 ? label.replaceAll("-", ".") : label.replaceAll("-", ":");
  const t = parseAddress(text.indexOf(":") >= 0 ? "[" + text + "]" : text, names, defaultPort);
  if (t.reject == Reject.None) t.rest = "";
  return t;
}

/** Ranges no pin may reach, whatever the allowlist says. */
export function deniedRanges(): Array<Cidr> {
  const list = [
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::/96", "::ffff:0:0/96", "64:ff9b::/96", "fe80::/10", "ff00::/8", "fd00:ec2::254/128",
  ];
  const out = new Array<Cidr>();
  for (let i = 0; i < list.length; i++) out.push(parseCidr(list[i])!);
  return out;
}

export function inAny(addr: IpAddr, ranges: Array<Cidr>): bool {
  for (let i = 0; i < ranges.length; i++) if (unchecked(ranges[i]).contains(addr)) return true;
  return false;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 (with padding) of the UTF-8 bytes of `s`. */
export function base64(s: string): string {
  const bytes = Uint8Array.wrap(String.UTF8.encode(s));
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (<u32>bytes[i] << 16) | (<u32>bytes[i + 1] << 8) | <u32>bytes[i + 2];
    out += B64.charAt(<i32>(n >> 18) & 63) + B64.charAt(<i32>(n >> 12) & 63) + B64.charAt(<i32>(n >> 6) & 63) + B64.charAt(<i32>n & 63);
  }
  const left = bytes.length - i;
  if (left == 1) {
    const n = <u32>bytes[i] << 16;
    out += B64.charAt(<i32>(n >> 18) & 63) + B64.charAt(<i32>(n >> 12) & 63) + "==";
  } else if (left == 2) {
    const n = (<u32>bytes[i] << 16) | (<u32>bytes[i + 1] << 8);
    out += B64.charAt(<i32>(n >> 18) & 63) + B64.charAt(<i32>(n >> 12) & 63) + B64.charAt(<i32>(n >> 6) & 63) + "=";
  }
  return out;
}
