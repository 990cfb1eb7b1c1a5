// The emulated Envoy: the process (process.ts) with its plugins and the traffic through them,
// ticks driven by the virtual clock (advance) or by real timers (runRealTime).
import { Plugin } from "./plugin.js";
import type { PluginConfig } from "./config.js";
import { EnvoyOptions, Process } from "./process.js";
import { HttpStream, RequestSpec, StreamResult } from "./stream.js";

export class Envoy extends Process {
  readonly plugins: Plugin[] = [];

  constructor(opts: EnvoyOptions = {}) {
    super(opts);
  }

  /** In real-time mode, fires due ticks from a timer until the returned function is called. */
  runRealTime(periodMs = 10): () => void {
    if (!this.realTime) throw new Error("runRealTime needs an Envoy created with clock: \"real\"");
    const timer = setInterval(() => {
      const now = Date.now();
      for (const p of this.plugins) {
        for (const vm of p.liveVms()) {
          const r = vm.root;
          if (r.tickPeriodMs > 0 && r.nextTickAt <= now) {
            r.nextTickAt = now + r.tickPeriodMs;
            vm.tick();
          }
        }
      }
    }, periodMs);
    timer.unref?.();
    return () => clearInterval(timer);
  }

  /**
   * Moves the virtual clock forward, running every due event in time order: ticks (each worker
   * VM's root has its own timer, first tick one period after it was set, re-armed after each
   * tick), callbacks scheduled with `at`, and `sleep`ers (e.g. an upstream taking 80 ms).
   */
  async advance(ms: number): Promise<void> {
    const target = this.clockMs + ms;
    for (;;) {
      let next: { at: number; run: () => void } | undefined;
      for (const p of this.plugins) {
        for (const vm of p.liveVms()) {
          const r = vm.root;
          if (r.tickPeriodMs > 0 && r.nextTickAt <= target && (!next || r.nextTickAt < next.at)) {
            const at = r.nextTickAt;
            next = { at, run: () => { r.nextTickAt = at + r.tickPeriodMs; vm.tick(); } };
          }
        }
      }
      const timer = this.timers.peek();
      if (timer && timer.at <= target && (!next || timer.at < next.at)) {
        this.timers.pop();
        next = timer;
      }
      if (!next) break;
      this.clockMs = Math.max(this.clockMs, next.at);
      next.run();
      await this.settle();
    }
    this.clockMs = target;
    await this.settle();
  }

  // ------------------------------------------------------------ plugins

  /** Loads a plugin: base VM, canary, one VM per worker. Throws PluginLoadError when Envoy would reject it. */
  addPlugin(config: PluginConfig): Plugin {
    const plugin = new Plugin(this, config);
    this.plugins.push(plugin);
    return plugin;
  }

  /** Replaces or removes a plugin: its worker roots get on_done / on_delete. */
  removePlugin(plugin: Plugin): void {
    const i = this.plugins.indexOf(plugin);
    if (i >= 0) this.plugins.splice(i, 1);
    for (const vm of plugin.liveVms()) vm.shutdown();
  }

  // ------------------------------------------------------------ traffic

  /** Sends one request through `spec.filters` (default: every plugin, in order) to the upstream. */
  request(spec: RequestSpec): Promise<StreamResult> {
    const stream = new HttpStream(this, this.plugins, spec);
    const p = stream.run();
    this.track(p);
    return p;
  }

  /** Linear memory pages per worker VM of a plugin. */
  memoryPages(plugin: Plugin): number[] {
    return plugin.workerVms.map((vm) => (vm ? vm.memoryPages : 0));
  }
}
