// Example upstreams for the local gateway and the e2e suite: each answers with what it saw
// (service, env, replica, method, path, headers as received, body). With `x-e2e-next: b,c` it
// first calls the next service through the gateway, as an app behind a sidecar would,
// forwarding only the headers `x-e2e-forward` lists (default: x-env and traceparent).
// `x-e2e-gateway: <port>` makes it call through that port instead (tests comparing fronts).
import { createServer, request as httpRequest, Server } from "node:http";
import type { ClusterConfig } from "./bootstrap.js";

export interface EchoInstance { service: string; env: string; replica: number; port: number; host?: string }

/** Which service/env/replica a cluster's endpoints are: "reviews.feature-x" -> reviews in feature-x. */
export function echoInstances(clusters: Iterable<ClusterConfig>): EchoInstance[] {
  const out: EchoInstance[] = [];
  for (const c of clusters) {
    if (c.type !== "STATIC") continue;
    const [service, env = "default"] = c.name.split(/\.(.+)/);
    c.endpoints.forEach((e, replica) => out.push({ service, env, replica, port: e.port }));
  }
  return out;
}

/**
 * Where an onward call goes: through the local gateway (port), or, in a mesh, straight to the
 * next service's name (its sidecar does the routing).
 */
export type Onward = { mode: "gateway"; port: () => number } | { mode: "direct"; port: number };

export async function startEcho(instances: EchoInstance[], gatewayPort: () => number, onward?: Onward): Promise<() => Promise<void>> {
  const servers: Server[] = [];
  for (const inst of instances) {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", async () => {
        const headers: Array<[string, string]> = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
        const seen = { service: inst.service, env: inst.env, replica: inst.replica, host: inst.host ?? "127.0.0.1", port: inst.port, method: req.method, path: req.url, headers, body: Buffer.concat(chunks).toString("utf8") };
        const nextList = (req.headers["x-e2e-next"] as string | undefined)?.split(",").map((s) => s.trim()).filter(Boolean) ?? [];
        let next: unknown = undefined;
        if (nextList.length > 0) {
          const forward = ((req.headers["x-e2e-forward"] as string | undefined) ?? "x-env,traceparent").split(",").map((s) => s.trim().toLowerCase());
          const via = Number(req.headers["x-e2e-gateway"]) || gatewayPort();
          const fwd: Record<string, string> = { host: nextList[0], "x-e2e-forward": forward.join(","), "x-e2e-gateway": String(via) };
          if (nextList.length > 1) fwd["x-e2e-next"] = nextList.slice(1).join(",");
          for (const h of forward) if (typeof req.headers[h] === "string") fwd[h] = req.headers[h] as string;
          next = await new Promise((resolve) => {
            const direct = onward?.mode === "direct";
            const r = httpRequest({ host: direct ? nextList[0] : "127.0.0.1", port: direct ? onward.port : via, path: "/", headers: fwd }, (resp) => {
              const c: Buffer[] = [];
              resp.on("data", (d) => c.push(d));
              resp.on("end", () => { try { resolve(JSON.parse(Buffer.concat(c).toString("utf8"))); } catch { resolve({ status: resp.statusCode }); } });
            });
            r.on("error", (e) => resolve({ error: e.message }));
            r.end();
          });
        }
        const body = JSON.stringify({ ...seen, next });
        // Mixed-case names, as many apps send them (preserve_case tests read them back).
        res.writeHead(200, { "Content-Type": "application/json", "X-Served-By": `${inst.service}@${inst.env}#${inst.replica}` });
        res.end(body);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e) => reject(new Error(`echo ${inst.service}@${inst.env} cannot listen on 127.0.0.1:${inst.port}: ${e.message}`)));
      server.listen(inst.port, onward?.mode === "direct" ? "0.0.0.0" : "127.0.0.1", () => resolve());
    });
    servers.push(server);
  }
  return async () => {
    await Promise.all(servers.map((s) => new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections?.(); })));
  };
}
