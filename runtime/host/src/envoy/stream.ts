// One HTTP stream through a chain of wasm filters and an upstream, as Envoy's HTTP
// connection manager drives it (reference sections 1.6, 2.7-2.9, 4, 1.9).
import { type HeaderList, bytesToUtf8, utf8ToBytes } from "../abi/pairs.js";
import type { ConnectionInfo, LocalReply, StreamInfo, StreamSide, StreamState } from "./contexts.js";
import type { EnvoyVm } from "./envoy-vm.js";
import { HeaderMap } from "./headers.js";
import type { Plugin } from "./plugin.js";
import type { Process } from "./process.js";

export type { ConnectionInfo };


export interface UpstreamRequest {
  /** Filter state set through set_envoy_filter_state before the request was forwarded. */
  envoyFilterState: Record<string, string>;
  /** Headers decoded as UTF-8 (lossy for other bytes; see rawHeaders). */
  headers: HeaderList;
  /** Headers as byte strings (one char per byte, latin1), exactly as forwarded. */
  rawHeaders: HeaderList;
  body: Buffer;
  trailers: HeaderList;
  header(name: string): string | undefined;
}
export interface UpstreamResponse {
  status: number;
  headers?: HeaderList;
  /** A body, or its chunks. */
  body?: string | Uint8Array | Array<string | Uint8Array>;
  trailers?: HeaderList;
  /** The upstream resets the stream instead of answering. */
  reset?: boolean;
  /** Address the router connected to (upstream.address). */
  address?: string;
  /** Protocol the upstream spoke (default HTTP/1.1, whose codec validates the response). */
  protocol?: "HTTP/1.1" | "HTTP/2";
  /** The cluster the route chose (xds.cluster_name from then on), when the caller routes. */
  cluster?: string;
}

/**
 * What Envoy's HTTP/1 codec refuses in an upstream response before any filter runs: chunked
 * applied twice (two Transfer-Encoding lines, or "chunked, chunked"), or a Transfer-Encoding
 * on a 1xx or 204 response. The reason, or null when the response is acceptable.
 */
export function http1ResponseCodecError(status: number, headers: HeaderList): string | null {
  const te = headers.filter(([k]) => k.toLowerCase() === "transfer-encoding");
  if (te.length === 0) return null;
  if (status === 204 || (status >= 100 && status < 200)) return "transfer encoding not allowed in 1xx or 204";
  const codings = te.flatMap(([, v]) => v.split(",").map((c) => c.trim().toLowerCase())).filter((c) => c.length > 0);
  if (codings.filter((c) => c === "chunked").length > 1) return "chunked transfer coding applied more than once";
  return null;
}
export type Upstream = (req: UpstreamRequest) => UpstreamResponse | Promise<UpstreamResponse>;

/** The stream info a request names itself: addresses, connection, route and cluster (StreamInfo's, but for the id and protocol). */
export interface RequestSpec extends Omit<StreamInfo, "connectionId" | "protocol"> {
  method?: string;
  path?: string;
  authority?: string;
  scheme?: string;
  /**
   * Further headers, in order; repeats stay separate lines (what the HTTP/1 codec receives).
   * A Uint8Array value is sent as raw bytes (e.g. invalid UTF-8).
   */
  headers?: Array<[string, string | Uint8Array]> | Record<string, string>;
  /** A body, or its chunks (each delivered as one data frame). */
  body?: string | Uint8Array | Array<string | Uint8Array>;
  trailers?: HeaderList;
  worker?: number;
  /** Filter chain, in order. Default: every plugin of the Envoy. */
  filters?: Plugin[];
  upstream?: Upstream;
  protocol?: "HTTP/1.0" | "HTTP/1.1" | "HTTP/2" | "HTTP/3";
  /** Filter state objects earlier filters set (key -> the object's string form), as filter_state.<key> reads them. */
  filterState?: Record<string, string>;
}

