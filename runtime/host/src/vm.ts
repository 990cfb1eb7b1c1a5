// One wasm instance as Envoy runs it: one per worker per plugin, plus the canary.
// Hostcalls follow shared/reference/envoy-wasm-host.md section 2; traps section 1.9.
import { randomFillSync } from "node:crypto";
import { performance } from "node:perf_hooks";
import { BufferType, MALLOC_ALLOWED, MapType, Status, startupAllowed, LOG_LEVELS } from "./abi.js";
import { HeaderMap, HeaderList, decodePairs, encodePairs, fromBytes, toBytes } from "./headers.js";
import type { Envoy } from "./envoy.js";
import type { Plugin } from "./plugin.js";
import type { HttpStream, FilterSlot } from "./stream.js";
import { resolveProperty } from "./properties.js";

export interface RootState {
  kind: "root";
  id: number;
  tickPeriodMs: number;
  nextTickAt: number;
  httpCalls: Map<number, { cluster: string }>;
  /** During proxy_on_http_call_response: the response maps and body. */
  callResponse?: { headers: HeaderMap; trailers: HeaderMap; body: Buffer; status: number; message: string };
  configReadable: boolean;
  /** Last status reported by proxy_get_status. */
  lastStatus: { code: number; message: string };
}

export interface StreamState {
  kind: "stream";
  id: number;
  rootId: number;
  stream: HttpStream;
  slot: FilterSlot;
}

type ContextState = RootState | StreamState;

export class TrapError extends Error {}

export type VmRole = "base" | "canary" | number;

export class WasmVm {
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory;
  private readonly exportsMap: Record<string, (...args: any[]) => any>;
  failed = false;
  failMessage = "";
  private nextContextId = 1;
  readonly contexts = new Map<number, ContextState>();
  rootId = 0;
  /** The context the host is calling into (0 = VM context). */
  current = 0;
  private effective = 0;
  private phase: "start" | "call" | "malloc" = "start";
  private deferred: Array<() => void> = [];
  private depth = 0;
  hostcalls = 0;
  /** Milliseconds spent inside the module (top-level calls), for the benchmark. */
  busyMs = 0;
  /** Of busyMs, milliseconds spent in this host's hostcall implementations. */
  hostcallMs = 0;
  readonly hostcallsByName = new Map<string, number>();
  private nextCallToken = 4;
  private nextMetric = [1, 1, 1];
  readonly metricIds = new Map<number, string>();
  readonly createdAt: number;

  constructor(readonly plugin: Plugin, readonly role: VmRole) {
    this.createdAt = plugin.envoy.nowMs();
    const imports = this.buildImports();
    try {
      this.instance = new WebAssembly.Instance(plugin.module, imports);
    } catch (err) {
      throw new Error(`Failed to instantiate Wasm module: ${(err as Error).message}`);
    }
    this.exportsMap = this.instance.exports as any;
    this.memory = this.instance.exports.memory as WebAssembly.Memory;
    // The start section ran inside `new Instance` with phase "start"; so do _initialize then
    // main, or _start (section 1.1). Only start-up hostcalls are allowed in them.
    try {
      if (this.exportsMap._initialize) {
        this.exportsMap._initialize();
        if (this.exportsMap.main) this.exportsMap.main(0, 0);
      } else if (this.exportsMap._start) {
        this.exportsMap._start();
      }
    } finally {
      this.phase = "call";
    }
  }

  get envoy(): Envoy {
    return this.plugin.envoy;
  }

  /** Linear memory size in 64 KiB pages. */
  get memoryPages(): number {
    return this.memory.buffer.byteLength / 65536;
  }

  has(name: string): boolean {
    return typeof this.exportsMap[name] === "function";
  }

  // ------------------------------------------------------------ calls into the VM

