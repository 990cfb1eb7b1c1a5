// Base classes for the suite's filters, over the SDK's RootContext/Context.
// They keep the per-request path quiet (the SDK's defaults build a log string per call)
// and give configuration one shape: parse, validate, and on failure one critical line.
import { RootContext, Context } from "@solo-io/proxy-runtime/assembly";
import { httpCall, logCritical, pluginConfiguration, refreshLogLevel, setEffectiveContext } from "./hostcalls";
import { Header } from "./pairs";

/**
 * Called with the root that made the call and the stream it was made for (null for a call from
 * the root itself), which is then the effective context. A failed call has headers 0 and no
 * :status. (AssemblyScript has no closures: state travels through these two arguments.)
 */
export type CallCallback = (root: FilterRoot, origin: Context | null, headers: u32, bodySize: usize, trailers: u32) => void;

class PendingCall {
  constructor(public origin: Context | null, public cb: CallCallback) {}
}

export abstract class FilterRoot extends RootContext {
  /** Filter name used as the prefix of its critical configuration log line. */
  abstract get filterName(): string;

  /**
   * Applies a configuration. Returns "" when accepted, otherwise "<field path>: <reason>".
   * Must not keep any part of a rejected configuration: Envoy keeps the old one running.
   */
  abstract configure(text: string): string;

  onConfigure(configuration_size: u32): bool {
    refreshLogLevel();
    const error = this.configure(pluginConfiguration(configuration_size));
    if (error.length == 0) return true;
    logCritical(this.filterName + ": " + error);
    return false;
  }

  onTick(): void {
    refreshLogLevel();
    this.tick();
  }

  tick(): void {}

  private calls: Map<u32, PendingCall> = new Map<u32, PendingCall>();

  /**
   * Calls an Envoy cluster. Envoy answers on the root context; the callback then runs with the
   * originating stream (if any) as the effective context. Returns the token, or -status.
   */
  call(cluster: string, headers: Array<Header>, body: string, timeoutMs: u32, origin: Context | null, cb: CallCallback): i64 {
    const token = httpCall(cluster, headers, body, timeoutMs);
    if (token > 0) this.calls.set(<u32>token, new PendingCall(origin, cb));
    return token;
  }

  onHttpCallResponse(token: u32, headers: u32, body_size: u32, trailers: u32): void {
    if (!this.calls.has(token)) return;
    const pending = this.calls.get(token);
    this.calls.delete(token);
    const origin = pending.origin;
    if (origin !== null) setEffectiveContext(origin.context_id);
    pending.cb(this, origin, headers, body_size, trailers);
  }

  /** Calls still waiting for an answer. */
  get pendingCalls(): i32 { return this.calls.size; }

  onDone(): bool {
    this.calls.clear();
    return true;
  }

  onDelete(): void {}
}

export class FilterStream extends Context {
  constructor(context_id: u32, root: RootContext) {
    super(context_id, root);
  }
  onLog(): void {}
  onDone(): bool { return true; }
  onDelete(): void {}
}
