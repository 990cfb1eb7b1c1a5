// podip-router: pins a request to one pod named in the URL, only for callers allowed to, only
// to addresses in the pod ranges, and hands the choice to Envoy so mTLS and endpoint
// membership are enforced by Envoy itself.
import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime/assembly";
import * as abi from "@solo-io/proxy-runtime/assembly/imports";
import {
  FilterRoot, FilterStream, Header, MapType, Metric, PairsView, Status,
  getHeadersRaw, setHeader, removeHeader, getPropertyString, sendLocalResponse, counter, logInfo, logWarn, parseIpLenient,
} from "../../../runtime/assembly/index";
import { free } from "@solo-io/proxy-runtime/assembly/malloc";
import { HandOff, Settings, parseSettings } from "./settings";
import { REASONS, Reject, Target, base64, inAny, parseHostForm, parsePathForm } from "./target";

export const FILTER_NAME = "podip-router";
export const VERSION = "0.1.0";
const ORIGINAL_DST_KEY = "envoy.network.transport_socket.original_dst_address";

class Metrics {
  pinned: Metric = counter("podip_router.pinned");
  sanitized: Metric = counter("podip_router.sanitized");
  rejected: Array<Metric> = new Array<Metric>();
  constructor() {
    for (let i = 0; i < REASONS.length; i++) this.rejected.push(counter(i == 0 ? "podip_router.rejected" : "podip_router.rejected." + REASONS[i]));
  }
}

export class PodIpRoot extends FilterRoot {
  settings: Settings = new Settings();
  strip: Array<ArrayBuffer> = new Array<ArrayBuffer>();
  trustedBytes: ArrayBuffer = new ArrayBuffer(0);
  metrics: Metrics | null = null;

  get filterName(): string { return FILTER_NAME; }

  configure(text: string): string {
    const next = new Settings();
    const error = parseSettings(text, next);
    if (error.length > 0) return error;
    this.settings = next;
    if (next.allowLoopback) logWarn(FILTER_NAME + ": allow_loopback is on: pins may reach 127.0.0.0/8 and ::1 (for local trials only, never in a mesh)");
    this.strip = new Array<ArrayBuffer>();
    for (let i = 0; i < next.strip.length; i++) this.strip.push(String.UTF8.encode(next.strip[i]));
    this.trustedBytes = String.UTF8.encode(next.trustedHeader);
    if (this.metrics === null) this.metrics = new Metrics();
    return "";
  }

  createContext(context_id: u32): Context {
    return new PodIpStream(context_id, this);
  }
}

const PATH = String.UTF8.encode(":path");
const AUTHORITY = String.UTF8.encode(":authority");

/** SetEnvoyFilterStateArguments{path=1, value=2, span=3 (DownstreamRequest=1)} as protobuf. */
function filterStateArgs(path: string, value: string): ArrayBuffer {
  const p = String.UTF8.encode(path);
  const v = String.UTF8.encode(value);
  const out = new ArrayBuffer(2 + p.byteLength + 2 + v.byteLength + 2);
  const base = changetype<usize>(out);
  let o: usize = 0;
  store<u8>(base + o++, 0x0a); store<u8>(base + o++, <u8>p.byteLength);
  memory.copy(base + o, changetype<usize>(p), p.byteLength); o += p.byteLength;
  store<u8>(base + o++, 0x12); store<u8>(base + o++, <u8>v.byteLength);
  memory.copy(base + o, changetype<usize>(v), v.byteLength); o += v.byteLength;
  store<u8>(base + o++, 0x18); store<u8>(base + o++, 1);
  return out;
}

const FOREIGN_OUT = memory.data(8, 4);

function setEnvoyFilterState(path: string, value: string): u32 {
  const name = String.UTF8.encode("set_envoy_filter_state");
  const args = filterStateArgs(path, value);
  store<u64>(FOREIGN_OUT, 0);
  const rc = abi.proxy_call_foreign_function(changetype<usize>(name), name.byteLength, changetype<usize>(args), args.byteLength, FOREIGN_OUT, FOREIGN_OUT + 4);
  if (rc == Status.Ok && load<u32>(FOREIGN_OUT) != 0) free(<usize>load<u32>(FOREIGN_OUT));
  return rc;
}