  /**
   * Calls an export with `context` as the current context. A trap marks the VM failed, logs
   * what Envoy logs, and returns undefined. Deferred actions (local reply, continue) run after.
   */
  call(name: string, context: number, ...args: number[]): number | undefined {
    if (this.failed) return undefined;
    const fn = this.exportsMap[name];
    if (!fn) return undefined;
    this.envoy.activity++;
    this.envoy.calls?.push({ worker: this.role, plugin: this.plugin.config.name, name, args });
    const savedCurrent = this.current;
    const savedEffective = this.effective;
    this.current = context;
    this.effective = 0;
    this.depth++;
    let result: number | undefined;
    const started = this.depth === 1 ? performance.now() : 0;
    try {
      result = fn(...args) as number | undefined;
    } catch (err) {
      this.trap(name, err as Error);
      result = undefined;
    } finally {
      if (this.depth === 1) this.busyMs += performance.now() - started;
      this.depth--;
      this.current = savedCurrent;
      this.effective = savedEffective;
    }
    if (this.depth === 0) this.runDeferred();
    return result;
  }

  private runDeferred(): void {
    while (this.deferred.length > 0) {
      const actions = this.deferred;
      this.deferred = [];
      for (const a of actions) a();
    }
  }

  /** Runs `action` once the current VM call has returned (Envoy defers these). */
  defer(action: () => void): void {
    if (this.depth === 0) action();
    else this.deferred.push(action);
  }

  private trap(name: string, err: Error): void {
    this.failed = true;
    const isRuntime = err instanceof WebAssembly.RuntimeError;
    const message = isRuntime ? err.message : `${err.message}`;
    this.failMessage = message;
    this.envoy.log("error", "wasm", `Function: ${name} failed: Uncaught ${isRuntime ? "RuntimeError" : "Error"}: ${message}`);
    const frames = wasmFrames(err);
    if (frames.length > 0) {
      this.envoy.log("error", "wasm", ["Proxy-Wasm plugin in-VM backtrace:", ...frames].join("\n"));
    }
    this.plugin.onTrap(this);
  }

  // ------------------------------------------------------------ contexts

  allocateContextId(): number {
    return this.nextContextId++;
  }

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

  // ------------------------------------------------------------ memory helpers

  private u8(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }
  private inBounds(ptr: number, len: number): boolean {
    return ptr >= 0 && len >= 0 && ptr + len <= this.memory.buffer.byteLength;
  }
  private read(ptr: number, len: number): Buffer | null {
    if (!this.inBounds(ptr, len)) return null;
    return Buffer.from(this.u8().slice(ptr, ptr + len));
  }
  private readStr(ptr: number, len: number): string | null {
    const b = this.read(ptr, len);
    return b === null ? null : fromBytes(b);
  }
  private writeU32(ptr: number, v: number): boolean {
    if (!this.inBounds(ptr, 4)) return false;
    new DataView(this.memory.buffer).setUint32(ptr, v >>> 0, true);
    return true;
  }
  private writeU64(ptr: number, v: bigint): boolean {
    if (!this.inBounds(ptr, 8)) return false;
    new DataView(this.memory.buffer).setBigUint64(ptr, BigInt.asUintN(64, v), true);
    return true;
  }

  /** Allocates in the module with malloc and copies `bytes` there (section 2.3). */
  private copyOut(bytes: Uint8Array, ptrPtr: number, sizePtr: number): number {
    if (!this.inBounds(ptrPtr, 4) || !this.inBounds(sizePtr, 4)) return Status.InvalidMemoryAccess;
    if (bytes.length === 0) {
      this.writeU32(ptrPtr, 0);
      this.writeU32(sizePtr, 0);
      return Status.Ok;
    }
    const ptr = this.malloc(bytes.length);
    if (ptr === 0 || !this.inBounds(ptr, bytes.length)) return Status.InvalidMemoryAccess;
    this.u8().set(bytes, ptr);
    this.writeU32(ptrPtr, ptr);
    this.writeU32(sizePtr, bytes.length);
    return Status.Ok;
  }

  private malloc(size: number): number {
    const fn = this.exportsMap.malloc ?? this.exportsMap.proxy_on_memory_allocate;
    const saved = this.phase;
    this.phase = "malloc";
    try {
      return (fn(size) as number) >>> 0;
    } finally {
      this.phase = saved;
    }
  }

  // ------------------------------------------------------------ imports

