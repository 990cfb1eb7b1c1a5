// The public API: the emulated Envoy and what its callers name. Layers, each importing only
// those before it: abi/ (the wasm binary and the ABI's tables and wire formats), vm/ (one
// instance, its memory, the link check, every hostcall decoded into a VmHost call), envoy/
// (the Envoy model implementing VmHost: process, plugins, VMs, streams, header maps,
// properties), then this file.
export { Envoy } from "./envoy/envoy.js";
export type { EnvoyOptions, LogEntry, ClusterHandler, CallResponse } from "./envoy/process.js";
export { Plugin } from "./envoy/plugin.js";
export { PluginLoadError, checkModule } from "./vm/link.js";
export type { PluginConfig, FailurePolicy } from "./envoy/config.js";
export type { RequestSpec, StreamResult, Upstream, UpstreamRequest, UpstreamResponse } from "./envoy/stream.js";
export type { ConnectionInfo } from "./envoy/contexts.js";
export { HeaderMap, inlineSets } from "./envoy/headers.js";
export { encodePairs, decodePairs } from "./abi/pairs.js";
export type { HeaderList } from "./abi/pairs.js";
export { readModuleInfo } from "./abi/wasm-binary.js";
export { providedImports, Status } from "./abi/abi.js";