export interface StreamResult {
  status: number;
  headers: HeaderList;
  body: string;
  bodyBytes: Buffer;
  trailers: HeaderList;
  /** response.code_details: "via_upstream" or the local reply's details. */
  details: string;
  localReply: boolean;
  grpcStatus?: number;
  /** The stream was reset (close_stream, upstream reset). */
  reset: boolean;
  /** The client never got an answer (Envoy <= 1.34 after a trap, issue #38801). */
  hung: boolean;
  /** What reached the upstream, or null when nothing was forwarded. */
  upstream: UpstreamRequest | null;
  /** Times Envoy cleared the route cache for this stream. */
  routeCacheClears: number;
  /** Filter state set through set_envoy_filter_state (key -> value), as the upstream side would see it. */
  envoyFilterState: Record<string, string>;
  worker: number;
  header(name: string): string | undefined;
}


type Resume = "continue" | "local" | "reset";
type Dir = "request" | "response";

export class FilterSlot {
  vm: EnvoyVm | null = null;
  mode: "active" | "bypass" | "fail" = "active";
  ctxId = 0;
  created = false;
  reqHeadersLive = false;
  respHeadersLive = false;
  reqTrailersLive = false;
  respTrailersLive = false;
  trailersCreatable: Dir | null = null;
  bodyView: { dir: Dir } | null = null;
  buffered: Record<Dir, Buffer> = { request: Buffer.alloc(0), response: Buffer.alloc(0) };
  pendingLocal: LocalReply | null = null;
  pause: { dir: Dir; resolve: (r: Resume) => void } | null = null;
  constructor(readonly index: number, readonly plugin: Plugin) {}
}

function chunksOf(body: RequestSpec["body"]): Buffer[] {
  if (body === undefined) return [];
  const list = Array.isArray(body) ? body : [body];
  return list.map((c) => (typeof c === "string" ? Buffer.from(c, "utf8") : Buffer.from(c))).filter((c) => c.length > 0);
}

function toByteList(list: Array<[string, string | Uint8Array]> | Record<string, string> | undefined): HeaderList {
  const entries = list === undefined ? [] : Array.isArray(list) ? list : Object.entries(list);
  return entries.map(([k, v]) => [utf8ToBytes(k), typeof v === "string" ? utf8ToBytes(v) : Buffer.from(v).toString("latin1")]);
}

function toUtf8List(list: HeaderList): HeaderList {
  return list.map(([k, v]) => [bytesToUtf8(k), bytesToUtf8(v)]);
}

const defaultUpstream: Upstream = () => ({ status: 200, headers: [["content-type", "text/plain"]], body: "ok" });

export class HttpStream implements StreamSide {
  readonly slots: FilterSlot[];
  readonly worker: number;
  readonly startMs: number;
  readonly filterState = new Map<string, Buffer>();
  readonly info: StreamInfo;
  reqHeaders: HeaderMap;
  reqTrailers: HeaderMap | null = null;
  respHeaders: HeaderMap | null = null;
  respTrailers: HeaderMap | null = null;
  response: { status: number; details: string } | null = null;
  upstreamAddress?: string;
  inLogPhase = false;
  routeCacheClears = 0;
  private requestBody: Buffer[] = [];
  private responseBody: Buffer[] = [];
  private resetDetails: string | null = null;
  private localReplySent: LocalReply | null = null;
  private hung = false;
  private upstreamSeen: UpstreamRequest | null = null;
  private failedSlot: FilterSlot | null = null;

  constructor(readonly envoy: Process, plugins: Plugin[], readonly spec: RequestSpec) {
    this.worker = spec.worker ?? envoy.pickWorker();
    if (this.worker < 0 || this.worker >= envoy.workers) throw new Error(`no worker ${this.worker}`);
    this.startMs = envoy.nowMs();
    const pseudo: HeaderList = [
      [":authority", spec.authority ?? "example.com"],
      [":path", spec.path ?? "/"],
      [":method", spec.method ?? "GET"],
      [":scheme", spec.scheme ?? "http"],
    ];
    const extra = toByteList(spec.headers);
    const given = new Set(extra.map(([k]) => k.toLowerCase()));
    this.reqHeaders = new HeaderMap(envoy.inline.request, [...toByteList(pseudo).filter(([k]) => !given.has(k) && !(k === ":authority" && given.has("host"))), ...extra]);
    this.info = {
      connectionId: envoy.newConnectionId(),
      protocol: spec.protocol ?? "HTTP/1.1",
      source: spec.source ?? "10.0.0.1:40000",
      destination: spec.destination ?? "10.0.0.2:8080",
      connection: spec.connection,
      routeName: spec.routeName,
      clusterName: spec.clusterName,
      routeMetadata: spec.routeMetadata,
    };
    this.slots = (spec.filters ?? plugins).map((p, i) => new FilterSlot(i, p));
    for (const [k, v] of Object.entries(spec.filterState ?? {})) this.filterState.set(k, Buffer.from(v, "utf8"));
  }

