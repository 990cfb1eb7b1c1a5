// Non-throwing wrappers over every hostcall the filters use. Each returns a status,
// null or a default instead of throwing: a trap would kill the worker's VM (and every
// later request on it would get the plugin's failure policy).
import * as abi from "@solo-io/proxy-runtime/assembly/imports";
import { free } from "@solo-io/proxy-runtime/assembly/malloc";
import { Header, decodePairs, encodePairs } from "./pairs";
import { Status, LogLevel, BufferType } from "./status";

// Out-parameters for hostcalls: static scratch memory, never allocated per call.
const OUT = memory.data(24, 8);
const OUT_PTR: usize = OUT;
const OUT_LEN: usize = OUT + 4;
const OUT_CAS: usize = OUT + 8;
const OUT_U64: usize = OUT + 16;

/** Takes ownership of a buffer the host wrote through malloc and decodes it as UTF-8. */
function takeString(): string {
  const ptr = <usize>load<u32>(OUT_PTR);
  const len = <usize>load<u32>(OUT_LEN);
  if (len == 0 || ptr == 0) return "";
  const s = String.UTF8.decodeUnsafe(ptr, len);
  free(ptr);
  return s;
}

function takeBytes(): ArrayBuffer {
  const ptr = <usize>load<u32>(OUT_PTR);
  const len = <usize>load<u32>(OUT_LEN);
  if (len == 0 || ptr == 0) return new ArrayBuffer(0);
  const buf = changetype<ArrayBuffer>(ptr);
  free(ptr);
  // malloc allocated exactly `len` bytes, so the buffer is the value itself.
  return buf;
}

function clearOut(): void {
  store<u64>(OUT, 0);
}

// ---------------------------------------------------------------- logging

let cachedLevel: i32 = LogLevel.Info;

/** Re-reads Envoy's `wasm` logger level (ABI 0.2.1). Call at configure time and on tick. */
export function refreshLogLevel(): void {
  if (abi.proxy_get_log_level(OUT_LEN) == Status.Ok) cachedLevel = <i32>load<u32>(OUT_LEN);
}

/** Guards message construction: `if (logEnabled(LogLevel.Debug)) logDebug("x=" + x)`. */
// @ts-ignore: decorator
@inline export function logEnabled(level: i32): bool {
  return level >= cachedLevel;
}

export function log(level: i32, message: string): void {
  if (level < cachedLevel) return;
  const buf = String.UTF8.encode(message);
  abi.proxy_log(<usize>level, changetype<usize>(buf), buf.byteLength);
}
export function logDebug(message: string): void { log(LogLevel.Debug, message); }
export function logInfo(message: string): void { log(LogLevel.Info, message); }
export function logWarn(message: string): void { log(LogLevel.Warn, message); }
export function logError(message: string): void { log(LogLevel.Error, message); }
export function logCritical(message: string): void { log(LogLevel.Critical, message); }

// ---------------------------------------------------------------- headers

