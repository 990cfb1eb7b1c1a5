// A plugin's VM as Envoy runs it (one per worker, plus the base VM and the canary): the ABI
// layer (vm/vm.ts) with Envoy's meaning of every hostcall (VmHost), as Envoy's Context
// implements proxy-wasm-cpp-host's ContextBase. Reference sections 1.4-1.9 and 2.
import { BufferType, LOG_LEVELS, MapType, Status } from "../abi/abi.js";
import type { HeaderList } from "../abi/pairs.js";
import type { ModuleInfo } from "../abi/wasm-binary.js";
import type { GuestHeaderMap, LocalResponse, Result, VmHost } from "../vm/host.js";
import { WasmVm, wasmFrames } from "../vm/vm.js";
import type { PluginConfig } from "./config.js";
import type { ContextState, RootState, StreamState } from "./contexts.js";
import { HeaderMap } from "./headers.js";
import type { Process } from "./process.js";
import { resolveProperty } from "./properties.js";

export type { RootState, StreamState };

export type VmRole = "base" | "canary" | number;

/** What a VM needs of the plugin that made it. */
export interface VmOwner {
  readonly config: PluginConfig;
  readonly module: WebAssembly.Module;
  readonly info: ModuleInfo;
  readonly configurationBytes: Buffer;
  readonly vmId: string;
  readonly envoy: Process;
  onTrap(vm: EnvoyVm): void;
}

const S = Status;

export class EnvoyVm extends WasmVm implements VmHost {
  readonly contexts = new Map<number, ContextState>();
  rootId = 0;
  private nextCallToken = 4;
  private nextMetric = [1, 1, 1];
  readonly metricIds = new Map<number, string>();
  readonly createdAt: number;

  constructor(readonly plugin: VmOwner, readonly role: VmRole) {
    super();
    this.createdAt = plugin.envoy.nowMs();
    this.instantiate(plugin.module, plugin.info, plugin.envoy.minor, this);
  }

  get envoy(): Process {
    return this.plugin.envoy;
  }

  // ------------------------------------------------------------ contexts

  /** Root context start-up (section 1.4): create, vm_start, configure. False on any failure. */
  startRoot(): boolean {
    const id = this.allocateContextId();
    this.rootId = id;
    const root: RootState = {
      kind: "root", id, tickPeriodMs: 0, nextTickAt: 0, httpCalls: new Map(), configReadable: true,
      lastStatus: { code: 0, message: "" },
    };
    this.contexts.set(id, root);
    this.call("proxy_on_context_create", id, id, 0);
    if (this.failed) return false;
    root.configReadable = false;
    const vmConfigSize = Buffer.byteLength(this.plugin.config.vmConfiguration ?? "", "utf8");
    const started = this.has("proxy_on_vm_start") ? this.call("proxy_on_vm_start", id, id, vmConfigSize) : 1;
    if (this.failed || !started) {
      this.envoy.log("critical", "wasm", `Failed to start base Wasm for plugin ${this.plugin.config.name}`);
      return false;
    }
    root.configReadable = true;
    const cfgSize = this.plugin.configurationBytes.length;
    const configured = this.has("proxy_on_configure") ? this.call("proxy_on_configure", id, id, cfgSize) : 1;
    root.configReadable = false;
    if (this.failed || !configured) {
      this.envoy.log("critical", "wasm", `Failed to configure base Wasm plugin ${this.plugin.config.name}`);
      return false;
    }
    return true;
  }

  get root(): RootState {
    return this.contexts.get(this.rootId) as RootState;
  }

  /** The context hostcalls act on: the effective one if set and alive, else the current one. */
  private ctx(): ContextState | undefined {
    if (this.effective !== 0) {
      const e = this.contexts.get(this.effective);
      if (e) return e;
    }
    return this.contexts.get(this.current);
  }

  private rootOf(c: ContextState | undefined): RootState | undefined {
    if (!c) return undefined;
    return c.kind === "root" ? c : (this.contexts.get(c.rootId) as RootState);
  }

  private stream(): StreamState | undefined {
    const c = this.ctx();
    return c?.kind === "stream" ? c : undefined;
  }

  // ------------------------------------------------------------ root-context callbacks