  // ------------------------------------------------------------ hostcall support

  headerMapFor(slot: FilterSlot, type: number, forWrite: boolean): HeaderMap | null {
    if (this.inLogPhase) {
      if (forWrite) return null;
      if (type === 0) return this.reqHeaders;
      if (type === 2) return this.respHeaders;
      if (type === 3) return this.respTrailers;
      return null;
    }
    switch (type) {
      case 0: return slot.reqHeadersLive ? this.reqHeaders : null;
      case 1:
        if (slot.reqTrailersLive) return this.reqTrailers;
        if (forWrite && slot.trailersCreatable === "request") return (this.reqTrailers ??= new HeaderMap(this.envoy.inline.trailers));
        return null;
      case 2: return slot.respHeadersLive ? this.respHeaders : null;
      case 3:
        if (slot.respTrailersLive) return this.respTrailers;
        if (forWrite && slot.trailersCreatable === "response") return (this.respTrailers ??= new HeaderMap(this.envoy.inline.trailers));
        return null;
    }
    return null;
  }

  requestHeadersForProperties(slot: FilterSlot): HeaderMap | null {
    return this.inLogPhase || slot.reqHeadersLive ? this.reqHeaders : null;
  }
  responseHeadersForProperties(): HeaderMap | null {
    return this.respHeaders;
  }

  /** Filter state set through set_envoy_filter_state, key -> value. */
  envoyFilterState(): Record<string, string> {
    return Object.fromEntries([...this.filterState].filter(([k]) => k.startsWith("envoy:")).map(([k, v]) => [k.slice(6), v.toString("utf8")]));
  }

  onRequestHeadersMutated(): void {
    // ABI <= 0.2.1 modules: every request-header mutation clears the route cache (section 2.7).
    this.routeCacheClears++;
  }

  /** continue_stream (either direction) drops the request-side pointers (section 2.7). */
  dropRequestPointers(slot: FilterSlot): void {
    slot.reqHeadersLive = false;
    slot.reqTrailersLive = false;
  }

  continueFrom(slot: FilterSlot, dir: Dir): void {
    if (slot.pause && slot.pause.dir === dir) {
      const p = slot.pause;
      slot.pause = null;
      p.resolve("continue");
    }
  }

  requestLocalReply(slot: FilterSlot, reply: LocalReply): void {
    if (this.localReplySent) {
      this.envoy.log("warn", "http", `local reply ${reply.status} ignored: stream already answered locally (Envoy may hang here, issue #28826)`);
      return;
    }
    slot.pendingLocal = reply;
    // Sent after the VM call returns; a paused stream resumes into it.
    slot.vm?.defer(() => {
      if (slot.pause && slot.pendingLocal) {
        const p = slot.pause;
        slot.pause = null;
        p.resolve("local");
      }
    });
  }

  reset(details: string): void {
    this.resetDetails ??= details;
    for (const slot of this.slots) {
      if (slot.pause) {
        const p = slot.pause;
        slot.pause = null;
        p.resolve("reset");
      }
    }
  }

  bodyView(slot: FilterSlot, type: number): Buffer | null {
    const dir: Dir = type === 0 ? "request" : "response";
    return slot.bodyView?.dir === dir ? slot.buffered[dir] : null;
  }

  setBody(slot: FilterSlot, type: number, start: number, length: number, data: Buffer): boolean {
    const dir: Dir = type === 0 ? "request" : "response";
    if (slot.bodyView?.dir !== dir) return false;
    const cur = slot.buffered[dir];
    if (start === 0) slot.buffered[dir] = Buffer.concat([data, cur.subarray(Math.min(length, cur.length))]);
    else if (start >= cur.length) slot.buffered[dir] = Buffer.concat([cur, data]);
    else return false;
    return true;
  }

