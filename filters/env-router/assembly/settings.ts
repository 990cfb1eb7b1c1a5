// env-router configuration. Mirrors ../config.schema.json.
import { ConfigReader, fieldPath, indexPath } from "../../../runtime/assembly/config";
import { JsonObject } from "../../../runtime/assembly/json";
import { Cidr, parseCidr } from "../../../runtime/assembly/ip";
import { Availability, parseAvailability } from "./availability";
import { ENV_NAME_RULE, envAllowed, validEnvName } from "./names";
import { BAGGAGE_MAX_BYTES } from "./carriers";

export enum Mode { Outbound, Inbound, Gateway }
export enum Source { Header, Baggage, Cookie }

export class Controller {
  constructor(public cluster: string, public authority: string, public path: string, public refreshMs: i64, public timeoutMs: u32) {}
}

export class Settings {
  mode: Mode = Mode.Outbound;
  header: string = "x-env";
  routeHeader: string = "x-env-route";
  sources: Array<Source> = [Source.Header, Source.Baggage, Source.Cookie];
  baggageKey: string = "env";
  cookie: string = "env";
  writeBaggage: bool = false;
  maxLength: i32 = 63;
  allowed: Array<string> = new Array<string>();
  defaultEnv: string = "default";
  ownEnv: string = "";
  hierarchical: bool = true;
  fallbacks: Map<string, Array<string>> = new Map<string, Array<string>>();
  services: Availability = new Availability();
  productionHosts: Array<string> = new Array<string>();
  controller: Controller | null = null;
  correlation: bool = true;
  correlationTtlMs: i64 = 300000;
  correlationSlots: i32 = 8192;
  trustedCidrs: Array<Cidr> = new Array<Cidr>();
  trustedHeader: string = "";
  stampHeader: string = "";
  stampValue: string = "";
  stampEnvVar: string = "";
  stampNodeMetadata: string = "";
  explain: bool = false;
  dryRun: bool = false;
  stampBuild: bool = false;
}

function lowerHeaderName(r: ConfigReader, obj: JsonObject, path: string, key: string, fallback: string): string {
  const v = r.str(obj, path, key, fallback);
  if (v.length == 0 && fallback.length == 0) return v;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f)) {
      r.fail(fieldPath(path, key), "must be a lowercase header name, got \"" + v + "\"");
      return fallback;
    }
  }
  if (v.length == 0) r.fail(fieldPath(path, key), "must not be empty");
  return v;
}

function envName(r: ConfigReader, path: string, value: string, s: Settings): void {
  if (!validEnvName(value, s.maxLength)) r.fail(path, "not a valid env name: \"" + value + "\" (" + ENV_NAME_RULE + ")");
}