  deliverHttpCallResponse(token: number, response: { headers: HeaderList; body: Buffer; trailers: HeaderList } | null): void {
    const root = this.root;
    if (!root || !root.httpCalls.has(token)) return;
    root.httpCalls.delete(token);
    if (this.failed) return;
    const envoy = this.envoy;
    root.callResponse = response
      ? { headers: new HeaderMap(envoy.inline.response, response.headers), trailers: new HeaderMap(envoy.inline.trailers, response.trailers), body: response.body, status: 0, message: "" }
      : { headers: new HeaderMap(envoy.inline.response), trailers: new HeaderMap(envoy.inline.trailers), body: Buffer.alloc(0), status: 11, message: "reset" };
    root.lastStatus = response ? { code: 0, message: "" } : { code: Status.BrokenConnection, message: "reset" };
    const hc = response ? new HeaderMap(envoy.inline.response, response.headers).size : 0;
    const tc = response ? response.trailers.length : 0;
    this.call("proxy_on_http_call_response", root.id, root.id, token, hc, response ? response.body.length : 0, tc);
    root.callResponse = undefined;
    root.lastStatus = { code: 0, message: "" };
  }

  tick(): void {
    if (this.failed) return;
    this.call("proxy_on_tick", this.rootId, this.rootId);
  }

  queueReady(token: number): void {
    if (this.failed) return;
    this.call("proxy_on_queue_ready", this.rootId, this.rootId, token);
  }

  /** Config removal (section 1.7): on_done on the root, then on_delete when it returns true. */
  shutdown(): void {
    if (this.failed || this.rootId === 0) return;
    const done = this.call("proxy_on_done", this.rootId, this.rootId);
    if (done === undefined || done !== 0) this.call("proxy_on_delete", this.rootId, this.rootId);
  }

  // ------------------------------------------------------------ VmHost: calls and traps

  beforeCall(name: string, args: number[]): void {
    this.envoy.activity++;
    this.envoy.calls?.push({ worker: this.role, plugin: this.plugin.config.name, name, args });
  }

  onTrap(name: string, err: Error): void {
    const isRuntime = err instanceof WebAssembly.RuntimeError;
    this.envoy.log("error", "wasm", `Function: ${name} failed: Uncaught ${isRuntime ? "RuntimeError" : "Error"}: ${err.message}`);
    const frames = wasmFrames(err);
    if (frames.length > 0) {
      this.envoy.log("error", "wasm", ["Proxy-Wasm plugin in-VM backtrace:", ...frames].join("\n"));
    }
    this.plugin.onTrap(this);
  }

  // ------------------------------------------------------------ VmHost: logging, time (2.5, 2.6)

  log(level: number, message: string): void {
    const c = this.ctx();
    const cfg = this.plugin.config;
    const parts = c === undefined ? [] : c.kind === "stream" ? [cfg.name, cfg.rootId ?? "", cfg.vmId ?? ""] : [cfg.rootId ?? "", cfg.vmId ?? ""];
    const prefix = parts.filter((p) => p.length > 0).map((p) => ` ${p}`).join("");
    this.envoy.log(LOG_LEVELS[level], "wasm", `wasm log${prefix}: ${Buffer.from(message, "latin1").toString("utf8")}`, { plugin: cfg.name, worker: this.role });
  }

  logLevel(): number {
    return LOG_LEVELS.indexOf(this.envoy.logLevel);
  }

  lastStatus(): { code: number; message: string } {
    return this.rootOf(this.ctx())?.lastStatus ?? { code: 0, message: "" };
  }

  wallClockNanos(): bigint {
    return BigInt(Math.round(this.envoy.wallNowMs() * 1000)) * 1000n;
  }

  wasiClock(clock: number): bigint | undefined {
    if (clock === 0) return BigInt(Math.round(this.envoy.wallNowMs() * 1e6));
    if (clock === 1) return BigInt(Math.round(this.envoy.monotonicMs() * 1e6));
    return undefined;
  }

  setTickPeriod(ms: number): void {
    const root = this.rootOf(this.ctx());
    if (!root) return;
    root.tickPeriodMs = ms;
    root.nextTickAt = ms === 0 ? 0 : this.envoy.nowMs() + ms;
  }

  // ------------------------------------------------------------ VmHost: properties (2.10)

  getProperty(path: string[]): Buffer | undefined {
    return resolveProperty(this.plugin.config, this.envoy.node, this.ctx(), path);
  }

  setProperty(path: string, value: Buffer): number {
    const c = this.stream();
    if (!c) return S.NotFound;
    c.stream.filterState.set(`wasm.${path}`, value);
    return S.Ok;
  }

  // ------------------------------------------------------------ VmHost: stream control (2.9)

  continueStream(type: number): number {
    const c = this.stream();
    if (!c || type === 2) return S.Ok;
    c.stream.dropRequestPointers(c.slot);
    const slot = c.slot;
    this.defer(() => c.stream.continueFrom(slot, type === 0 ? "request" : "response"));
    return S.Ok;
  }

  closeStream(type: number): number {
    const c = this.stream();
    if (c && type <= 1) this.defer(() => c.stream.reset("wasm_close_stream"));
    return S.Ok;
  }

