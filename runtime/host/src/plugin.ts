// A configured wasm plugin: link checks (section 1.1-1.2), the canary and one VM per
// worker (1.3-1.5), and what happens after a trap (1.9).
import { readFileSync } from "node:fs";
import { ABI_EXPORTS, AbiVersion, CALLBACK_SIGNATURES, providedImports, sameSignature } from "./abi.js";
import type { Envoy } from "./envoy.js";
import { ModuleInfo, readModuleInfo, signature } from "./wasm-binary.js";
import { WasmVm } from "./vm.js";

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

export class PluginLoadError extends Error {}

/** Checks a module the way Envoy links it; returns the ABI version or throws with Envoy's reason. */
export function checkModule(info: ModuleInfo, minor: number): AbiVersion {
  const markers = info.exports.filter((e) => e.name in ABI_EXPORTS);
  if (markers.length !== 1) {
    throw new PluginLoadError(markers.length === 0
      ? "Missing or unknown Proxy-Wasm ABI version"
      : `More than one Proxy-Wasm ABI version exported: ${markers.map((m) => m.name).join(", ")}`);
  }
  const abi = ABI_EXPORTS[markers[0].name];
  if (abi === "0.1.0") throw new PluginLoadError("Proxy-Wasm ABI 0.1.0 is not emulated by this host (Envoy supports it; the suite targets 0.2.x)");
  const provided = providedImports(abi, minor);
  for (const imp of info.imports) {
    const full = `${imp.module}.${imp.name}`;
    if (imp.kind !== "function") throw new PluginLoadError(`Failed to load Wasm module due to a missing import: ${full} (${imp.kind} imports are not provided)`);
    const want = provided.get(full);
    if (!want) throw new PluginLoadError(`Failed to load Wasm module due to a missing import: ${full}`);
    if (!sameSignature(imp.type, want)) {
      throw new PluginLoadError(`Failed to load Wasm module due to an import type mismatch: ${full}, want: ${signature(want)}, but host exports: ${signature(imp.type)}`);
    }
  }
  for (const exp of info.exports) {
    const want = CALLBACK_SIGNATURES[exp.name];
    if (exp.kind === "function" && want && !sameSignature(exp.type, want)) {
      throw new PluginLoadError(`Bad function signature for: ${exp.name}`);
    }
  }
  if (!info.exports.some((e) => e.name === "memory" && e.kind === "memory")) {
    throw new PluginLoadError("Wasm module is missing its memory export");
  }
  if (!info.exports.some((e) => (e.name === "malloc" || e.name === "proxy_on_memory_allocate") && e.kind === "function")) {
    throw new PluginLoadError("Wasm module is missing malloc function.");
  }
  return abi;
}

export class Plugin {
  readonly module: WebAssembly.Module;
  readonly info: ModuleInfo;
  readonly abi: AbiVersion;
  readonly configurationBytes: Buffer;
  readonly workerVms: Array<WasmVm | null>;
  private readonly lastLoad: number[];
  /** Traps seen, per worker (canary excluded). */
  readonly traps: number[];
  reloads = 0;

  constructor(readonly envoy: Envoy, readonly config: PluginConfig) {
    if (config.failOpen !== undefined && config.failurePolicy !== undefined) {
      throw new PluginLoadError("only one of fail_open or failure_policy can be set");
    }
    if (config.failurePolicy !== undefined && envoy.minor < 33) {
      throw new PluginLoadError(`failure_policy is not a field of PluginConfig in Envoy 1.${envoy.minor} (added in 1.33)`);
    }
    const bytes = typeof config.wasm === "string" ? readFileSync(config.wasm) : config.wasm;
    this.info = readModuleInfo(bytes);
    this.abi = checkModule(this.info, envoy.minor);
    this.module = new WebAssembly.Module(new Uint8Array(bytes));
    this.configurationBytes = Buffer.from(config.configuration ?? "", "utf8");
    // Base VM: loaded and initialised, no root context (section 1.3).
    new WasmVm(this, "base");
    // Canary: a clone that must start and configure, then is discarded without on_done.
    const canary = new WasmVm(this, "canary");
    if (!canary.startRoot()) {
      throw new PluginLoadError(`Unable to create Wasm plugin ${config.name}: ${canary.failed ? `trap: ${canary.failMessage}` : "on_vm_start or on_configure returned false"}`);
    }
    this.workerVms = [];
    this.lastLoad = [];
    this.traps = [];
    for (let w = 0; w < envoy.workers; w++) {
      const vm = new WasmVm(this, w);
      if (!vm.startRoot()) throw new PluginLoadError(`Unable to create Wasm plugin ${config.name} on worker ${w}`);
      this.workerVms.push(vm);
      this.lastLoad.push(envoy.nowMs());
      this.traps.push(0);
    }
  }

  get vmId(): string {
    return this.config.vmId ?? "";
  }

  get policy(): FailurePolicy | "LEGACY_FAIL_OPEN" | "LEGACY_FAIL_CLOSED" {
    if (this.config.failurePolicy !== undefined) return this.config.failurePolicy;
    return this.config.failOpen ? "LEGACY_FAIL_OPEN" : "LEGACY_FAIL_CLOSED";
  }

  /** Whether the stream that trapped continues without the filter (legacy fail_open only, section 1.9). */
  get trappingStreamContinues(): boolean {
    return this.config.failOpen === true;
  }

  onTrap(vm: WasmVm): void {
    if (typeof vm.role === "number") this.traps[vm.role]++;
  }

  /**
   * The VM a new stream on `worker` uses, decided when the stream's filter is created:
   * a live VM, "bypass" (fail open: filter not added), or "fail" (503 wasm_fail_stream).
   */
  vmForNewStream(worker: number): WasmVm | "bypass" | "fail" {
    const vm = this.workerVms[worker];
    if (vm && !vm.failed) return vm;
    const policy = this.policy;
    if (policy === "LEGACY_FAIL_OPEN" || policy === "FAIL_OPEN") return "bypass";
    if (policy === "FAIL_RELOAD") {
      const backoff = this.config.reloadBackoffMs ?? 1000;
      if (this.envoy.nowMs() - this.lastLoad[worker] >= backoff) {
        this.lastLoad[worker] = this.envoy.nowMs();
        try {
          const fresh = new WasmVm(this, worker);
          if (fresh.startRoot()) {
            this.workerVms[worker] = fresh;
            this.reloads++;
            this.envoy.metrics.bump(`wasm.${this.config.name}.vm_reload_success`);
            return fresh;
          }
        } catch {
          // fall through to fail closed
        }
        this.envoy.metrics.bump(`wasm.${this.config.name}.vm_reload_failure`);
      }
      return "fail";
    }
    return "fail";
  }

  /** Every live VM (workers only). */
  liveVms(): WasmVm[] {
    return this.workerVms.filter((v): v is WasmVm => v !== null && !v.failed);
  }
}