class PodIpStream extends FilterStream {
  pinned: string = "";

  constructor(context_id: u32, readonly router: PodIpRoot) {
    super(context_id, router);
  }

  onRequestHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.router;
    const s = root.settings;
    const m = root.metrics!;
    // Fail closed: headers that cannot be read whole cannot be sanitised, so the request is
    // refused, in dry run too (more than 1,024 headers, once max_headers_count is raised).
    const raw = getHeadersRaw(MapType.RequestHeaders);
    let parsed: PairsView | null = null;
    if (raw !== null) parsed = PairsView.parse(raw);
    if (parsed === null) {
      return this.refuse(Target.fail(Reject.Unreadable, "the request headers could not be read whole, so they could not be sanitised"), "unknown", "<unread>", true);
    }
    const view = parsed!;

    // Edge sanitisation, always: no client may hand Envoy a destination or a session.
    let pathAt = -1, authorityAt = -1, trustedAt = -1;
    for (let i = 0; i < view.count; i++) {
      if (pathAt < 0 && view.nameIs(i, PATH)) { pathAt = i; continue; }
      if (authorityAt < 0 && view.nameIs(i, AUTHORITY)) { authorityAt = i; continue; }
      if (trustedAt < 0 && s.trustedHeader.length > 0 && view.nameIs(i, root.trustedBytes)) { trustedAt = i; continue; }
      for (let k = 0; k < root.strip.length; k++) {
        if (view.nameIs(i, unchecked(root.strip[k]))) {
          removeHeader(MapType.RequestHeaders, s.strip[k]);
          m.sanitized.increment(1);
          break;
        }
      }
    }

    // The authorisation header is the gateway's business: it never reaches an upstream (its value
    // stays readable in `view` for the decision below).
    if (trustedAt >= 0) removeHeader(MapType.RequestHeaders, s.trustedHeader);

    const path = pathAt >= 0 ? view.value(pathAt) : "/";
    let target = parsePathForm(path, s.pathPrefix, s.podNames, s.defaultPort);
    if (target === null && authorityAt >= 0) target = parseHostForm(view.value(authorityAt), s.hostSuffix, s.podNames, s.defaultPort);
    if (target === null) return FilterHeadersStatusValues.Continue;

    const who = this.caller(view, trustedAt);
    // Authorisation first: an unauthorised caller learns nothing about the address rules.
    if (!who.allowed) return this.refuse(Target.fail(Reject.Unauthorized, "not allowed to pin a pod"), who.name, path);
    const t = target!;
    if (t.reject != Reject.None) return this.refuse(t, who.name, path);
    const addr = t.addr!;
    if (addr.isV4Mapped() || inAny(addr, s.denied)) return this.refuse(Target.fail(Reject.DeniedRange, "address is in a range no pin may reach"), who.name, t.hostPort());
    if (!inAny(addr, s.allowedCidrs)) return this.refuse(Target.fail(Reject.NotAllowedRange, "address is not in an allowed pod range"), who.name, t.hostPort());
    if (!s.portAllowed(t.port)) return this.refuse(Target.fail(Reject.PortNotAllowed, "port is not allowed"), who.name, t.hostPort());