  // ------------------------------------------------------------ driving

  async run(): Promise<StreamResult> {
    for (const slot of this.slots) this.createFilter(slot);
    const ended = await this.decode();
    if (!ended) await this.forwardUpstream();
    if (this.localReplySent && !this.hung && !this.resetDetails && !this.response) await this.encodeLocalReply(this.localReplySent);
    this.finish();
    return this.result();
  }

  /** Filter creation for a new stream: the context id is taken now; a failed VM applies the policy. */
  private createFilter(slot: FilterSlot): void {
    const choice = slot.plugin.vmForNewStream(this.worker);
    if (choice === "bypass") slot.mode = "bypass";
    else if (choice === "fail") slot.mode = "fail";
    else {
      slot.vm = choice;
      slot.ctxId = choice.allocateContextId();
    }
  }

  private ensureContext(slot: FilterSlot): boolean {
    const vm = slot.vm!;
    if (!slot.created) {
      slot.created = true;
      const state: StreamState = { kind: "stream", id: slot.ctxId, rootId: vm.rootId, stream: this, slot };
      vm.contexts.set(slot.ctxId, state);
      vm.call("proxy_on_context_create", slot.ctxId, slot.ctxId, vm.rootId);
    }
    return !vm.failed;
  }

  private active(slot: FilterSlot): boolean {
    return slot.mode === "active" && slot.vm !== null && !slot.vm.failed;
  }

  /** After a callback: a trap, a local reply, or a reset ends normal iteration. */
  private afterCallback(slot: FilterSlot): "trap" | "local" | "reset" | null {
    if (slot.vm!.failed) return "trap";
    if (slot.pendingLocal) return "local";
    if (this.resetDetails) return "reset";
    return null;
  }

  /** Sends the local reply Envoy sends when a stream's filter trapped or has no VM (section 1.9). */
  private failStream(slot: FilterSlot): void {
    this.failedSlot = slot;
    this.localReplySent = { status: 503, details: "wasm_fail_stream", body: Buffer.alloc(0), headers: [], grpcStatus: 14 };
    // Envoy <= 1.34: the local reply's encoder pass re-enters the failed filter, which stops it.
    if (this.envoy.minor <= 34) this.hung = true;
  }

  /** Handles a trap during decoding. Returns true when the stream goes on without the filter. */
  private onTrap(slot: FilterSlot): boolean {
    if (slot.plugin.trappingStreamContinues) {
      slot.mode = "bypass";
      return true;
    }
    this.failStream(slot);
    return false;
  }

  private takeLocal(slot: FilterSlot): void {
    this.localReplySent = slot.pendingLocal;
    slot.pendingLocal = null;
  }

  private waitResume(slot: FilterSlot, dir: Dir): Promise<Resume> {
    if (slot.pendingLocal) return Promise.resolve("local");
    if (this.resetDetails) return Promise.resolve("reset");
    return new Promise((resolve) => { slot.pause = { dir, resolve }; });
  }

