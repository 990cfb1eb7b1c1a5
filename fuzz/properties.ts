// The fuzz properties, shared by the short run in `npm test` and `npm run fuzz -- --runs N`.
// Invariants: no trap; every request gets a decision (a status or a reset); memory pages stay
// under a bound; once traffic stops, adaptive-ratelimit counts nothing in flight (no request,
// answered, rejected or reset, keeps a place in its in-flight guard); a rejected configuration
// makes on_configure false with exactly one critical line from the filter, and no trap.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { Envoy, PluginLoadError } from "../runtime/host/src/index.js";
import type { Plugin } from "../runtime/host/src/index.js";
import { FuzzRequest, fromSchema, mutated, request } from "./arbitraries.js";

export const root = new URL("..", import.meta.url).pathname;
export const FILTERS = ["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router"] as const;
export type FilterName = (typeof FILTERS)[number];
export const WORKERS = 3;
/** 1,024 pages = 64 MiB: far above what any filter should need, far below a leak's end. */
export const MAX_PAGES = 1024;

export function schemaOf(filter: FilterName): any {
  return JSON.parse(readFileSync(join(root, "filters", filter, "config.schema.json"), "utf8"));
}

export function wasmOf(filter: FilterName): Buffer {
  return readFileSync(join(root, "dist", `${filter}.wasm`));
}

/** A long-lived sidecar running one filter with a valid configuration (each schema example in turn). */
export class Sidecar {
  envoy: Envoy;
  plugin: Plugin;
  requests = 0;
  constructor(readonly filter: FilterName, readonly configIndex = 0) {
    // Node metadata DC: the env-router example stamps it, as a sidecar in a data centre would.
    this.envoy = new Envoy({ workers: WORKERS, logLevel: "critical", node: { metadata: { DC: "hz-a" } } });
    this.envoy.addCluster("outbound|8080||env-controller.platform.svc.cluster.local", () => ({ status: 200, body: "{\"services\":{}}" }));
    const examples = schemaOf(filter).examples as unknown[];
    this.plugin = this.envoy.addPlugin({ name: filter, rootId: filter, vmId: filter, wasm: wasmOf(filter), configuration: JSON.stringify(examples[configIndex % examples.length]) });
  }

  /** Sends one fuzzed request; returns a problem, or "" when every invariant held. */
  async send(r: FuzzRequest): Promise<string> {
    if (r.waitMs > 0) await this.envoy.advance(r.waitMs);
    this.requests++;
    const pending = this.envoy.request({
      method: r.method, path: r.path, authority: r.authority, headers: r.headers, body: r.body, trailers: r.trailers, worker: r.worker,
      upstream: () => ({ status: r.response.status, headers: r.response.headers, body: r.response.body, reset: r.response.reset }),
    });
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 5000).unref());
    const res = await Promise.race([pending, timeout]);
    if (res === "timeout") return "a request got no decision within 5 s";
    const failed = this.plugin.workerVms.findIndex((vm) => vm === null || vm.failed);
    if (failed >= 0) return `trap on worker ${failed}: ${this.envoy.logsAt("error").join(" | ")}`;
    if (!res.reset && !(res.status >= 100)) return `no decision: status ${res.status}${res.hung ? " (hung)" : ""}`;
    const pages = Math.max(...this.envoy.memoryPages(this.plugin));
    if (pages > MAX_PAGES) return `memory grew to ${pages} pages`;
    return "";
  }

  /**
   * After the last request (every one awaited), lets the workers publish and the lease holder
   * sum: adaptive-ratelimit must count nothing in flight. Returns a problem, or "".
   */
  async drained(): Promise<string> {
    if (this.filter !== "adaptive-ratelimit") return "";
    await this.envoy.advance(1000);
    const left = Object.entries(this.envoy.metrics.snapshot()).filter(([k, m]) => k.startsWith("adaptive_ratelimit.") && k.endsWith(".inflight") && m.value !== 0);
    return left.length === 0 ? "" : `in flight after traffic stopped: ${left.map(([k, m]) => `${k}=${m.value}`).join(", ")}`;
  }
}

/** Property: any sequence of hostile requests (and ticks) on one sidecar keeps every invariant. */
export function requestProperty(filter: FilterName) {
  return fc.asyncProperty(fc.integer({ min: 0, max: 5 }), fc.array(request(WORKERS), { minLength: 1, maxLength: 6 }), async (configIndex, requests) => {
    const sidecar = new Sidecar(filter, configIndex);
    for (const r of requests) {
      const problem = await sidecar.send(r);
      if (problem) throw new Error(problem);
    }
    const left = await sidecar.drained();
    if (left) throw new Error(left);
  });
}

/** Loads a configuration text; returns a problem, or "" when the outcome was a clean accept or a clean reject. */
export function checkConfig(filter: FilterName, text: string): string {
  const envoy = new Envoy({ workers: 1, logLevel: "info" });
  try {
    envoy.addPlugin({ name: filter, rootId: filter, wasm: wasmOf(filter), configuration: text });
  } catch (err) {
    if (!(err instanceof PluginLoadError)) return `unexpected error: ${(err as Error).message}`;
    if (envoy.logsAt("error").some((l) => l.startsWith("Function:"))) return `trap in configure: ${envoy.logsAt("error")[0]}`;
    const lines = envoy.logsAt("critical").filter((l) => l.startsWith("wasm log"));
    if (lines.length !== 1 || !lines[0].includes(`${filter}: `)) return `expected one critical line from the filter, got ${JSON.stringify(lines)}`;
    return "";
  }
  if (envoy.logsAt("error").length > 0) return `errors while loading: ${envoy.logsAt("error").join(" | ")}`;
  return "";
}

/** Property: schema-derived and mutated configurations are accepted or rejected cleanly, never trap. */
export function configProperty(filter: FilterName) {
  const valid = fromSchema(schemaOf(filter));
  return fc.property(fc.oneof(valid, mutated(valid), mutated(fc.constantFrom(...schemaOf(filter).examples))), (config) => {
    const text = typeof config === "string" ? config : JSON.stringify(config);
    const problem = checkConfig(filter, text);
    if (problem) throw new Error(problem);
  });
}