  sendLocalResponse(reply: LocalResponse): number {
    const c = this.stream();
    if (!c) return S.Ok;
    c.stream.requestLocalReply(c.slot, { ...reply, details: reply.details.replace(/\s/g, "_") });
    return S.Ok;
  }

  // ------------------------------------------------------------ VmHost: shared data and queues (2.11, 2.12)

  getSharedData(key: string): { value: Buffer; cas: number } | undefined {
    return this.envoy.sharedData.get(this.plugin.vmId, key);
  }

  setSharedData(key: string, value: Buffer, cas: number): number {
    return this.envoy.sharedData.set(this.plugin.vmId, key, value, cas, String(this.role)) ? S.Ok : S.CasMismatch;
  }

  registerQueue(name: string): number {
    return this.envoy.queues.register(this.plugin.vmId, name, this);
  }

  resolveQueue(vmId: string, name: string): number | undefined {
    return this.envoy.queues.resolve(vmId === "" ? this.plugin.vmId : vmId, name);
  }

  enqueue(token: number, data: Buffer): number {
    return this.envoy.queues.enqueue(token, data) ? S.Ok : S.NotFound;
  }

  dequeue(token: number): Buffer | null | undefined {
    return this.envoy.queues.dequeue(token);
  }

  // ------------------------------------------------------------ VmHost: header maps (2.7)

  headerMap(type: number, forWrite: boolean): GuestHeaderMap | null | "bad" {
    const c = this.ctx();
    if (type > 7 || type < 0) return "bad";
    if (type === MapType.HttpCallResponseHeaders || type === MapType.HttpCallResponseTrailers) {
      if (forWrite) return "bad";
      const r = this.rootOf(c)?.callResponse;
      if (!r) return null;
      return type === MapType.HttpCallResponseHeaders ? r.headers : r.trailers;
    }
    if (type === MapType.GrpcReceiveInitialMetadata || type === MapType.GrpcReceiveTrailingMetadata) return forWrite ? "bad" : null;
    if (!c || c.kind !== "stream") return null;
    return c.stream.headerMapFor(c.slot, type, forWrite);
  }

  missingMapStatus(): number {
    const c = this.ctx();
    return c?.kind === "stream" && c.stream.inLogPhase ? S.NotFound : S.BadArgument;
  }

  headerMapWritten(type: number): void {
    const c = this.ctx();
    if (type === MapType.RequestHeaders && c?.kind === "stream") c.stream.onRequestHeadersMutated();
  }

  // ------------------------------------------------------------ VmHost: buffers (2.8)

  buffer(type: number): Buffer | null | "bad" {
    if (type > 8 || type < 0) return "bad";
    const c = this.ctx();
    switch (type) {
      case BufferType.VmConfiguration:
        return Buffer.from(this.plugin.config.vmConfiguration ?? "", "utf8");
      case BufferType.PluginConfiguration: {
        const root = this.rootOf(c);
        return root && root.configReadable ? this.plugin.configurationBytes : null;
      }
      case BufferType.HttpCallResponseBody: {
        const r = this.rootOf(c)?.callResponse;
        return r ? r.body : null;
      }
      case BufferType.HttpRequestBody:
      case BufferType.HttpResponseBody:
        if (c?.kind !== "stream") return Buffer.alloc(0);
        return c.stream.bodyView(c.slot, type) ?? Buffer.alloc(0);
      case BufferType.CallData:
        return null;
      default:
        return Buffer.alloc(0);
    }
  }

  setBuffer(type: number, start: number, length: number, data: Buffer): number {
    const c = this.stream();
    if (!c || (type !== BufferType.HttpRequestBody && type !== BufferType.HttpResponseBody)) return S.BadArgument;
    return c.stream.setBody(c.slot, type, start, length, data) ? S.Ok : S.BadArgument;
  }

  // ------------------------------------------------------------ VmHost: http callouts (2.13)

  httpCall(cluster: string, headerList: HeaderList, body: Buffer, trailers: HeaderList, timeoutMs: number): { status: number } | { token: number; send(): void } {
    const envoy = this.envoy;
    if (!envoy.clusters.has(cluster)) return { status: S.BadArgument };
    const headers = new HeaderMap(envoy.inline.request, headerList);
    if (!headers.has(":path") || !headers.has(":method") || !headers.has(":authority")) return { status: S.BadArgument };
    if (body.length > 0) headers.replace("content-length", String(body.length));
    const root = this.root;
    const token = this.nextCallToken;
    this.nextCallToken += 4;
    return {
      token,
      send: () => {
        root.httpCalls.set(token, { cluster });
        envoy.dispatchHttpCall(this, token, cluster, headers, body, trailers, timeoutMs);
      },
    };
  }

