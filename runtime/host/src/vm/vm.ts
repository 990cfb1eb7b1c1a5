// One wasm instance and the proxy-wasm ABI around it, as proxy-wasm-cpp-host's WasmBase and
// the ABI dispatch are in Envoy: instantiation and start-up, calls into the module with the
// current context, traps, deferred actions, and every hostcall decoded from linear memory
// into a call on VmHost (section 2) and its result encoded back. What a hostcall means is the
// Envoy model's business (envoy/envoy-vm.ts implements VmHost); this file never sees a stream,
// a header map's rules or a property.
import { randomFillSync } from "node:crypto";
import { performance } from "node:perf_hooks";
import { MALLOC_ALLOWED, Status, startupAllowed } from "../abi/abi.js";
import { decodePairs, encodePairs, toBytes } from "../abi/pairs.js";
import type { ModuleInfo } from "../abi/wasm-binary.js";
import type { GuestHeaderMap, VmHost } from "./host.js";
import { GuestMemory } from "./memory.js";

export class TrapError extends Error {}

export class WasmVm {
  instance!: WebAssembly.Instance;
  memory!: WebAssembly.Memory;
  protected mem!: GuestMemory;
  private exportsMap!: Record<string, (...args: any[]) => any>;
  private host!: VmHost;
  failed = false;
  failMessage = "";
  private nextContextId = 1;
  /** The context the host is calling into (0 = VM context). */
  current = 0;
  /** The context set with proxy_set_effective_context during the current call (0 = none). */
  effective = 0;
  private phase: "start" | "call" | "malloc" = "start";
  private deferred: Array<() => void> = [];
  private depth = 0;
  hostcalls = 0;
  /** Milliseconds spent inside the module (top-level calls), for the benchmark. */
  busyMs = 0;
  /** Of busyMs, milliseconds spent in this host's hostcall implementations. */
  hostcallMs = 0;
  readonly hostcallsByName = new Map<string, number>();