  private buildImports(): WebAssembly.Imports {
    const impl = this.hostcalls_();
    const startup = startupAllowed(this.plugin.envoy.minor);
    const imports: Record<string, Record<string, (...a: any[]) => any>> = {};
    for (const imp of this.plugin.info.imports) {
      if (imp.kind !== "function") continue;
      const full = `${imp.module}.${imp.name}`;
      const key = imp.module === "env" ? imp.name : `wasi.${imp.name}`;
      const fn = impl[key];
      if (!fn) throw new Error(`host has no implementation for ${full}`);
      imports[imp.module] ??= {};
      imports[imp.module][imp.name] = (...args: any[]) => {
        if (this.phase === "start" && !startup.has(full)) throw new TrapError(`restricted_callback: ${full}`);
        if (this.phase === "malloc" && !MALLOC_ALLOWED.has(full)) throw new TrapError(`restricted_callback: ${full}`);
        this.hostcalls++;
        this.hostcallsByName.set(imp.name, (this.hostcallsByName.get(imp.name) ?? 0) + 1);
        const started = performance.now();
        try {
          return fn(...args);
        } finally {
          this.hostcallMs += performance.now() - started;
        }
      };
    }
    return imports;
  }

  private headerMap(type: number, forWrite: boolean): HeaderMap | null | "bad" {
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

  private hostcalls_(): Record<string, (...a: any[]) => any> {
    const envoy = this.envoy;
    const S = Status;
    const self = this;

    const mapWriteResult = (type: number, op: (m: HeaderMap) => void): number => {
      const m = self.headerMap(type, true);
      if (m === "bad" || m === null) return S.BadArgument;
      op(m);
      const c = self.ctx();
      if (type === MapType.RequestHeaders && c?.kind === "stream") c.stream.onRequestHeadersMutated();
      return S.Ok;
    };

    return {
      // ---- logging (2.5)
      proxy_log(level: number, ptr: number, len: number) {
        if (level > 5) return S.BadArgument;
        const msg = self.readStr(ptr, len);
        if (msg === null) return S.InvalidMemoryAccess;
        const c = self.ctx();
        const cfg = self.plugin.config;
        const parts = c === undefined ? [] : c.kind === "stream" ? [cfg.name, cfg.rootId ?? "", cfg.vmId ?? ""] : [cfg.rootId ?? "", cfg.vmId ?? ""];
        const prefix = parts.filter((p) => p.length > 0).map((p) => ` ${p}`).join("");
        envoy.log(LOG_LEVELS[level], "wasm", `wasm log${prefix}: ${Buffer.from(msg, "latin1").toString("utf8")}`, { plugin: cfg.name, worker: self.role });
        return S.Ok;
      },
      proxy_get_log_level(ptr: number) {
        return self.writeU32(ptr, LOG_LEVELS.indexOf(envoy.logLevel)) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_get_status(codePtr: number, msgPtrPtr: number, msgLenPtr: number) {
        const st = self.rootOf(self.ctx())?.lastStatus ?? { code: 0, message: "" };
        if (!self.writeU32(codePtr, st.code)) return S.InvalidMemoryAccess;
        return self.copyOut(toBytes(st.message), msgPtrPtr, msgLenPtr);
      },

      // ---- time (2.6)
      proxy_get_current_time_nanoseconds(ptr: number) {
        return self.writeU64(ptr, BigInt(Math.round(envoy.nowMs() * 1000)) * 1000n) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_set_tick_period_milliseconds(ms: number) {
        const root = self.rootOf(self.ctx());
        if (!root) return S.Ok;
        root.tickPeriodMs = ms >>> 0;
        root.nextTickAt = ms === 0 ? 0 : envoy.nowMs() + (ms >>> 0);
        return S.Ok;
      },

      // ---- properties (2.10)
      proxy_get_property(pathPtr: number, pathLen: number, outPtr: number, outLen: number) {
        const raw = self.readStr(pathPtr, pathLen);
        if (raw === null) return S.InvalidMemoryAccess;
        const path = raw.split("\0");
        if (path.length > 1 && path[path.length - 1] === "") path.pop();
        if (path.some((p) => p === "")) return S.NotFound;
        const value = resolveProperty(self, self.ctx(), path);
        if (value === undefined) return S.NotFound;
        return self.copyOut(value, outPtr, outLen);
      },
      proxy_set_property(pathPtr: number, pathLen: number, valPtr: number, valLen: number) {
        const path = self.readStr(pathPtr, pathLen);
        const value = self.read(valPtr, valLen);
        if (path === null || value === null) return S.InvalidMemoryAccess;
        const c = self.ctx();
        if (!c || c.kind !== "stream") return S.NotFound;
        c.stream.filterState.set(`wasm.${path}`, value);
        return S.Ok;
      },

      // ---- stream control (2.9)
      proxy_continue_stream(type: number) {
        if (type > 3) return S.BadArgument;
        if (type === 3) return S.Unimplemented;
        const c = self.ctx();
        if (!c || c.kind !== "stream" || type === 2) return S.Ok;
        c.stream.dropRequestPointers(c.slot);
        const slot = c.slot;
        self.defer(() => c.stream.continueFrom(slot, type === 0 ? "request" : "response"));
        return S.Ok;
      },
      proxy_close_stream(type: number) {
        if (type > 3) return S.BadArgument;
        const c = self.ctx();
        if (c && c.kind === "stream" && type <= 1) self.defer(() => c.stream.reset("wasm_close_stream"));
        return S.Ok;
      },
      proxy_send_local_response(status: number, dPtr: number, dLen: number, bPtr: number, bLen: number, hPtr: number, hLen: number, grpc: number) {
        const details = self.readStr(dPtr, dLen);
        const body = self.read(bPtr, bLen);
        const headers = self.read(hPtr, hLen);
        if (details === null || body === null || headers === null) return S.InvalidMemoryAccess;
        const c = self.ctx();
        if (!c || c.kind !== "stream") return S.Ok;
        c.stream.requestLocalReply(c.slot, {
          status: status >>> 0,
          details: details.replace(/\s/g, "_"),
          body,
          headers: decodePairs(headers),
          grpcStatus: grpc >>> 0 <= 16 ? grpc >>> 0 : undefined,
        });
        return S.Ok;
      },

      // ---- shared data (2.11)
      proxy_get_shared_data(kPtr: number, kLen: number, vPtrPtr: number, vLenPtr: number, casPtr: number) {
        const key = self.readStr(kPtr, kLen);
        if (key === null) return S.InvalidMemoryAccess;
        const entry = envoy.sharedData.get(self.plugin.vmId, key);
        if (!entry) return S.NotFound;
        const rc = self.copyOut(entry.value, vPtrPtr, vLenPtr);
        if (rc !== S.Ok) return rc;
        return self.writeU32(casPtr, entry.cas) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_set_shared_data(kPtr: number, kLen: number, vPtr: number, vLen: number, cas: number) {
        const key = self.readStr(kPtr, kLen);
        const value = self.read(vPtr, vLen);
        if (key === null || value === null) return S.InvalidMemoryAccess;
        return envoy.sharedData.set(self.plugin.vmId, key, value, cas >>> 0, String(self.role)) ? S.Ok : S.CasMismatch;
      },

      // ---- shared queues (2.12)
      proxy_register_shared_queue(nPtr: number, nLen: number, tokenPtr: number) {
        const name = self.readStr(nPtr, nLen);
        if (name === null) return S.InvalidMemoryAccess;
        const token = envoy.queues.register(self.plugin.vmId, name, self);
        return self.writeU32(tokenPtr, token) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_resolve_shared_queue(vPtr: number, vLen: number, nPtr: number, nLen: number, tokenPtr: number) {
        const vmId = self.readStr(vPtr, vLen);
        const name = self.readStr(nPtr, nLen);
        if (vmId === null || name === null) return S.InvalidMemoryAccess;
        const token = envoy.queues.resolve(vmId === "" ? self.plugin.vmId : vmId, name);
        if (token === undefined) return S.NotFound;
        return self.writeU32(tokenPtr, token) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_enqueue_shared_queue(token: number, dPtr: number, dLen: number) {
        const data = self.read(dPtr, dLen);
        if (data === null) return S.InvalidMemoryAccess;
        return envoy.queues.enqueue(token >>> 0, data) ? S.Ok : S.NotFound;
      },
      proxy_dequeue_shared_queue(token: number, dPtrPtr: number, dLenPtr: number) {
        const r = envoy.queues.dequeue(token >>> 0);
        if (r === undefined) return S.NotFound;
        if (r === null) return S.Empty;
        return self.copyOut(r, dPtrPtr, dLenPtr);
      },

      // ---- header maps (2.7)
      proxy_get_header_map_value(type: number, kPtr: number, kLen: number, vPtrPtr: number, vLenPtr: number) {
        const key = self.readStr(kPtr, kLen);
        if (key === null) return S.InvalidMemoryAccess;
        const m = self.headerMap(type, false);
        if (m === "bad") return S.BadArgument;
        if (m === null) {
          const c = self.ctx();
          return c?.kind === "stream" && c.stream.inLogPhase ? S.NotFound : S.BadArgument;
        }
        const v = m.get(key);
        if (v === undefined) return S.NotFound;
        return self.copyOut(toBytes(v), vPtrPtr, vLenPtr);
      },
      proxy_get_header_map_pairs(type: number, outPtr: number, outLen: number) {
        const m = self.headerMap(type, false);
        if (m === "bad") return S.BadArgument;
        if (m === null || m.size === 0) return self.copyOut(new Uint8Array(0), outPtr, outLen);
        return self.copyOut(encodePairs(m.pairs()), outPtr, outLen);
      },
      proxy_set_header_map_pairs(type: number, ptr: number, len: number) {
        const buf = self.read(ptr, len);
        if (buf === null) return S.InvalidMemoryAccess;
        return mapWriteResult(type, (m) => m.setAll(decodePairs(buf)));
      },
      proxy_add_header_map_value(type: number, kPtr: number, kLen: number, vPtr: number, vLen: number) {
        const k = self.readStr(kPtr, kLen);
        const v = self.readStr(vPtr, vLen);
        if (k === null || v === null) return S.InvalidMemoryAccess;
        return mapWriteResult(type, (m) => m.add(k, v));
      },
      proxy_replace_header_map_value(type: number, kPtr: number, kLen: number, vPtr: number, vLen: number) {
        const k = self.readStr(kPtr, kLen);
        const v = self.readStr(vPtr, vLen);
        if (k === null || v === null) return S.InvalidMemoryAccess;
        return mapWriteResult(type, (m) => m.replace(k, v));
      },
      proxy_remove_header_map_value(type: number, kPtr: number, kLen: number) {
        const k = self.readStr(kPtr, kLen);
        if (k === null) return S.InvalidMemoryAccess;
        return mapWriteResult(type, (m) => m.remove(k));
      },
      proxy_get_header_map_size(type: number, outPtr: number) {
        const m = self.headerMap(type, false);
        if (m === "bad" || m === null) return S.BadArgument;
        return self.writeU32(outPtr, m.byteSize()) ? S.Ok : S.InvalidMemoryAccess;
      },

      // ---- buffers (2.8)
      proxy_get_buffer_status(type: number, lenPtr: number, flagsPtr: number) {
        const b = self.buffer(type);
        if (b === "bad") return S.BadArgument;
        if (b === null) return S.NotFound;
        if (!self.writeU32(lenPtr, b.length)) return S.InvalidMemoryAccess;
        return self.writeU32(flagsPtr, 0) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_get_buffer_bytes(type: number, start: number, length: number, outPtr: number, outLen: number) {
        const b = self.buffer(type);
        if (b === "bad") return S.BadArgument;
        if (b === null) return S.NotFound;
        start >>>= 0;
        length >>>= 0;
        if (start > b.length) return self.copyOut(new Uint8Array(0), outPtr, outLen);
        return self.copyOut(b.subarray(start, Math.min(b.length, start + length)), outPtr, outLen);
      },
      proxy_set_buffer_bytes(type: number, start: number, length: number, dPtr: number, dLen: number) {
        const data = self.read(dPtr, dLen);
        if (data === null) return S.InvalidMemoryAccess;
        const c = self.ctx();
        if (c?.kind !== "stream" || (type !== BufferType.HttpRequestBody && type !== BufferType.HttpResponseBody)) return S.BadArgument;
        return c.stream.setBody(c.slot, type, start >>> 0, length >>> 0, data) ? S.Ok : S.BadArgument;
      },

      // ---- http callouts (2.13)
      proxy_http_call(cPtr: number, cLen: number, hPtr: number, hLen: number, bPtr: number, bLen: number, tPtr: number, tLen: number, timeout: number, tokenPtr: number) {
        const cluster = self.readStr(cPtr, cLen);
        const hdr = self.read(hPtr, hLen);
        const body = self.read(bPtr, bLen);
        const trl = self.read(tPtr, tLen);
        if (cluster === null || hdr === null || body === null || trl === null) return S.InvalidMemoryAccess;
        if (!envoy.clusters.has(cluster)) return S.BadArgument;
        if ((timeout | 0) < 0) return S.BadArgument;
        const headers = new HeaderMap(envoy.inline.request, decodePairs(hdr));
        if (!headers.has(":path") || !headers.has(":method") || !headers.has(":authority")) return S.BadArgument;
        if (body.length > 0) headers.replace("content-length", String(body.length));
        const root = self.root;
        const token = self.nextCallToken;
        self.nextCallToken += 4;
        if (!self.writeU32(tokenPtr, token)) return S.InvalidMemoryAccess;
        root.httpCalls.set(token, { cluster });
        envoy.dispatchHttpCall(self, token, cluster, headers, body, decodePairs(trl), timeout >>> 0);
        return S.Ok;
      },
      proxy_grpc_call() { return S.ParseFailure; },
      proxy_grpc_stream() { return S.ParseFailure; },
      proxy_grpc_send() { return S.BadArgument; },
      proxy_grpc_close() { return S.NotFound; },
      proxy_grpc_cancel() { return S.NotFound; },

      // ---- metrics (2.15)
      proxy_define_metric(type: number, nPtr: number, nLen: number, idPtr: number) {
        if (type > 2) return S.BadArgument;
        const name = self.readStr(nPtr, nLen);
        if (name === null) return S.InvalidMemoryAccess;
        const id = self.nextMetric[type]++ * 4 + type;
        self.metricIds.set(id, name);
        envoy.metrics.define(name, (["counter", "gauge", "histogram"] as const)[type]);
        return self.writeU32(idPtr, id) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_increment_metric(id: number, offset: bigint) {
        const name = self.metricIds.get(id >>> 0);
        if (name === undefined) return S.NotFound;
        return envoy.metrics.increment(name, offset) ? S.Ok : S.BadArgument;
      },
      proxy_record_metric(id: number, value: bigint) {
        const name = self.metricIds.get(id >>> 0);
        if (name === undefined) return S.NotFound;
        envoy.metrics.record(name, BigInt.asUintN(64, value));
        return S.Ok;
      },
      proxy_get_metric(id: number, outPtr: number) {
        const name = self.metricIds.get(id >>> 0);
        if (name === undefined) return S.NotFound;
        const v = envoy.metrics.get(name);
        if (v === undefined) return S.BadArgument;
        return self.writeU64(outPtr, v) ? S.Ok : S.InvalidMemoryAccess;
      },

      // ---- system (2.16, 2.17)
      proxy_set_effective_context(id: number) {
        const target = self.contexts.get(id >>> 0);
        if (!target) return S.BadArgument;
        self.effective = id >>> 0;
        return S.Ok;
      },
      proxy_done() { return S.NotFound; },
      proxy_call_foreign_function(nPtr: number, nLen: number, aPtr: number, aLen: number, rPtrPtr: number, rLenPtr: number) {
        const name = self.readStr(nPtr, nLen);
        if (name === null || self.read(aPtr, aLen) === null) return S.InvalidMemoryAccess;
        if (name === "set_envoy_filter_state") {
          const c = self.ctx();
          if (c?.kind !== "stream") return S.NotFound;
          const args = decodeFilterStateArgs(self.read(aPtr, aLen)!);
          if (!args) return S.BadArgument;
          // Only object factories Envoy registers are accepted; each validates its value.
          const factory = ENVOY_FILTER_STATE_FACTORIES[args.path];
          if (!factory) return S.NotFound;
          if (!factory(args.value)) return S.BadArgument;
          c.stream.filterState.set(`envoy:${args.path}`, Buffer.from(args.value, "utf8"));
          return self.copyOut(new Uint8Array(0), rPtrPtr, rLenPtr);
        }
        if (name === "clear_route_cache" && envoy.minor >= 33) {
          const c = self.ctx();
          if (c?.kind === "stream") c.stream.routeCacheClears++;
          return self.copyOut(new Uint8Array(0), rPtrPtr, rLenPtr);
        }
        return S.NotFound;
      },
      pthread_equal(a: number, b: number) { return a === b ? 1 : 0; },
      emscripten_notify_memory_growth() {},
      envoy_resolve_dns() { return S.Unimplemented; },

      // ---- WASI (2.18)
      "wasi.fd_write"(fd: number, iovs: number, iovsLen: number, nwritten: number) {
        if (fd !== 1 && fd !== 2) return 8;
        const dv = new DataView(self.memory.buffer);
        const chunks: Buffer[] = [];
        for (let i = 0; i < iovsLen; i++) {
          const p = dv.getUint32(iovs + i * 8, true);
          const l = dv.getUint32(iovs + i * 8 + 4, true);
          const b = self.read(p, l);
          if (b === null) return 21;
          chunks.push(b);
        }
        const all = Buffer.concat(chunks);
        self.writeU32(nwritten, all.length);
        envoy.log(fd === 1 ? "info" : "error", "wasm", `wasm log: ${all.toString("utf8").replace(/\n$/, "")}`);
        return 0;
      },
      "wasi.fd_read"() { return 52; },
      "wasi.fd_seek"() { return 0; },
      "wasi.fd_close"() { return 0; },
      "wasi.fd_fdstat_get"(fd: number, ptr: number) {
        if (fd !== 1 && fd !== 2) return 8;
        if (!self.inBounds(ptr, 24)) return 21;
        self.u8().fill(0, ptr, ptr + 24);
        self.writeU64(ptr + 8, 64n); // FD_WRITE right
        return 0;
      },
      "wasi.fd_fdstat_set_flags"() { return 0; },
      "wasi.environ_sizes_get"(countPtr: number, sizePtr: number) {
        const env = self.envList();
        self.writeU32(countPtr, env.length);
        self.writeU32(sizePtr, env.reduce((n, e) => n + e.length + 1, 0));
        return 0;
      },
      "wasi.environ_get"(ptrs: number, buf: number) {
        let off = buf;
        self.envList().forEach((e, i) => {
          self.writeU32(ptrs + i * 4, off);
          self.u8().set(e, off);
          self.u8()[off + e.length] = 0;
          off += e.length + 1;
        });
        return 0;
      },
      "wasi.args_sizes_get"(countPtr: number, sizePtr: number) {
        self.writeU32(countPtr, 0);
        self.writeU32(sizePtr, 0);
        return 0;
      },
      "wasi.args_get"() { return 0; },
      "wasi.clock_time_get"(clock: number, _precision: bigint, out: number) {
        if (clock === 0) return self.writeU64(out, BigInt(Math.round(envoy.nowMs() * 1e6))) ? 0 : 21;
        if (clock === 1) return self.writeU64(out, BigInt(Math.round(envoy.monotonicMs() * 1e6))) ? 0 : 21;
        return 58;
      },
      "wasi.random_get"(ptr: number, len: number) {
        if (len > 65536) return 28;
        if (!self.inBounds(ptr, len)) return 21;
        randomFillSync(self.u8(), ptr, len);
        return 0;
      },
      "wasi.proc_exit"(code: number) {
        envoy.log("trace", "wasm", `wasi_unstable proc_exit(${code})`);
      },
      "wasi.path_open"() { return 44; },
      "wasi.fd_prestat_get"() { return 8; },
      "wasi.fd_prestat_dir_name"() { return 8; },
      "wasi.sched_yield"() { return 0; },
      "wasi.poll_oneoff"() { return 52; },
    };
  }

  private envList(): Buffer[] {
    return Object.entries(this.plugin.config.env ?? {}).map(([k, v]) => Buffer.from(`${k}=${v}`, "utf8"));
  }

  private buffer(type: number): Buffer | null | "bad" {
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

/** Wasm frames of a trap, formatted like Envoy's in-VM backtrace ("  0:  0x10a9 - name"). */
export function wasmFrames(err: Error): string[] {
  const out: string[] = [];
  for (const line of (err.stack ?? "").split("\n")) {
    const m = /at (?:(.+?) \()?wasm:\/\/wasm\/[^:]+:wasm-function\[(\d+)\]:(0x[0-9a-f]+)\)?/.exec(line);
    if (!m) continue;
    const name = (m[1] ?? `wasm-function[${m[2]}]`).replace(/^[^.]*\.wasm\./, "");
    out.push(`  ${out.length}:  ${m[3]} - ${name}`);
    if (out.length === 20) break;
  }
  return out;
}
