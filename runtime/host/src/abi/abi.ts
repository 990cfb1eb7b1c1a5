// Proxy-wasm ABI constants and what Envoy links, per ABI and Envoy version.
// Reference: shared/reference/envoy-wasm-host.md sections 1.1, 1.2, 2.1-2.3a.
import type { FuncType } from "./wasm-binary.js";

export const Status = {
  Ok: 0, NotFound: 1, BadArgument: 2, SerializationFailure: 3, ParseFailure: 4, BadExpression: 5,
  InvalidMemoryAccess: 6, Empty: 7, CasMismatch: 8, ResultMismatch: 9, InternalFailure: 10,
  BrokenConnection: 11, Unimplemented: 12,
} as const;

export const MapType = {
  RequestHeaders: 0, RequestTrailers: 1, ResponseHeaders: 2, ResponseTrailers: 3,
  GrpcReceiveInitialMetadata: 4, GrpcReceiveTrailingMetadata: 5, HttpCallResponseHeaders: 6, HttpCallResponseTrailers: 7,
} as const;

export const BufferType = {
  HttpRequestBody: 0, HttpResponseBody: 1, NetworkDownstreamData: 2, NetworkUpstreamData: 3,
  HttpCallResponseBody: 4, GrpcReceiveBuffer: 5, VmConfiguration: 6, PluginConfiguration: 7, CallData: 8,
} as const;

export const HeadersStatus = { Continue: 0, StopIteration: 1, ContinueAndEndStream: 2, StopAllIterationAndBuffer: 3, StopAllIterationAndWatermark: 4 } as const;
export const DataStatus = { Continue: 0, StopIterationAndBuffer: 1, StopIterationAndWatermark: 2, StopIterationNoBuffer: 3 } as const;

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical", "off"] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export type AbiVersion = "0.1.0" | "0.2.0" | "0.2.1";
export const ABI_EXPORTS: Record<string, AbiVersion> = {
  proxy_abi_version_0_1_0: "0.1.0",
  proxy_abi_version_0_2_0: "0.2.0",
  proxy_abi_version_0_2_1: "0.2.1",
};

/** Envoy minor version, e.g. 33 for 1.33. The host emulates 1.28-1.36. */
export type EnvoyMinor = number;

const sig = (params: string, results = "i32"): FuncType => ({
  params: params.split("").map((c) => (c === "J" ? "i64" : "i32")),
  results: results ? [results as "i32"] : [],
});

// Module `env`, every ABI (section 1.2, signatures 2.3a). 'I' = i32, 'J' = i64.
const ENV_COMMON: Record<string, FuncType> = {
  proxy_log: sig("III"),
  proxy_get_status: sig("III"),
  proxy_set_property: sig("IIII"),
  proxy_get_property: sig("IIII"),
  proxy_send_local_response: sig("IIIIIIII"),
  proxy_get_shared_data: sig("IIIII"),
  proxy_set_shared_data: sig("IIIII"),
  proxy_register_shared_queue: sig("III"),
  proxy_resolve_shared_queue: sig("IIIII"),
  proxy_dequeue_shared_queue: sig("III"),
  proxy_enqueue_shared_queue: sig("III"),
  proxy_get_header_map_value: sig("IIIII"),
  proxy_add_header_map_value: sig("IIIII"),
  proxy_replace_header_map_value: sig("IIIII"),
  proxy_remove_header_map_value: sig("III"),
  proxy_get_header_map_pairs: sig("III"),
  proxy_set_header_map_pairs: sig("III"),
  proxy_get_header_map_size: sig("II"),
  proxy_get_buffer_status: sig("III"),
  proxy_get_buffer_bytes: sig("IIIII"),
  proxy_set_buffer_bytes: sig("IIIII"),
  proxy_http_call: sig("IIIIIIIIII"),
  proxy_grpc_call: sig("IIIIIIIIIIII"),
  proxy_grpc_stream: sig("IIIIIIIII"),
  proxy_grpc_close: sig("I"),
  proxy_grpc_cancel: sig("I"),
  proxy_grpc_send: sig("IIII"),
  proxy_set_tick_period_milliseconds: sig("I"),
  proxy_get_current_time_nanoseconds: sig("I"),
  proxy_define_metric: sig("IIII"),
  proxy_increment_metric: sig("IJ"),
  proxy_record_metric: sig("IJ"),
  proxy_get_metric: sig("II"),
  proxy_set_effective_context: sig("I"),
  proxy_done: sig(""),
  proxy_call_foreign_function: sig("IIIIII"),
  pthread_equal: sig("II"),
  emscripten_notify_memory_growth: sig("I", ""),
  envoy_resolve_dns: sig("III"),
};

