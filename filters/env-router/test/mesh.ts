// A small mesh for end-to-end tests in the host: each pod has its own Envoy (its sidecar)
// running env-router twice (inbound and outbound, sharing one vm_id as in one sidecar), and
// the "VirtualService" routes an outbound call to the instance whose env label equals the
// x-env-route header the filter wrote (no such instance: 503, as Istio's missing subset).
import { readFileSync } from "node:fs";
import { Envoy, Plugin } from "../../../runtime/host/src/index.js";
import type { StreamResult, UpstreamRequest, UpstreamResponse } from "../../../runtime/host/src/index.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";

export const wasm = readFileSync(wasmPath("env-router"));

export type App = (pod: Pod, req: UpstreamRequest) => Promise<UpstreamResponse>;

export interface Pod {
  service: string;
  env: string;
  envoy: Envoy;
  inbound: Plugin;
  outbound: Plugin;
  app: App;
}

export class Mesh {
  readonly pods: Pod[] = [];
  /** Calls that reached a pod, in order: "service@env". */
  readonly served: string[] = [];

  constructor(readonly extraConfig: object = {}) {}

  /** The availability map the control plane would push: service -> envs with a pod. */
  services(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const p of this.pods) (out[p.service] ??= []).includes(p.env) || out[p.service].push(p.env);
    return out;
  }

  add(service: string, env: string, app: App, config: object = {}): Pod {
    const envoy = new Envoy({ workers: 1 });
    const base = { name: "env-router", rootId: "env-router", vmId: "env-router", wasm };
    const pod = { service, env, envoy, app } as Pod;
    this.pods.push(pod);
    pod.inbound = envoy.addPlugin({ ...base, name: "env-router-inbound", configuration: JSON.stringify({ mode: "inbound", ...this.extraConfig, ...config }) });
    pod.outbound = this.outboundPlugin(pod, config);
    return pod;
  }

  private outboundPlugin(pod: Pod, config: object): Plugin {
    return pod.envoy.addPlugin({
      name: "env-router-outbound", rootId: "env-router", vmId: "env-router", wasm,
      configuration: JSON.stringify({ mode: "outbound", services: this.services(), explain: true, ...this.extraConfig, ...config }),
    });
  }

  /** Re-pushes the availability map to every outbound plugin (after all pods were added). */
  push(): void {
    for (const pod of this.pods) {
      pod.envoy.removePlugin(pod.outbound);
      pod.outbound = this.outboundPlugin(pod, {});
    }
  }

  /** An outbound call from `from`'s app to `host`, through `from`'s sidecar. */
  call(from: Pod, host: string, headers: Array<[string, string]>, viaPlugin?: Plugin): Promise<StreamResult> {
    return from.envoy.request({
      authority: host, path: "/", headers, filters: [viaPlugin ?? from.outbound],
      upstream: (req) => this.deliver(host, req),
    });
  }

  /** The route: the instance of `host` labelled with the env in x-env-route, then its inbound sidecar and app. */
  async deliver(host: string, req: UpstreamRequest): Promise<UpstreamResponse> {
    const service = host.split(".")[0].split(":")[0];
    const route = req.header("x-env-route") ?? "default";
    const pod = this.pods.find((p) => p.service === service && p.env === route);
    if (!pod) return { status: 503, body: `no healthy upstream: ${service} has no ${route} subset` };
    const res = await pod.envoy.request({
      authority: host, path: "/", headers: req.headers.filter(([k]) => !k.startsWith(":")), filters: [pod.inbound],
      upstream: async (inReq) => {
        this.served.push(`${pod.service}@${pod.env}`);
        return pod.app(pod, inReq);
      },
    });
    return { status: res.status, headers: res.headers.filter(([k]) => !k.startsWith(":")), body: res.body };
  }
}

/** Propagation behaviours of an app that calls `next` for each request it serves. */
export interface Propagates {
  tag?: boolean;       // forwards x-env
  baggage?: boolean;   // forwards baggage (OpenTelemetry)
  trace?: boolean;     // forwards traceparent (tracing auto-instrumentation)
}

export function caller(mesh: Mesh, next: string | null, propagates: Propagates): App {
  return async (pod, req) => {
    if (next === null) return { status: 200, body: "" };
    const headers: Array<[string, string]> = [];
    for (const [k, v] of req.headers) {
      if ((k === "x-env" && propagates.tag) || (k === "baggage" && propagates.baggage) || (k === "traceparent" && propagates.trace)) headers.push([k, v]);
    }
    const res = await mesh.call(pod, next, headers);
    return { status: res.status, body: res.body };
  };
}

let traceSeq = 0;
export function traceparent(): string {
  traceSeq++;
  return `00-${traceSeq.toString(16).padStart(32, "0")}-00f067aa0ba902b7-01`;
}
