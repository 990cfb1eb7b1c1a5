// Header maps as Envoy keeps them (reference section 3): lowercase keys, `host` is
// `:authority`, inline headers hold one entry and join repeats with ",", pseudo-headers
// iterate first. Keys and values are byte strings (one JS char per byte, latin1), so any
// byte sequence a filter writes survives unchanged.

import type { HeaderList } from "../abi/pairs.js";

// Core inline headers (section 3.3). The official Envoy build also links extensions that
// register custom inline headers (cache, compressor, CORS, CEL's referer).
const CORE_REQUEST = [
  "x-client-trace-id", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node", "x-envoy-external-address",
  "x-envoy-force-trace", "x-envoy-hedge-on-per-try-timeout", "x-envoy-internal", "x-envoy-ip-tags", "x-envoy-retry-on",
  "x-envoy-retry-grpc-on", "x-envoy-retriable-status-codes", "x-envoy-retriable-header-names", "x-envoy-original-path",
  "x-envoy-original-url", "x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-timeout-alt-response", "expect",
  "x-forwarded-client-cert", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "grpc-timeout", ":authority",
  ":method", ":path", ":protocol", ":scheme", "te", "user-agent", "x-envoy-expected-rq-timeout-ms", "x-envoy-max-retries",
  "x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-upstream-stream-duration-ms",
];
const CORE_BOTH = [
  "connection", "content-type", "x-envoy-decorator-operation", "keep-alive", "proxy-connection", "proxy-status",
  "x-request-id", "transfer-encoding", "upgrade", "via", "content-length", "x-envoy-attempt-count",
];
const CORE_RESPONSE = [
  "date", "x-envoy-degraded", "x-envoy-immediate-health-check-fail", "x-envoy-ratelimited", "x-envoy-upstream-canary",
  "x-envoy-upstream-healthchecked-cluster", "location", "server", "x-envoy-upstream-service-time", ":status",
  "grpc-status", "grpc-message",
];
const CUSTOM_REQUEST = [
  "referer", "authorization", "pragma", "cache-control", "if-match", "if-none-match", "if-modified-since",
  "if-unmodified-since", "if-range", "accept-encoding", "origin", "access-control-request-method",
];
const CUSTOM_RESPONSE = ["cache-control", "last-modified", "etag"];
const TRAILERS = ["grpc-status", "grpc-message"];

export type MapKind = "request" | "response" | "trailers";

export interface InlineConfig {
  /** Add the custom inline headers of the official build (default true). */
  officialBuild?: boolean;
  /** Extra inline headers, as bootstrap `inline_headers` would add. */
  extra?: Partial<Record<MapKind, string[]>>;
}

export function inlineSets(cfg: InlineConfig = {}): Record<MapKind, Set<string>> {
  const official = cfg.officialBuild !== false;
  return {
    request: new Set([...CORE_REQUEST, ...CORE_BOTH, ...(official ? CUSTOM_REQUEST : []), ...(cfg.extra?.request ?? [])]),
    response: new Set([...CORE_BOTH, ...CORE_RESPONSE, ...(official ? CUSTOM_RESPONSE : []), ...(cfg.extra?.response ?? [])]),
    trailers: new Set([...TRAILERS, ...(cfg.extra?.trailers ?? [])]),
  };
}

/** ASCII-only lowercase, as Envoy's LowerCaseString. */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/**
 * A header map. Building one from raw header lines with `add` semantics is also what Envoy's
 * HTTP/1 codec does: a repeated inline header (content-type, transfer-encoding, ...) arrives as
 * one comma-joined entry while other repeats stay separate entries.
 */
export class HeaderMap {
  private entries: Array<[string, string]> = [];

  constructor(readonly inline: Set<string>, initial: HeaderList = []) {
    for (const [k, v] of initial) this.add(k, v);
  }

  private normalKey(key: string): string {
    const k = asciiLower(key);
    return k === "host" ? ":authority" : k;
  }

  /** Insert position keeps pseudo-headers ahead of regular ones. */
  private append(key: string, value: string): void {
    if (key.startsWith(":")) {
      let i = 0;
      while (i < this.entries.length && this.entries[i][0].startsWith(":")) i++;
      this.entries.splice(i, 0, [key, value]);
    } else {
      this.entries.push([key, value]);
    }
  }

  /** add_header_map_value: joins an inline header that is already present. */
  add(key: string, value: string): void {
    const k = this.normalKey(key);
    if (this.inline.has(k)) {
      const existing = this.entries.find((e) => e[0] === k);
      if (existing) {
        existing[1] = existing[1] + (k === "cookie" ? "; " : ",") + value;
        return;
      }
    }
    this.append(k, value);
  }

  /** replace_header_map_value: removes every entry, then adds one (which moves it last). */
  replace(key: string, value: string): void {
    const k = this.normalKey(key);
    this.remove(k);
    this.append(k, value);
  }

  remove(key: string): void {
    const k = this.normalKey(key);
    this.entries = this.entries.filter((e) => e[0] !== k);
  }

  /** get_header_map_value: the first entry only. */
  get(key: string): string | undefined {
    const k = this.normalKey(key);
    return this.entries.find((e) => e[0] === k)?.[1];
  }

  /** Every value of `key`, one per entry. */
  getAll(key: string): string[] {
    const k = this.normalKey(key);
    return this.entries.filter((e) => e[0] === k).map((e) => e[1]);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** set_header_map_pairs: replaces the whole map. */
  setAll(pairs: HeaderList): void {
    this.entries = [];
    for (const [k, v] of pairs) this.add(k, v);
  }

  pairs(): HeaderList {
    return this.entries.map(([k, v]) => [k, v]);
  }

  get size(): number {
    return this.entries.length;
  }

  /** get_header_map_size: bytes of names and values, not the entry count. */
  byteSize(): number {
    let n = 0;
    for (const [k, v] of this.entries) n += k.length + v.length;
    return n;
  }

  clone(): HeaderMap {
    const m = new HeaderMap(this.inline);
    m.entries = this.pairs();
    return m;
  }
}
