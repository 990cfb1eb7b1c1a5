// A configured wasm plugin: the link check (vm/link.ts), the canary and one VM per worker
// (sections 1.3-1.5), and what happens after a trap (1.9).
import { readFileSync } from "node:fs";
import type { AbiVersion } from "../abi/abi.js";
import { ModuleInfo, readModuleInfo } from "../abi/wasm-binary.js";
import { PluginLoadError, checkModule } from "../vm/link.js";
import type { PluginConfig, FailurePolicy } from "./config.js";
import { EnvoyVm, VmOwner } from "./envoy-vm.js";
import type { Process } from "./process.js";

export { PluginLoadError, checkModule };
export type { PluginConfig, FailurePolicy };

export class Plugin implements VmOwner {
  readonly module: WebAssembly.Module;
  readonly info: ModuleInfo;
  readonly abi: AbiVersion;
  readonly configurationBytes: Buffer;
  readonly workerVms: Array<EnvoyVm | null>;
  private readonly lastLoad: number[];
  /** Traps seen, per worker (canary excluded). */
  readonly traps: number[];
  reloads = 0;

  constructor(readonly envoy: Process, readonly config: PluginConfig) {
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
    new EnvoyVm(this, "base");
    // Canary: a clone that must start and configure, then is discarded without on_done.
    const canary = new EnvoyVm(this, "canary");
    if (!canary.startRoot()) {
      throw new PluginLoadError(`Unable to create Wasm plugin ${config.name}: ${canary.failed ? `trap: ${canary.failMessage}` : "on_vm_start or on_configure returned false"}`);
    }
    this.workerVms = [];
    this.lastLoad = [];
    this.traps = [];
    for (let w = 0; w < envoy.workers; w++) {
      const vm = new EnvoyVm(this, w);
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

  onTrap(vm: EnvoyVm): void {
    if (typeof vm.role === "number") this.traps[vm.role]++;
  }

  /**
   * The VM a new stream on `worker` uses, decided when the stream's filter is created:
   * a live VM, "bypass" (fail open: filter not added), or "fail" (503 wasm_fail_stream).
   */
  vmForNewStream(worker: number): EnvoyVm | "bypass" | "fail" {
    const vm = this.workerVms[worker];
    if (vm && !vm.failed) return vm;
    const policy = this.policy;
    if (policy === "LEGACY_FAIL_OPEN" || policy === "FAIL_OPEN") return "bypass";
    if (policy === "FAIL_RELOAD") {
      const backoff = this.config.reloadBackoffMs ?? 1000;
      if (this.envoy.nowMs() - this.lastLoad[worker] >= backoff) {
        this.lastLoad[worker] = this.envoy.nowMs();
        try {
          const fresh = new EnvoyVm(this, worker);
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
  liveVms(): EnvoyVm[] {
    return this.workerVms.filter((v): v is EnvoyVm => v !== null && !v.failed);
  }
}
