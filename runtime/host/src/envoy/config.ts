// A wasm plugin's configuration, as Envoy's PluginConfig and VmConfig give it.

export type FailurePolicy = "UNSPECIFIED" | "FAIL_RELOAD" | "FAIL_CLOSED" | "FAIL_OPEN";

export interface PluginConfig {
  /** PluginConfig.name: log prefix, plugin_name property. */
  name: string;
  /** PluginConfig.root_id: selects the root context the module registered. */
  rootId?: string;
  /** VmConfig.vm_id: shared data and queue namespace. */
  vmId?: string;
  /** The module: bytes or a file path. */
  wasm: Uint8Array | string;
  /** PluginConfig.configuration, as the StringValue's text. */
  configuration?: string;
  /** VmConfig.configuration text. */
  vmConfiguration?: string;
  /** PluginConfig.failure_policy (Envoy 1.33+). */
  failurePolicy?: FailurePolicy;
  /** Legacy PluginConfig.fail_open. */
  failOpen?: boolean;
  /** reload_config.backoff base interval (default 1000 ms). */
  reloadBackoffMs?: number;
  /** VmConfig.environment_variables.key_values. */
  env?: Record<string, string>;
  /** Listener direction reported by xds.listener_direction. */
  direction?: "UNSPECIFIED" | "INBOUND" | "OUTBOUND";
}