const ENV_BY_ABI: Record<AbiVersion, Record<string, FuncType>> = {
  "0.1.0": {
    proxy_get_configuration: sig("II"),
    proxy_continue_request: sig(""),
    proxy_continue_response: sig(""),
    proxy_clear_route_cache: sig(""),
  },
  "0.2.0": { proxy_continue_stream: sig("I"), proxy_close_stream: sig("I") },
  "0.2.1": { proxy_continue_stream: sig("I"), proxy_close_stream: sig("I"), proxy_get_log_level: sig("I") },
};

const WASI_UP_TO_1_32: Record<string, FuncType> = {
  fd_write: sig("IIII"),
  fd_read: sig("IIII"),
  fd_seek: sig("IJII"),
  fd_close: sig("I"),
  fd_fdstat_get: sig("II"),
  environ_get: sig("II"),
  environ_sizes_get: sig("II"),
  args_get: sig("II"),
  args_sizes_get: sig("II"),
  clock_time_get: sig("IJI"),
  random_get: sig("II"),
  proc_exit: sig("I", ""),
  path_open: sig("IIIIIJJII"),
  fd_prestat_get: sig("II"),
  fd_prestat_dir_name: sig("III"),
};
const WASI_FROM_1_33: Record<string, FuncType> = {
  fd_fdstat_set_flags: sig("II"),
  sched_yield: sig(""),
  poll_oneoff: sig("IIII"),
};

/** Every import Envoy 1.<minor> provides to a module of ABI `abi`: "module.name" -> signature. */
export function providedImports(abi: AbiVersion, minor: EnvoyMinor): Map<string, FuncType> {
  const out = new Map<string, FuncType>();
  for (const [name, t] of Object.entries({ ...ENV_COMMON, ...ENV_BY_ABI[abi] })) out.set(`env.${name}`, t);
  const wasi = minor >= 33 ? { ...WASI_UP_TO_1_32, ...WASI_FROM_1_33 } : WASI_UP_TO_1_32;
  for (const mod of ["wasi_unstable", "wasi_snapshot_preview1"]) {
    for (const [name, t] of Object.entries(wasi)) out.set(`${mod}.${name}`, t);
  }
  return out;
}

// Exported callbacks Envoy looks up for 0.2.x modules, with the signature it checks (section 1.1, 2.3a).
const V = sig;
export const CALLBACK_SIGNATURES: Record<string, FuncType> = {
  proxy_on_context_create: V("II", ""),
  proxy_on_vm_start: V("II"),
  proxy_validate_configuration: V("II"),
  proxy_on_configure: V("II"),
  proxy_on_tick: V("I", ""),
  proxy_on_new_connection: V("I"),
  proxy_on_downstream_data: V("III"),
  proxy_on_upstream_data: V("III"),
  proxy_on_downstream_connection_close: V("II", ""),
  proxy_on_upstream_connection_close: V("II", ""),
  proxy_on_request_headers: V("III"),
  proxy_on_request_body: V("III"),
  proxy_on_request_trailers: V("II"),
  proxy_on_request_metadata: V("II"),
  proxy_on_response_headers: V("III"),
  proxy_on_response_body: V("III"),
  proxy_on_response_trailers: V("II"),
  proxy_on_response_metadata: V("II"),
  proxy_on_http_call_response: V("IIIII", ""),
  proxy_on_grpc_receive: V("III", ""),
  proxy_on_grpc_close: V("III", ""),
  proxy_on_grpc_receive_initial_metadata: V("III", ""),
  proxy_on_grpc_receive_trailing_metadata: V("III", ""),
  proxy_on_queue_ready: V("II", ""),
  proxy_on_foreign_function: V("III", ""),
  proxy_on_done: V("I"),
  proxy_on_log: V("I", ""),
  proxy_on_delete: V("I", ""),
  malloc: V("I"),
  proxy_on_memory_allocate: V("I"),
};

// Hostcalls allowed while the VM runs _initialize/_start/main (section 1.8).
export function startupAllowed(minor: EnvoyMinor): Set<string> {
  const names = ["fd_write", "args_sizes_get", "args_get", "environ_sizes_get", "environ_get", "fd_prestat_get",
    "fd_prestat_dir_name", "clock_time_get", "random_get"];
  if (minor >= 33) names.push("fd_fdstat_get", "fd_fdstat_set_flags");
  const out = new Set<string>(["env.proxy_log"]);
  for (const n of names) { out.add(`wasi_unstable.${n}`); out.add(`wasi_snapshot_preview1.${n}`); }
  return out;
}

// Hostcalls allowed during a host-initiated malloc (section 1.8).
export const MALLOC_ALLOWED = new Set<string>([
  "env.proxy_log", "wasi_unstable.fd_write", "wasi_snapshot_preview1.fd_write",
  "wasi_unstable.clock_time_get", "wasi_snapshot_preview1.clock_time_get",
]);

export function sameSignature(a: FuncType | undefined, b: FuncType): boolean {
  return !!a && a.params.join() === b.params.join() && a.results.join() === b.results.join();
}