  /** Returns true when the stream ended during decoding (local reply, reset, failure). */
  private async decode(): Promise<boolean> {
    const bodyChunks = chunksOf(this.spec.body);
    const trailers = this.spec.trailers ? toByteList(this.spec.trailers) : null;
    const eosOnHeaders = bodyChunks.length === 0 && trailers === null;

    for (const slot of this.slots) {
      if (slot.mode === "bypass") continue;
      if (slot.mode === "fail") { this.failStream(slot); return true; }
      if (!this.ensureContext(slot)) { if (this.onTrap(slot)) continue; return true; }
      slot.reqHeadersLive = true;
      const rc = slot.vm!.call("proxy_on_request_headers", slot.ctxId, slot.ctxId, this.reqHeaders.size, eosOnHeaders ? 1 : 0);
      const after = this.afterCallback(slot);
      if (after === "trap") { slot.reqHeadersLive = false; if (this.onTrap(slot)) continue; return true; }
      if (after === "local") { this.takeLocal(slot); return true; }
      if (after === "reset") return true;
      // 0 Continue and 2 ContinueAndEndStream continue; anything else stops all iteration (section 4).
      if (rc === undefined || rc === 0 || rc === 2) { slot.reqHeadersLive = false; continue; }
      const resumed = await this.waitResume(slot, "request");
      slot.reqHeadersLive = false;
      if (resumed === "local") { this.takeLocal(slot); return true; }
      if (resumed === "reset") return true;
    }

    for (let i = 0; i < bodyChunks.length; i++) {
      const eos = i === bodyChunks.length - 1 && trailers === null;
      if (await this.pushBody("request", bodyChunks[i], eos)) return true;
    }

    if (trailers !== null) {
      this.reqTrailers = new HeaderMap(this.envoy.inline.trailers, trailers);
      for (let pos = 0; pos < this.slots.length; pos++) {
        const slot = this.slots[pos];
        if (!this.active(slot)) continue;
        slot.reqTrailersLive = true;
        const rc = slot.vm!.call("proxy_on_request_trailers", slot.ctxId, slot.ctxId, this.reqTrailers.size);
        const after = this.afterCallback(slot);
        slot.reqTrailersLive = false;
        if (after === "trap") { if (this.onTrap(slot)) continue; return true; }
        if (after === "local") { this.takeLocal(slot); return true; }
        if (after === "reset") return true;
        if (rc !== undefined && rc !== 0) {
          const resumed = await this.waitResume(slot, "request");
          if (resumed === "local") { this.takeLocal(slot); return true; }
          if (resumed === "reset") return true;
        }
        const held = slot.buffered.request;
        if (held.length > 0) {
          slot.buffered.request = Buffer.alloc(0);
          if (await this.pushBody("request", held, false, pos + 1)) return true;
        }
      }
    }
    return false;
  }

  /**
   * Pushes one data frame through the filters from `from`. A filter that buffers keeps the
   * data (Envoy 1.33+: later calls see the whole buffered body, section 2.8). Returns true
   * when the stream ended.
   */
  private async pushBody(dir: Dir, chunk: Buffer, eos: boolean, from = 0): Promise<boolean> {
    const order = dir === "request" ? this.slots : [...this.slots].reverse();
    const fn = dir === "request" ? "proxy_on_request_body" : "proxy_on_response_body";
    let data = chunk;
    for (let pos = from; pos < order.length; pos++) {
      const slot = order[pos];
      if (!this.active(slot) || !slot.created) continue;
      const wasBuffering = slot.buffered[dir].length > 0;
      slot.buffered[dir] = Buffer.concat([slot.buffered[dir], data]);
      if (wasBuffering && slot.buffered[dir].length > this.envoy.bufferLimitBytes) {
        const status = dir === "request" ? 413 : 500;
        this.localReplySent = { status, details: dir === "request" ? "request_payload_too_large" : "response_payload_too_large", body: Buffer.from(dir === "request" ? "Payload Too Large" : "Internal Server Error"), headers: [] };
        if (dir === "response") this.response = null;
        return true;
      }
      slot.bodyView = { dir };
      if (eos) slot.trailersCreatable = dir;
      const rc = slot.vm!.call(fn, slot.ctxId, slot.ctxId, slot.buffered[dir].length, eos ? 1 : 0);
      slot.bodyView = null;
      slot.trailersCreatable = null;
      const after = this.afterCallback(slot);
      if (after === "trap") {
        if (dir === "request" && this.onTrap(slot)) { data = slot.buffered[dir]; slot.buffered[dir] = Buffer.alloc(0); continue; }
        if (dir === "response") this.replaceResponseWithFailure(slot);
        return true;
      }
      if (after === "local") { this.takeLocal(slot); if (dir === "response") this.response = null; return true; }
      if (after === "reset") return true;
      if (rc !== undefined && rc !== 0) {
        if (!eos) return false; // held until more data (or trailers) arrive
        const resumed = await this.waitResume(slot, dir);
        if (resumed === "local") { this.takeLocal(slot); return true; }
        if (resumed === "reset") return true;
      }
      data = slot.buffered[dir];
      slot.buffered[dir] = Buffer.alloc(0);
    }
    if (data.length > 0) (dir === "request" ? this.requestBody : this.responseBody).push(data);
    return false;
  }

