export { Envoy } from "./envoy.js";
export type { EnvoyOptions, LogEntry, ClusterHandler, CallResponse } from "./envoy.js";
export { Plugin, PluginLoadError, checkModule } from "./plugin.js";
export type { PluginConfig, FailurePolicy } from "./plugin.js";
export type { RequestSpec, StreamResult, Upstream, UpstreamRequest, UpstreamResponse, ConnectionInfo } from "./stream.js";
export { HeaderMap, encodePairs, decodePairs, inlineSets } from "./headers.js";
export type { HeaderList } from "./headers.js";
export { readModuleInfo } from "./wasm-binary.js";
export { providedImports, Status } from "./abi.js";