export function getHeader(map: i32, name: string): string | null {
  const key = String.UTF8.encode(name);
  clearOut();
  if (abi.proxy_get_header_map_value(map, changetype<usize>(key), key.byteLength, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  return takeString();
}

/** Every entry of a map, duplicates as separate entries, pseudo-headers first. Null if unavailable. */
export function getHeaders(map: i32): Array<Header> | null {
  clearOut();
  if (abi.proxy_get_header_map_pairs(map, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  const ptr = <usize>load<u32>(OUT_PTR);
  const len = <usize>load<u32>(OUT_LEN);
  if (len == 0) return new Array<Header>();
  const pairs = decodePairs(ptr, len);
  free(ptr);
  return pairs;
}

/**
 * The raw pairs buffer of a map (one hostcall, nothing decoded), for PairsView.parse.
 * Null if unavailable; an empty buffer for an empty map.
 */
export function getHeadersRaw(map: i32): ArrayBuffer | null {
  clearOut();
  if (abi.proxy_get_header_map_pairs(map, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  return takeBytes();
}

export function setHeaders(map: i32, headers: Array<Header>): u32 {
  const buf = encodePairs(headers);
  return abi.proxy_set_header_map_pairs(map, changetype<usize>(buf), buf.byteLength);
}

/** Replaces every entry named `name` with one entry (adds it when absent). */
export function setHeader(map: i32, name: string, value: string): u32 {
  const k = String.UTF8.encode(name);
  const v = String.UTF8.encode(value);
  return abi.proxy_replace_header_map_value(map, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
}

export function addHeader(map: i32, name: string, value: string): u32 {
  const k = String.UTF8.encode(name);
  const v = String.UTF8.encode(value);
  return abi.proxy_add_header_map_value(map, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
}

export function removeHeader(map: i32, name: string): u32 {
  const k = String.UTF8.encode(name);
  return abi.proxy_remove_header_map_value(map, changetype<usize>(k), k.byteLength);
}

/** The map's byte size (sum of name and value lengths), or -1 if unavailable. */
export function headerMapBytes(map: i32): i64 {
  if (abi.proxy_get_header_map_size(map, OUT_LEN) != Status.Ok) return -1;
  return <i64>load<u32>(OUT_LEN);
}

// ---------------------------------------------------------------- properties

function propertyPath(path: Array<string>): ArrayBuffer {
  return String.UTF8.encode(path.join("\0"));
}

/** Raw bytes of a property, or null when Envoy has no such value in this context. */
export function getPropertyBytes(path: Array<string>): ArrayBuffer | null {
  const p = propertyPath(path);
  clearOut();
  if (abi.proxy_get_property(changetype<usize>(p), p.byteLength, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  return takeBytes();
}

export function getPropertyString(path: Array<string>): string | null {
  const p = propertyPath(path);
  clearOut();
  if (abi.proxy_get_property(changetype<usize>(p), p.byteLength, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  return takeString();
}

/** An int64/uint64 property (8 bytes little-endian); `fallback` when absent or not 8 bytes. */
export function getPropertyInt(path: Array<string>, fallback: i64): i64 {
  const bytes = getPropertyBytes(path);
  if (bytes === null || bytes.byteLength != 8) return fallback;
  return load<i64>(changetype<usize>(bytes));
}

export function setProperty(path: string, value: string): u32 {
  const p = String.UTF8.encode(path);
  const v = String.UTF8.encode(value);
  return abi.proxy_set_property(changetype<usize>(p), p.byteLength, changetype<usize>(v), v.byteLength);
}

// ---------------------------------------------------------------- buffers

/** Bytes of a buffer (body, configuration, call response), or null when it is absent here. */
export function getBuffer(type: i32, start: u32, length: u32): ArrayBuffer | null {
  clearOut();
  if (abi.proxy_get_buffer_bytes(type, start, length, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  return takeBytes();
}

export function getBufferString(type: i32, start: u32, length: u32): string | null {
  clearOut();
  if (abi.proxy_get_buffer_bytes(type, start, length, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  return takeString();
}

/** Replaces `length` bytes from `start` with `data` (start 0 and length = size replaces a body). */
export function setBuffer(type: i32, start: u32, length: u32, data: ArrayBuffer): u32 {
  return abi.proxy_set_buffer_bytes(type, start, length, changetype<usize>(data), data.byteLength);
}

export function pluginConfiguration(size: u32): string {
  const s = getBufferString(BufferType.PluginConfiguration, 0, size);
  return s === null ? "" : s;
}

// ---------------------------------------------------------------- shared data

export class SharedValue {
  constructor(public value: ArrayBuffer, public cas: u32) {}
}

/** The value and CAS stored under `key` (shared by every VM with the same vm_id), or null. */
export function getShared(key: string): SharedValue | null {
  const k = String.UTF8.encode(key);
  clearOut();
  store<u32>(OUT_CAS, 0);
  if (abi.proxy_get_shared_data(changetype<usize>(k), k.byteLength, OUT_PTR, OUT_LEN, OUT_CAS) != Status.Ok) return null;
  const cas = load<u32>(OUT_CAS);
  return new SharedValue(takeBytes(), cas);
}

/** Stores `value`; with cas != 0 only if nobody wrote since that CAS was read (else CasMismatch). */
export function setShared(key: string, value: ArrayBuffer, cas: u32): u32 {
  const k = String.UTF8.encode(key);
  return abi.proxy_set_shared_data(changetype<usize>(k), k.byteLength, changetype<usize>(value), value.byteLength, cas);
}

/** A read-modify-write step for casUpdate: returns the new value, or null to leave it unchanged. */
export abstract class SharedUpdate {
  abstract apply(current: ArrayBuffer | null): ArrayBuffer | null;
}

/**
 * Compare-and-swap loop over a shared-data key. Returns Ok when written (or when `update`
 * declined), CasMismatch when every attempt lost the race.
 * Envoy inserts an absent key whatever the CAS, so two first writers can both "win"; callers
 * that need a single winner create the key once and then always update with a CAS.
 */
export function casUpdate(key: string, update: SharedUpdate, attempts: i32 = 8): u32 {
  for (let i = 0; i < attempts; i++) {
    const current = getShared(key);
    const next = update.apply(current === null ? null : current.value);
    if (next === null) return Status.Ok;
    const rc = setShared(key, next, current === null ? 0 : current.cas);
    if (rc != Status.CasMismatch) return rc;
  }
  return Status.CasMismatch;
}

class Increment extends SharedUpdate {
  value: u64 = 0;
  apply(current: ArrayBuffer | null): ArrayBuffer | null {
    this.value = (current === null || current.byteLength != 8 ? 0 : load<u64>(changetype<usize>(current))) + 1;
    const out = new ArrayBuffer(8);
    store<u64>(changetype<usize>(out), this.value);
    return out;
  }
}

/**
 * Increments the 8-byte counter at `key` (absent counts as 0) with casUpdate and returns the
 * value this caller wrote: a number unique to each VM that asks, e.g. to name workers.
 */
export function nextSharedId(key: string): u64 {
  const inc = new Increment();
  casUpdate(key, inc);
  return inc.value;
}

/**
 * A lease in shared data: `key` holds "<holder> <expiry ms>". Taken with CAS when absent or
 * expired, renewed by its holder; true when `holder` holds it now, until nowMs + ttlMs.
 * One attempt: a lost race means another worker holds it.
 */
export function takeSharedLease(key: string, holder: u64, nowMs: i64, ttlMs: i64): bool {
  const cur = getShared(key);
  let cas: u32 = 0;
  if (cur !== null) {
    const text = String.UTF8.decode(cur.value);
    const sp = text.indexOf(" ");
    const current = sp > 0 ? U64.parseInt(text.substring(0, sp)) : 0;
    const expiry = sp > 0 ? F64.parseFloat(text.substring(sp + 1)) : 0;
    // Another holder's lease that has not expired stands, unless it ends later than a lease
    // taken now could: the wall clock stepped back, and the holder may be gone.
    if (current != holder && expiry > <f64>nowMs && expiry <= <f64>(nowMs + ttlMs)) return false;
    cas = cur.cas;
  }
  return setShared(key, String.UTF8.encode(holder.toString() + " " + (nowMs + ttlMs).toString()), cas) == Status.Ok;
}

// ---------------------------------------------------------------- queues

export function registerQueue(name: string): i64 {
  const n = String.UTF8.encode(name);
  if (abi.proxy_register_shared_queue(changetype<usize>(n), n.byteLength, OUT_LEN) != Status.Ok) return -1;
  return <i64>load<u32>(OUT_LEN);
}

export function resolveQueue(vmId: string, name: string): i64 {
  const v = String.UTF8.encode(vmId);
  const n = String.UTF8.encode(name);
  if (abi.proxy_resolve_shared_queue(changetype<usize>(v), v.byteLength, changetype<usize>(n), n.byteLength, OUT_LEN) != Status.Ok) return -1;
  return <i64>load<u32>(OUT_LEN);
}

export function enqueue(token: u32, data: ArrayBuffer): u32 {
  return abi.proxy_enqueue_shared_queue(token, changetype<usize>(data), data.byteLength);
}

/** The next message, or null when the queue is empty or unknown. */
export function dequeue(token: u32): ArrayBuffer | null {
  clearOut();
  if (abi.proxy_dequeue_shared_queue(token, OUT_PTR, OUT_LEN) != Status.Ok) return null;
  return takeBytes();
}

// ---------------------------------------------------------------- time

/** Wall clock, nanoseconds since the Unix epoch (0 if unavailable). */
export function nowNanos(): u64 {
  if (abi.proxy_get_current_time_nanoseconds(OUT_U64) != Status.Ok) return 0;
  return load<u64>(OUT_U64);
}

export function nowMillis(): i64 {
  return <i64>(nowNanos() / 1000000);
}

/** Sets this root context's tick period; 0 disables the timer. */
export function setTickPeriod(ms: u32): u32 {
  return abi.proxy_set_tick_period_milliseconds(ms);
}

// ---------------------------------------------------------------- stream control

export function continueRequest(): u32 { return abi.proxy_continue_stream(0); }
export function continueResponse(): u32 { return abi.proxy_continue_stream(1); }
export function closeRequest(): u32 { return abi.proxy_close_stream(0); }

/** No gRPC status on a local reply. */
export const NO_GRPC_STATUS: u32 = 0xffffffff;

/**
 * Asks Envoy to answer the stream itself. Envoy sends it after the current callback returns
 * and overrides that callback's return value with a stop status.
 */
export function sendLocalResponse(status: u32, details: string, body: string, headers: Array<Header>, grpcStatus: u32 = NO_GRPC_STATUS): u32 {
  const d = String.UTF8.encode(details);
  const b = String.UTF8.encode(body);
  const h = encodePairs(headers);
  return abi.proxy_send_local_response(status, changetype<usize>(d), d.byteLength, changetype<usize>(b), b.byteLength,
    changetype<usize>(h), h.byteLength, grpcStatus);
}

export function setEffectiveContext(contextId: u32): u32 {
  return abi.proxy_set_effective_context(contextId);
}

// ---------------------------------------------------------------- http callouts

/**
 * Starts an HTTP call to an Envoy cluster (a cluster name, not a URL). `headers` must hold
 * :method, :path and :authority. Returns the token (> 0) or -status on failure.
 */
export function httpCall(cluster: string, headers: Array<Header>, body: string, timeoutMs: u32): i64 {
  const c = String.UTF8.encode(cluster);
  const h = encodePairs(headers);
  const b = String.UTF8.encode(body);
  const t = encodePairs(new Array<Header>());
  const rc = abi.proxy_http_call(changetype<usize>(c), c.byteLength, changetype<usize>(h), h.byteLength,
    changetype<usize>(b), b.byteLength, changetype<usize>(t), t.byteLength, timeoutMs, OUT_LEN);
  if (rc != Status.Ok) return -(<i64>rc);
  return <i64>load<u32>(OUT_LEN);
}

/** Status code of the last HTTP call response, or 0 when the call failed (reset, no response). */
export function httpCallStatus(): u32 {
  const s = getHeader(6, ":status");
  if (s === null) return 0;
  const n = I32.parseInt(s, 10);
  return n >= 100 && n <= 999 ? <u32>n : 0;
}

export function httpCallBody(size: u32): string {
  const s = getBufferString(BufferType.HttpCallResponseBody, 0, size);
  return s === null ? "" : s;
}

// ---------------------------------------------------------------- metrics

/** A metric defined once (at configure time). A failed definition makes every update a no-op. */
export class Metric {
  id: u32 = 0;
  constructor(kind: i32, name: string) {
    const n = String.UTF8.encode(name);
    if (abi.proxy_define_metric(kind, changetype<usize>(n), n.byteLength, OUT_LEN) == Status.Ok) this.id = load<u32>(OUT_LEN);
  }
  /** Counters: delta must be > 0. Gauges: adds (or subtracts a negative delta). */
  increment(delta: i64 = 1): void {
    if (this.id != 0) abi.proxy_increment_metric(this.id, delta);
  }
  /** Counters add, gauges set, histograms record. */
  record(value: u64): void {
    if (this.id != 0) abi.proxy_record_metric(this.id, value);
  }
  /** Current value of a counter or gauge (0 for histograms or on failure). */
  get(): u64 {
    if (this.id == 0 || abi.proxy_get_metric(this.id, OUT_U64) != Status.Ok) return 0;
    return load<u64>(OUT_U64);
  }
}

export function counter(name: string): Metric { return new Metric(0, name); }
export function gauge(name: string): Metric { return new Metric(1, name); }
export function histogram(name: string): Metric { return new Metric(2, name); }

// ---------------------------------------------------------------- foreign functions

/** Envoy 1.33+ clears the route cache on request; for ABI 0.2.x any header change already does. */
export function clearRouteCache(): u32 {
  const n = String.UTF8.encode("clear_route_cache");
  clearOut();
  const rc = abi.proxy_call_foreign_function(changetype<usize>(n), n.byteLength, 0, 0, OUT_PTR, OUT_LEN);
  if (rc == Status.Ok && load<u32>(OUT_PTR) != 0) free(<usize>load<u32>(OUT_PTR));
  return rc;
}