  private async forwardUpstream(): Promise<void> {
    const headers = this.reqHeaders;
    const seen: UpstreamRequest = {
      headers: toUtf8List(headers.pairs()),
      rawHeaders: headers.pairs(),
      envoyFilterState: this.envoyFilterState(),
      body: Buffer.concat(this.requestBody),
      trailers: toUtf8List(this.reqTrailers?.pairs() ?? []),
      header(name: string) {
        const n = name.toLowerCase();
        return this.headers.find(([k]) => k === n)?.[1];
      },
    };
    this.upstreamSeen = seen;
    const res = await (this.spec.upstream ?? defaultUpstream)(seen);
    if (res.cluster !== undefined) this.info.clusterName = res.cluster;
    if (res.reset) {
      this.resetDetails = "upstream_reset_before_response_started";
      return;
    }
    // The router connected before the codec judged the response: upstream.address stays readable
    // after a protocol error (seen on Envoy 1.36 and 1.40).
    this.upstreamAddress = res.address;
    if ((res.protocol ?? "HTTP/1.1") === "HTTP/1.1" && http1ResponseCodecError(res.status, res.headers ?? []) !== null) {
      // The codec resets the upstream stream; the router answers with a local reply that
      // passes through the encoder filters (flag UPE).
      this.localReplySent = {
        status: 502, details: "upstream_reset_before_response_started{protocol_error}", headers: [],
        body: Buffer.from("upstream connect error or disconnect/reset before headers. reset reason: protocol error"),
      };
      await this.encodeLocalReply(this.localReplySent);
      return;
    }
    this.response = { status: res.status, details: "via_upstream" };
    this.respHeaders = new HeaderMap(this.envoy.inline.response, [[":status", String(res.status)], ...toByteList(res.headers)]);
    await this.encode(chunksOf(res.body), res.trailers ? toByteList(res.trailers) : null);
  }

  private async encodeLocalReply(reply: LocalReply): Promise<void> {
    // Envoy's order, seen on 1.36 and 1.40 (e2e differential): the filter's own headers first, then
    // content-length and, only when the filter set none, content-type: text/plain.
    this.respHeaders = new HeaderMap(this.envoy.inline.response, [[":status", String(reply.status)]]);
    for (const [k, v] of reply.headers) this.respHeaders.add(k, v);
    if (reply.body.length > 0) {
      this.respHeaders.replace("content-length", String(reply.body.length));
      if (!this.respHeaders.has("content-type")) this.respHeaders.add("content-type", "text/plain");
    }
    // The gRPC status reaches the client only on a gRPC request: on plain HTTP, Envoy (1.36, 1.40)
    // sends the 503 without grpc-status. (For gRPC, Envoy answers trailers-only with :status 200;
    // the host keeps the HTTP status there: not verified.)
    const grpc = (this.reqHeaders.get("content-type") ?? "").startsWith("application/grpc");
    if (reply.grpcStatus !== undefined && grpc) this.respHeaders.add("grpc-status", String(reply.grpcStatus));
    this.response = { status: reply.status, details: reply.details };
    this.responseBody = [];
    await this.encode(reply.body.length > 0 ? [reply.body] : [], null, true);
  }

  /** A trap while encoding: the response is replaced by Envoy's 503 (unless already sent). */
  private replaceResponseWithFailure(slot: FilterSlot): void {
    this.failedSlot = slot;
    this.localReplySent = { status: 503, details: "wasm_fail_stream", body: Buffer.alloc(0), headers: [], grpcStatus: 14 };
    this.response = null;
    this.responseBody = [];
    this.respTrailers = null;
  }