    const hostPort = t.hostPort();
    logInfo(FILTER_NAME + " audit: caller=" + who.name + " target=" + hostPort + " outcome=" + (s.dryRun ? "dry-run-pinned" : "pinned"));
    m.pinned.increment(1);
    if (s.dryRun) return FilterHeadersStatusValues.Continue;
    if (t.rest.length > 0) setHeader(MapType.RequestHeaders, ":path", t.rest);
    if (s.rewriteAuthority.length > 0) setHeader(MapType.RequestHeaders, ":authority", s.rewriteAuthority);
    if (s.handOff == HandOff.Session) {
      setHeader(MapType.RequestHeaders, s.sessionHeader, base64(hostPort));
    } else {
      setHeader(MapType.RequestHeaders, s.pinHeader, "original-dst");
      if (s.handOff == HandOff.OriginalDstHeader || setEnvoyFilterState(ORIGINAL_DST_KEY, hostPort) != Status.Ok) {
        setHeader(MapType.RequestHeaders, "x-envoy-original-dst-host", hostPort);
      }
    }
    this.pinned = hostPort;
    return FilterHeadersStatusValues.Continue;
  }

  private refuse(t: Target, caller: string, target: string, evenInDryRun: bool = false): FilterHeadersStatusValues {
    const s = this.router.settings;
    const m = this.router.metrics!;
    m.rejected[0].increment(1);
    m.rejected[<i32>t.reject].increment(1);
    logInfo(FILTER_NAME + " audit: caller=" + caller + " target=" + printable(target) + " outcome=rejected reason=" + REASONS[<i32>t.reject]);
    if (s.dryRun && !evenInDryRun) return FilterHeadersStatusValues.Continue;
    const status: u32 = t.reject == Reject.Malformed || t.reject == Reject.UnknownName || t.reject == Reject.Unreadable ? 400 : 403;
    sendLocalResponse(status, "podip_router_" + REASONS[<i32>t.reject], FILTER_NAME + ": " + t.reason + "\n", new Array<Header>());
    return FilterHeadersStatusValues.StopIteration;
  }

  /** Who is asking, and whether they may pin: trusted source range, authenticator header, or peer principal. */
  private caller(view: PairsView, trustedAt: i32): Caller {
    const s = this.router.settings;
    const source = getPropertyString(["source", "address"]);
    let name = source === null ? "unknown" : source!;
    if (trustedAt >= 0 && view.valueLength(trustedAt) > 0 && view.valueLength(trustedAt) <= 256) {
      return new Caller(name + " via " + s.trustedHeader + "=" + printable(view.value(trustedAt)), true);
    }
    if (s.principals.length > 0) {
      const principal = getPropertyString(["connection", "uri_san_peer_certificate"]);
      if (principal !== null) {
        name += " " + printable(principal);
        if (s.principals.includes(principal)) return new Caller(name, true);
      }
    }
    if (s.trustedCidrs.length > 0 && source !== null) {
      const ip = parseIpLenient(hostOf(source));
      if (ip !== null && inAny(ip, s.trustedCidrs)) return new Caller(name, true);
    }
    return new Caller(name, false);
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const s = this.router.settings;
    // Envoy's header-based stateful session writes base64(ip:port) of the chosen host on every
    // response whose request did not name it: an internal pod address. It never reaches the
    // client; a pinned response names its pin in response_header.
    removeHeader(MapType.ResponseHeaders, s.sessionHeader);
    if (this.pinned.length > 0) setHeader(MapType.ResponseHeaders, s.responseHeader, this.pinned);
    if (s.stampBuild) setHeader(MapType.ResponseHeaders, "x-podip-router-build", VERSION);
    return FilterHeadersStatusValues.Continue;
  }
}

class Caller {
  constructor(public name: string, public allowed: bool) {}
}

function hostOf(address: string): string {
  if (address.startsWith("[")) {
    const close = address.indexOf("]");
    return close > 0 ? address.substring(1, close) : address;
  }
  const colon = address.lastIndexOf(":");
  return colon > 0 && address.indexOf(":") == colon ? address.substring(0, colon) : address;
}

/** Text safe for a single log line: at most 128 characters, control characters as '?'. */
function printable(s: string): string {
  let out = "";
  const n = s.length < 128 ? s.length : 128;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    out += c < 0x20 || c == 0x7f ? "?" : String.fromCharCode(c);
  }
  return s.length > 128 ? out + "..." : out;
}