  fixedStatus(name: string): number {
    // gRPC is not emulated: Envoy's answers for a call to a cluster that does not exist.
    switch (name) {
      case "proxy_grpc_call":
      case "proxy_grpc_stream":
        return S.ParseFailure;
      case "proxy_grpc_send":
        return S.BadArgument;
      case "proxy_grpc_close":
      case "proxy_grpc_cancel":
        return S.NotFound;
      default:
        return S.Unimplemented;
    }
  }

  // ------------------------------------------------------------ VmHost: metrics (2.15)

  defineMetric(type: number, name: string): number {
    const id = this.nextMetric[type]++ * 4 + type;
    this.metricIds.set(id, name);
    this.envoy.metrics.define(name, (["counter", "gauge", "histogram"] as const)[type]);
    return id;
  }

  incrementMetric(id: number, offset: bigint): number {
    const name = this.metricIds.get(id);
    if (name === undefined) return S.NotFound;
    return this.envoy.metrics.increment(name, offset) ? S.Ok : S.BadArgument;
  }

  recordMetric(id: number, value: bigint): number {
    const name = this.metricIds.get(id);
    if (name === undefined) return S.NotFound;
    this.envoy.metrics.record(name, value);
    return S.Ok;
  }

  getMetric(id: number): Result<bigint> {
    const name = this.metricIds.get(id);
    if (name === undefined) return { status: S.NotFound };
    const v = this.envoy.metrics.get(name);
    if (v === undefined) return { status: S.BadArgument };
    return { value: v };
  }

  // ------------------------------------------------------------ VmHost: contexts, foreign functions (2.16, 2.17)

  contextExists(id: number): boolean {
    return this.contexts.has(id);
  }

  callForeignFunction(name: string, args: Buffer): Result<Uint8Array> {
    if (name === "set_envoy_filter_state") {
      const c = this.stream();
      if (!c) return { status: S.NotFound };
      const decoded = decodeFilterStateArgs(args);
      if (!decoded) return { status: S.BadArgument };
      // Only object factories Envoy registers are accepted; each validates its value.
      const factory = ENVOY_FILTER_STATE_FACTORIES[decoded.path];
      if (!factory) return { status: S.NotFound };
      if (!factory(decoded.value)) return { status: S.BadArgument };
      c.stream.filterState.set(`envoy:${decoded.path}`, Buffer.from(decoded.value, "utf8"));
      return { value: new Uint8Array(0) };
    }
    if (name === "clear_route_cache" && this.envoy.minor >= 33) {
      const c = this.stream();
      if (c) c.stream.routeCacheClears++;
      return { value: new Uint8Array(0) };
    }
    return { status: S.NotFound };
  }

  // ------------------------------------------------------------ VmHost: WASI (2.18)

  consoleWrite(fd: number, text: string): void {
    this.envoy.log(fd === 1 ? "info" : "error", "wasm", `wasm log: ${text.replace(/\n$/, "")}`);
  }

  environment(): Buffer[] {
    return Object.entries(this.plugin.config.env ?? {}).map(([k, v]) => Buffer.from(`${k}=${v}`, "utf8"));
  }

  procExit(code: number): void {
    this.envoy.log("trace", "wasm", `wasi_unstable proc_exit(${code})`);
  }
}

/** Filter-state keys Envoy's object factories accept from set_envoy_filter_state, with their value check. */
const ENVOY_FILTER_STATE_FACTORIES: Record<string, (value: string) => boolean> = {
  // An "ip:port" address ("[v6]:port" for IPv6), as the original-destination transport socket reads it.
  "envoy.network.transport_socket.original_dst_address": (v) => /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/.test(v),
};

/** SetEnvoyFilterStateArguments{string path = 1; string value = 2; LifeSpan span = 3} (section 2.16). */
export function decodeFilterStateArgs(buf: Buffer): { path: string; value: string; span: number } | null {
  let i = 0;
  const out = { path: "", value: "", span: 0 };
  const varint = (): number | null => {
    let v = 0, shift = 0;
    while (i < buf.length) {
      const b = buf[i++];
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
      shift += 7;
      if (shift > 35) return null;
    }
    return null;
  };
  while (i < buf.length) {
    const key = varint();
    if (key === null) return null;
    const field = Math.floor(key / 8), wire = key % 8;
    if (wire === 2) {
      const len = varint();
      if (len === null || i + len > buf.length) return null;
      const text = buf.subarray(i, i + len).toString("utf8");
      i += len;
      if (field === 1) out.path = text;
      else if (field === 2) out.value = text;
    } else if (wire === 0) {
      const v = varint();
      if (v === null) return null;
      if (field === 3) out.span = v;
    } else return null;
  }
  return out;
}