  private async encode(bodyChunks: Buffer[], trailers: HeaderList | null, isLocalReply = false): Promise<void> {
    const order = [...this.slots].reverse();
    const eosOnHeaders = bodyChunks.length === 0 && trailers === null;
    for (const slot of order) {
      // Response callbacks only reach contexts that saw the request (section 1.6).
      if (!this.active(slot) || !slot.created || slot === this.failedSlot) continue;
      slot.respHeadersLive = true;
      const rc = slot.vm!.call("proxy_on_response_headers", slot.ctxId, slot.ctxId, this.respHeaders!.size, eosOnHeaders ? 1 : 0);
      const after = this.afterCallback(slot);
      if (after === "trap") { slot.respHeadersLive = false; this.replaceResponseWithFailure(slot); if (!isLocalReply) await this.encodeLocalReply(this.localReplySent!); return; }
      if (after === "local") {
        slot.respHeadersLive = false;
        const reply = slot.pendingLocal!;
        slot.pendingLocal = null;
        if (isLocalReply) { this.envoy.log("warn", "http", "local reply from a response callback of a local reply ignored"); continue; }
        this.localReplySent = reply;
        this.failedSlot = slot; // the sender does not see its own replacement again
        await this.encodeLocalReply(reply);
        return;
      }
      if (after === "reset") return;
      if (rc !== undefined && rc !== 0 && rc !== 2) {
        const resumed = await this.waitResume(slot, "response");
        if (resumed === "reset") return;
        if (resumed === "local") {
          const reply = slot.pendingLocal!;
          slot.pendingLocal = null;
          this.localReplySent = reply;
          this.failedSlot = slot;
          await this.encodeLocalReply(reply);
          return;
        }
      }
      slot.respHeadersLive = false;
    }
    for (let i = 0; i < bodyChunks.length; i++) {
      const eos = i === bodyChunks.length - 1 && trailers === null;
      if (await this.pushBody("response", bodyChunks[i], eos)) {
        if (this.localReplySent && !this.response) await this.encodeLocalReply(this.localReplySent);
        return;
      }
    }
    if (trailers !== null) {
      this.respTrailers = new HeaderMap(this.envoy.inline.trailers, trailers);
      for (const slot of order) {
        if (!this.active(slot) || !slot.created || slot === this.failedSlot) continue;
        slot.respTrailersLive = true;
        const rc = slot.vm!.call("proxy_on_response_trailers", slot.ctxId, slot.ctxId, this.respTrailers.size);
        slot.respTrailersLive = false;
        if (this.afterCallback(slot) === "trap") { this.replaceResponseWithFailure(slot); await this.encodeLocalReply(this.localReplySent!); return; }
        if (rc !== undefined && rc !== 0) {
          const resumed = await this.waitResume(slot, "response");
          if (resumed !== "continue") return;
        }
        const held = slot.buffered.response;
        if (held.length > 0) { slot.buffered.response = Buffer.alloc(0); this.responseBody.push(held); }
      }
    }
  }

  /** Stream end: on_log, then on_done, then on_delete, per context (section 1.6). */
  private finish(): void {
    for (const slot of this.slots) {
      if (slot.mode !== "active" || !slot.vm || slot.vm.failed) continue;
      const vm = slot.vm;
      if (!slot.created) {
        if (!this.ensureContext(slot)) continue;
      }
      slot.reqHeadersLive = slot.respHeadersLive = false;
      this.inLogPhase = true;
      vm.call("proxy_on_log", slot.ctxId, slot.ctxId);
      this.inLogPhase = false;
      vm.call("proxy_on_done", slot.ctxId, slot.ctxId);
      vm.call("proxy_on_delete", slot.ctxId, slot.ctxId);
      vm.contexts.delete(slot.ctxId);
    }
  }

  private result(): StreamResult {
    const headers = this.hung || this.resetDetails ? [] : toUtf8List(this.respHeaders?.pairs() ?? []);
    const bodyBytes = this.hung || this.resetDetails ? Buffer.alloc(0) : Buffer.concat(this.responseBody);
    const local = this.localReplySent;
    return {
      status: this.hung || this.resetDetails ? 0 : Number(this.respHeaders?.get(":status") ?? 0),
      headers,
      body: bodyBytes.toString("utf8"),
      bodyBytes,
      trailers: toUtf8List(this.respTrailers?.pairs() ?? []),
      details: this.resetDetails ?? this.response?.details ?? local?.details ?? "",
      localReply: local !== null,
      grpcStatus: local?.grpcStatus,
      reset: this.resetDetails !== null,
      hung: this.hung,
      upstream: this.upstreamSeen,
      routeCacheClears: this.routeCacheClears,
      envoyFilterState: this.envoyFilterState(),
      worker: this.worker,
      header(name: string) {
        const n = name.toLowerCase();
        return headers.find(([k]) => k === n)?.[1];
      },
    };
  }
}