/** Decodes the configuration into `s`. Returns "" or "<field path>: <reason>". */
export function parseSettings(text: string, s: Settings): string {
  const r = new ConfigReader();
  const obj = r.parse(text);
  if (obj === null) return r.error;
  r.allowKeys(obj, "", ["mode", "tag", "route_header", "default_env", "own_env", "hierarchical_fallback", "fallbacks", "services",
    "production_hosts", "controller", "correlation", "trust", "stamp", "explain", "dry_run", "stamp_build"]);
  const mode = r.oneOf(obj, "", "mode", ["outbound", "inbound", "gateway"], "outbound");
  s.mode = mode == "inbound" ? Mode.Inbound : mode == "gateway" ? Mode.Gateway : Mode.Outbound;
  s.routeHeader = lowerHeaderName(r, obj, "", "route_header", "x-env-route");

  const tag = r.object(obj, "", "tag");
  if (tag !== null) {
    r.allowKeys(tag, "tag", ["header", "sources", "baggage_key", "cookie", "write_baggage", "max_length", "allowed"]);
    s.header = lowerHeaderName(r, tag, "tag", "header", "x-env");
    const sources = r.strings(tag, "tag", "sources", 3, ["header", "baggage", "cookie"]);
    s.sources = new Array<Source>();
    for (let i = 0; i < sources.length; i++) {
      const name = sources[i];
      if (name == "header") s.sources.push(Source.Header);
      else if (name == "baggage") s.sources.push(Source.Baggage);
      else if (name == "cookie") s.sources.push(Source.Cookie);
      else r.fail(indexPath("tag.sources", i), "must be one of header, baggage, cookie, got \"" + name + "\"");
    }
    s.baggageKey = r.str(tag, "tag", "baggage_key", "env");
    if (s.baggageKey.length == 0 || s.baggageKey.length > 64 || s.baggageKey.indexOf("=") >= 0 || s.baggageKey.indexOf(",") >= 0 || s.baggageKey.indexOf(";") >= 0) {
      r.fail("tag.baggage_key", "must be 1-64 characters without '=', ',' or ';'");
    }
    s.cookie = r.str(tag, "tag", "cookie", "env");
    if (s.cookie.length == 0 || s.cookie.indexOf("=") >= 0 || s.cookie.indexOf(";") >= 0) r.fail("tag.cookie", "must be a cookie name");
    s.writeBaggage = r.bool(tag, "tag", "write_baggage", false);
    s.maxLength = <i32>r.int(tag, "tag", "max_length", 63, 1, 253);
    s.allowed = r.strings(tag, "tag", "allowed", 256, new Array<string>());
  }
  s.defaultEnv = r.str(obj, "", "default_env", "default");
  envName(r, "default_env", s.defaultEnv, s);
  s.ownEnv = r.str(obj, "", "own_env", "");
  if (s.ownEnv.length > 0) envName(r, "own_env", s.ownEnv, s);
  s.hierarchical = r.bool(obj, "", "hierarchical_fallback", true);

  const fallbacks = r.object(obj, "", "fallbacks");
  if (fallbacks !== null) {
    for (let i = 0; i < fallbacks.keys.length && r.ok; i++) {
      const env = fallbacks.keys[i];
      envName(r, fieldPath("fallbacks", env), env, s);
      const chain = r.strings(fallbacks, "fallbacks", env, 16, new Array<string>());
      for (let k = 0; k < chain.length && r.ok; k++) envName(r, indexPath(fieldPath("fallbacks", env), k), chain[k], s);
      s.fallbacks.set(env, chain);
    }
  }
  const services = r.object(obj, "", "services");
  if (services !== null && r.ok) s.services = parseAvailability(r, services, "services");
  s.productionHosts = r.strings(obj, "", "production_hosts", 1024, new Array<string>());

  const controller = r.object(obj, "", "controller");
  if (controller !== null) {
    r.allowKeys(controller, "controller", ["cluster", "authority", "path", "refresh_ms", "timeout_ms"]);
    const cluster = r.name(controller, "controller", "cluster", "", 256, true);
    const authority = r.str(controller, "controller", "authority", cluster);
    const path = r.str(controller, "controller", "path", "/availability");
    if (!path.startsWith("/")) r.fail("controller.path", "must start with '/'");
    const refresh = r.int(controller, "controller", "refresh_ms", 10000, 1000, 3600000);
    const timeout = r.int(controller, "controller", "timeout_ms", 2000, 100, 60000);
    if (r.ok) s.controller = new Controller(cluster, authority, path, refresh, <u32>timeout);
  }

  const corr = r.object(obj, "", "correlation");
  if (corr !== null) {
    r.allowKeys(corr, "correlation", ["enabled", "ttl_ms", "slots"]);
    s.correlation = r.bool(corr, "correlation", "enabled", true);
    s.correlationTtlMs = r.int(corr, "correlation", "ttl_ms", 300000, 1000, 86400000);
    s.correlationSlots = <i32>r.int(corr, "correlation", "slots", 8192, 16, 1 << 20);
  }

  const trust = r.object(obj, "", "trust");
  if (trust !== null) {
    r.allowKeys(trust, "trust", ["source_cidrs", "header"]);
    const cidrs = r.strings(trust, "trust", "source_cidrs", 256, new Array<string>());
    for (let i = 0; i < cidrs.length && r.ok; i++) {
      const c = parseCidr(cidrs[i]);
      if (c === null) r.fail(indexPath("trust.source_cidrs", i), "not a canonical CIDR: \"" + cidrs[i] + "\"");
      else s.trustedCidrs.push(c);
    }
    s.trustedHeader = r.str(trust, "trust", "header", "");
    if (s.trustedHeader.length > 0) lowerHeaderName(r, trust, "trust", "header", "");
  }

  const stamp = r.object(obj, "", "stamp");
  if (stamp !== null) {
    r.allowKeys(stamp, "stamp", ["header", "value", "env_var", "node_metadata"]);
    s.stampHeader = lowerHeaderName(r, stamp, "stamp", "header", "x-dc");
    s.stampValue = r.str(stamp, "stamp", "value", "");
    s.stampEnvVar = r.str(stamp, "stamp", "env_var", "");
    s.stampNodeMetadata = r.str(stamp, "stamp", "node_metadata", "");
    if (s.stampValue.length == 0 && s.stampEnvVar.length == 0 && s.stampNodeMetadata.length == 0) {
      r.fail("stamp", "needs one of value, env_var, node_metadata");
    }
  }
  s.explain = r.bool(obj, "", "explain", false);
  s.dryRun = r.bool(obj, "", "dry_run", false);
  s.stampBuild = r.bool(obj, "", "stamp_build", false);

  if (r.ok && s.allowed.length > 0 && !envAllowed(s.defaultEnv, s.allowed)) s.allowed.push(s.defaultEnv);
  if (r.ok && s.writeBaggage && s.baggageKey.length + s.maxLength + 1 > BAGGAGE_MAX_BYTES) r.fail("tag.baggage_key", "too long");
  return r.error;
}