  /**
   * Links the module's imports to `host`, instantiates it and runs its start-up (section 1.1):
   * the start section, then _initialize and main, or _start. Only start-up hostcalls are
   * allowed until it returns.
   */
  protected instantiate(module: WebAssembly.Module, info: ModuleInfo, envoyMinor: number, host: VmHost): void {
    this.host = host;
    const imports = this.buildImports(info, envoyMinor);
    try {
      this.instance = new WebAssembly.Instance(module, imports);
    } catch (err) {
      throw new Error(`Failed to instantiate Wasm module: ${(err as Error).message}`);
    }
    this.exportsMap = this.instance.exports as any;
    this.memory = this.instance.exports.memory as WebAssembly.Memory;
    this.mem = new GuestMemory(this.memory, (size) => this.malloc(size));
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

  /** Linear memory size in 64 KiB pages. */
  get memoryPages(): number {
    return this.memory.buffer.byteLength / 65536;
  }

  has(name: string): boolean {
    return typeof this.exportsMap[name] === "function";
  }

  allocateContextId(): number {
    return this.nextContextId++;
  }

  // ------------------------------------------------------------ calls into the VM

  /**
   * Calls an export with `context` as the current context. A trap marks the VM failed and is
   * reported to the host; the call returns undefined. Deferred actions run after the outermost call.
   */
  call(name: string, context: number, ...args: number[]): number | undefined {
    if (this.failed) return undefined;
    const fn = this.exportsMap[name];
    if (!fn) return undefined;
    this.host.beforeCall(name, args);
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
      this.failed = true;
      this.failMessage = (err as Error).message;
      this.host.onTrap(name, err as Error);
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

  private buildImports(info: ModuleInfo, envoyMinor: number): WebAssembly.Imports {
    const impl = this.hostcallTable();
    const startup = startupAllowed(envoyMinor);
    const imports: Record<string, Record<string, (...a: any[]) => any>> = {};
    for (const imp of info.imports) {
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

  /** Every hostcall: arguments decoded from memory, the host asked, results written back. */
  private hostcallTable(): Record<string, (...a: any[]) => any> {
    const S = Status;
    const vm = this;
    const host = (): VmHost => vm.host;
    const mem = (): GuestMemory => vm.mem;

    const write = (type: number, op: (m: GuestHeaderMap) => void): number => {
      const m = host().headerMap(type, true);
      if (m === "bad" || m === null) return S.BadArgument;
      op(m);
      host().headerMapWritten(type);
      return S.Ok;
    };

    return {
      // ---- logging (2.5)
      proxy_log(level: number, ptr: number, len: number) {
        if (level > 5) return S.BadArgument;
        const msg = mem().readStr(ptr, len);
        if (msg === null) return S.InvalidMemoryAccess;
        host().log(level, msg);
        return S.Ok;
      },
      proxy_get_log_level(ptr: number) {
        return mem().writeU32(ptr, host().logLevel()) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_get_status(codePtr: number, msgPtrPtr: number, msgLenPtr: number) {
        const st = host().lastStatus();
        if (!mem().writeU32(codePtr, st.code)) return S.InvalidMemoryAccess;
        return mem().copyOut(toBytes(st.message), msgPtrPtr, msgLenPtr);
      },

      // ---- time (2.6)
      proxy_get_current_time_nanoseconds(ptr: number) {
        return mem().writeU64(ptr, host().wallClockNanos()) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_set_tick_period_milliseconds(ms: number) {
        host().setTickPeriod(ms >>> 0);
        return S.Ok;
      },

      // ---- properties (2.10): the path is NUL-separated segments
      proxy_get_property(pathPtr: number, pathLen: number, outPtr: number, outLen: number) {
        const raw = mem().readStr(pathPtr, pathLen);
        if (raw === null) return S.InvalidMemoryAccess;
        const path = raw.split("\0");
        if (path.length > 1 && path[path.length - 1] === "") path.pop();
        if (path.some((p) => p === "")) return S.NotFound;
        const value = host().getProperty(path);
        if (value === undefined) return S.NotFound;
        return mem().copyOut(value, outPtr, outLen);
      },
      proxy_set_property(pathPtr: number, pathLen: number, valPtr: number, valLen: number) {
        const path = mem().readStr(pathPtr, pathLen);
        const value = mem().read(valPtr, valLen);
        if (path === null || value === null) return S.InvalidMemoryAccess;
        return host().setProperty(path, value);
      },

      // ---- stream control (2.9)
      proxy_continue_stream(type: number) {
        if (type > 3) return S.BadArgument;
        if (type === 3) return S.Unimplemented;
        return host().continueStream(type);
      },
      proxy_close_stream(type: number) {
        if (type > 3) return S.BadArgument;
        return host().closeStream(type);
      },
      proxy_send_local_response(status: number, dPtr: number, dLen: number, bPtr: number, bLen: number, hPtr: number, hLen: number, grpc: number) {
        const details = mem().readStr(dPtr, dLen);
        const body = mem().read(bPtr, bLen);
        const headers = mem().read(hPtr, hLen);
        if (details === null || body === null || headers === null) return S.InvalidMemoryAccess;
        return host().sendLocalResponse({
          status: status >>> 0,
          details,
          body,
          headers: decodePairs(headers),
          grpcStatus: grpc >>> 0 <= 16 ? grpc >>> 0 : undefined,
        });
      },

      // ---- shared data (2.11)
      proxy_get_shared_data(kPtr: number, kLen: number, vPtrPtr: number, vLenPtr: number, casPtr: number) {
        const key = mem().readStr(kPtr, kLen);
        if (key === null) return S.InvalidMemoryAccess;
        const entry = host().getSharedData(key);
        if (!entry) return S.NotFound;
        const rc = mem().copyOut(entry.value, vPtrPtr, vLenPtr);
        if (rc !== S.Ok) return rc;
        return mem().writeU32(casPtr, entry.cas) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_set_shared_data(kPtr: number, kLen: number, vPtr: number, vLen: number, cas: number) {
        const key = mem().readStr(kPtr, kLen);
        const value = mem().read(vPtr, vLen);
        if (key === null || value === null) return S.InvalidMemoryAccess;
        return host().setSharedData(key, value, cas >>> 0);
      },

      // ---- shared queues (2.12)
      proxy_register_shared_queue(nPtr: number, nLen: number, tokenPtr: number) {
        const name = mem().readStr(nPtr, nLen);
        if (name === null) return S.InvalidMemoryAccess;
        return mem().writeU32(tokenPtr, host().registerQueue(name)) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_resolve_shared_queue(vPtr: number, vLen: number, nPtr: number, nLen: number, tokenPtr: number) {
        const vmId = mem().readStr(vPtr, vLen);
        const name = mem().readStr(nPtr, nLen);
        if (vmId === null || name === null) return S.InvalidMemoryAccess;
        const token = host().resolveQueue(vmId, name);
        if (token === undefined) return S.NotFound;
        return mem().writeU32(tokenPtr, token) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_enqueue_shared_queue(token: number, dPtr: number, dLen: number) {
        const data = mem().read(dPtr, dLen);
        if (data === null) return S.InvalidMemoryAccess;
        return host().enqueue(token >>> 0, data);
      },
      proxy_dequeue_shared_queue(token: number, dPtrPtr: number, dLenPtr: number) {
        const r = host().dequeue(token >>> 0);
        if (r === undefined) return S.NotFound;
        if (r === null) return S.Empty;
        return mem().copyOut(r, dPtrPtr, dLenPtr);
      },

      // ---- header maps (2.7)
      proxy_get_header_map_value(type: number, kPtr: number, kLen: number, vPtrPtr: number, vLenPtr: number) {
        const key = mem().readStr(kPtr, kLen);
        if (key === null) return S.InvalidMemoryAccess;
        const m = host().headerMap(type, false);
        if (m === "bad") return S.BadArgument;
        if (m === null) return host().missingMapStatus();
        const v = m.get(key);
        if (v === undefined) return S.NotFound;
        return mem().copyOut(toBytes(v), vPtrPtr, vLenPtr);
      },
      proxy_get_header_map_pairs(type: number, outPtr: number, outLen: number) {
        const m = host().headerMap(type, false);
        if (m === "bad") return S.BadArgument;
        if (m === null || m.size === 0) return mem().copyOut(new Uint8Array(0), outPtr, outLen);
        return mem().copyOut(encodePairs(m.pairs()), outPtr, outLen);
      },
      proxy_set_header_map_pairs(type: number, ptr: number, len: number) {
        const buf = mem().read(ptr, len);
        if (buf === null) return S.InvalidMemoryAccess;
        return write(type, (m) => m.setAll(decodePairs(buf)));
      },
      proxy_add_header_map_value(type: number, kPtr: number, kLen: number, vPtr: number, vLen: number) {
        const k = mem().readStr(kPtr, kLen);
        const v = mem().readStr(vPtr, vLen);
        if (k === null || v === null) return S.InvalidMemoryAccess;
        return write(type, (m) => m.add(k, v));
      },
      proxy_replace_header_map_value(type: number, kPtr: number, kLen: number, vPtr: number, vLen: number) {
        const k = mem().readStr(kPtr, kLen);
        const v = mem().readStr(vPtr, vLen);
        if (k === null || v === null) return S.InvalidMemoryAccess;
        return write(type, (m) => m.replace(k, v));
      },
      proxy_remove_header_map_value(type: number, kPtr: number, kLen: number) {
        const k = mem().readStr(kPtr, kLen);
        if (k === null) return S.InvalidMemoryAccess;
        return write(type, (m) => m.remove(k));
      },
      proxy_get_header_map_size(type: number, outPtr: number) {
        const m = host().headerMap(type, false);
        if (m === "bad" || m === null) return S.BadArgument;
        return mem().writeU32(outPtr, m.byteSize()) ? S.Ok : S.InvalidMemoryAccess;
      },

      // ---- buffers (2.8)
      proxy_get_buffer_status(type: number, lenPtr: number, flagsPtr: number) {
        const b = host().buffer(type);
        if (b === "bad") return S.BadArgument;
        if (b === null) return S.NotFound;
        if (!mem().writeU32(lenPtr, b.length)) return S.InvalidMemoryAccess;
        return mem().writeU32(flagsPtr, 0) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_get_buffer_bytes(type: number, start: number, length: number, outPtr: number, outLen: number) {
        const b = host().buffer(type);
        if (b === "bad") return S.BadArgument;
        if (b === null) return S.NotFound;
        start >>>= 0;
        length >>>= 0;
        if (start > b.length) return mem().copyOut(new Uint8Array(0), outPtr, outLen);
        return mem().copyOut(b.subarray(start, Math.min(b.length, start + length)), outPtr, outLen);
      },
      proxy_set_buffer_bytes(type: number, start: number, length: number, dPtr: number, dLen: number) {
        const data = mem().read(dPtr, dLen);
        if (data === null) return S.InvalidMemoryAccess;
        return host().setBuffer(type, start >>> 0, length >>> 0, data);
      },

      // ---- http callouts (2.13)
      proxy_http_call(cPtr: number, cLen: number, hPtr: number, hLen: number, bPtr: number, bLen: number, tPtr: number, tLen: number, timeout: number, tokenPtr: number) {
        const cluster = mem().readStr(cPtr, cLen);
        const hdr = mem().read(hPtr, hLen);
        const body = mem().read(bPtr, bLen);
        const trl = mem().read(tPtr, tLen);
        if (cluster === null || hdr === null || body === null || trl === null) return S.InvalidMemoryAccess;
        if ((timeout | 0) < 0) return S.BadArgument;
        const call = host().httpCall(cluster, decodePairs(hdr), body, decodePairs(trl), timeout >>> 0);
        if ("status" in call) return call.status;
        if (!mem().writeU32(tokenPtr, call.token)) return S.InvalidMemoryAccess;
        call.send();
        return S.Ok;
      },
      proxy_grpc_call() { return host().fixedStatus("proxy_grpc_call"); },
      proxy_grpc_stream() { return host().fixedStatus("proxy_grpc_stream"); },
      proxy_grpc_send() { return host().fixedStatus("proxy_grpc_send"); },
      proxy_grpc_close() { return host().fixedStatus("proxy_grpc_close"); },
      proxy_grpc_cancel() { return host().fixedStatus("proxy_grpc_cancel"); },

      // ---- metrics (2.15)
      proxy_define_metric(type: number, nPtr: number, nLen: number, idPtr: number) {
        if (type > 2) return S.BadArgument;
        const name = mem().readStr(nPtr, nLen);
        if (name === null) return S.InvalidMemoryAccess;
        return mem().writeU32(idPtr, host().defineMetric(type, name)) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_increment_metric(id: number, offset: bigint) {
        return host().incrementMetric(id >>> 0, offset);
      },
      proxy_record_metric(id: number, value: bigint) {
        return host().recordMetric(id >>> 0, BigInt.asUintN(64, value));
      },
      proxy_get_metric(id: number, outPtr: number) {
        const r = host().getMetric(id >>> 0);
        if ("status" in r) return r.status;
        return mem().writeU64(outPtr, r.value) ? S.Ok : S.InvalidMemoryAccess;
      },

      // ---- system (2.16, 2.17)
      proxy_set_effective_context(id: number) {
        if (!host().contextExists(id >>> 0)) return S.BadArgument;
        vm.effective = id >>> 0;
        return S.Ok;
      },
      proxy_done() { return S.NotFound; },
      proxy_call_foreign_function(nPtr: number, nLen: number, aPtr: number, aLen: number, rPtrPtr: number, rLenPtr: number) {
        const name = mem().readStr(nPtr, nLen);
        const args = mem().read(aPtr, aLen);
        if (name === null || args === null) return S.InvalidMemoryAccess;
        const r = host().callForeignFunction(name, args);
        if ("status" in r) return r.status;
        return mem().copyOut(r.value, rPtrPtr, rLenPtr);
      },
      pthread_equal(a: number, b: number) { return a === b ? 1 : 0; },
      emscripten_notify_memory_growth() {},
      envoy_resolve_dns() { return host().fixedStatus("envoy_resolve_dns"); },

      // ---- WASI (2.18): errno results
      "wasi.fd_write"(fd: number, iovs: number, iovsLen: number, nwritten: number) {
        if (fd !== 1 && fd !== 2) return 8;
        const chunks: Buffer[] = [];
        const dv = new DataView(vm.memory.buffer);
        for (let i = 0; i < iovsLen; i++) {
          const p = dv.getUint32(iovs + i * 8, true);
          const l = dv.getUint32(iovs + i * 8 + 4, true);
          const b = mem().read(p, l);
          if (b === null) return 21;
          chunks.push(b);
        }
        const all = Buffer.concat(chunks);
        mem().writeU32(nwritten, all.length);
        host().consoleWrite(fd, all.toString("utf8"));
        return 0;
      },
      "wasi.fd_read"() { return 52; },
      "wasi.fd_seek"() { return 0; },
      "wasi.fd_close"() { return 0; },
      "wasi.fd_fdstat_get"(fd: number, ptr: number) {
        if (fd !== 1 && fd !== 2) return 8;
        if (!mem().inBounds(ptr, 24)) return 21;
        mem().u8().fill(0, ptr, ptr + 24);
        mem().writeU64(ptr + 8, 64n); // FD_WRITE right
        return 0;
      },
      "wasi.fd_fdstat_set_flags"() { return 0; },
      "wasi.environ_sizes_get"(countPtr: number, sizePtr: number) {
        const env = host().environment();
        mem().writeU32(countPtr, env.length);
        mem().writeU32(sizePtr, env.reduce((n, e) => n + e.length + 1, 0));
        return 0;
      },
      "wasi.environ_get"(ptrs: number, buf: number) {
        let off = buf;
        host().environment().forEach((e, i) => {
          mem().writeU32(ptrs + i * 4, off);
          mem().u8().set(e, off);
          mem().u8()[off + e.length] = 0;
          off += e.length + 1;
        });
        return 0;
      },
      "wasi.args_sizes_get"(countPtr: number, sizePtr: number) {
        mem().writeU32(countPtr, 0);
        mem().writeU32(sizePtr, 0);
        return 0;
      },
      "wasi.args_get"() { return 0; },
      "wasi.clock_time_get"(clock: number, _precision: bigint, out: number) {
        const t = host().wasiClock(clock);
        if (t === undefined) return 58;
        return mem().writeU64(out, t) ? 0 : 21;
      },
      "wasi.random_get"(ptr: number, len: number) {
        if (len > 65536) return 28;
        if (!mem().inBounds(ptr, len)) return 21;
        randomFillSync(mem().u8(), ptr, len);
        return 0;
      },
      "wasi.proc_exit"(code: number) {
        host().procExit(code);
      },
      "wasi.path_open"() { return 44; },
      "wasi.fd_prestat_get"() { return 8; },
      "wasi.fd_prestat_dir_name"() { return 8; },
      "wasi.sched_yield"() { return 0; },
      "wasi.poll_oneoff"() { return 52; },
    };
  }
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
