// The e2e harness: starts the front (local gateway, or real Envoy) with the example upstreams,
// and speaks raw HTTP/1.1 to it (duplicate header lines must stay duplicate lines).
import { spawn, spawnSync } from "node:child_process";
import { request as httpRequest } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { interpret, loadBootstrap } from "../runtime/gateway/bootstrap.js";
import { echoInstances, startEcho } from "../runtime/gateway/echo.js";
import { startGateway } from "../runtime/gateway/gateway.js";

export const root = new URL("..", import.meta.url).pathname;
export const TARGET = (process.env.E2E_TARGET ?? "local") as "local" | "envoy" | "kind";

export function envoyAvailable(): boolean {
  return !spawnSync("envoy", ["--version"]).error;
}

export interface Front {
  url: string;
  /** The same routes without the suite's wasm filters (local target only). */
  controlUrl?: string;
  stop(): Promise<void>;
}

async function waitFor(url: string, ms = 10000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await send(url, { path: "/" });
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Starts the example upstreams and the front for a bootstrap (a file, or an object written to a temp file). */
export async function startFront(bootstrap: string | object, opts: { control?: boolean; workers?: number } = {}): Promise<Front> {
  if (TARGET === "kind") {
    const url = process.env.E2E_GATEWAY_URL;
    if (!url) throw new Error("E2E_TARGET=kind: E2E_GATEWAY_URL is not set (run e2e/kind/run.sh)");
    return { url, async stop() {} };
  }
  const file = typeof bootstrap === "string" ? bootstrap : join(mkdtempSync(join(tmpdir(), "e2e-")), "bootstrap.yaml");
  if (typeof bootstrap !== "string") writeFileSync(file, stringify(bootstrap));
  const cfg = typeof bootstrap === "string" ? loadBootstrap(file) : interpret(bootstrap);
  let port = cfg.listener.port;
  const stopEcho = await startEcho(echoInstances(cfg.clusters.values()), () => port);
  if (TARGET === "envoy") {
    const child = spawn("envoy", ["-c", file, "--base-id", String(Math.floor(Math.random() * 60000)), "--log-level", "error"], { cwd: root, stdio: "ignore" });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(url);
    return { url, async stop() { child.kill("SIGTERM"); await stopEcho(); } };
  }
  const gw = await startGateway({ bootstrap: cfg, root, port: 0, control: opts.control, workers: opts.workers });
  port = gw.port;
  return {
    url: `http://127.0.0.1:${gw.port}`,
    controlUrl: gw.controlPort ? `http://127.0.0.1:${gw.controlPort}` : undefined,
    async stop() { await gw.stop(); await stopEcho(); },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
  json(): any;
}

/** One HTTP/1.1 request; `headers` are sent as separate lines, in order, case kept. */
export function send(base: string, req: { method?: string; path: string; headers?: Array<[string, string]>; body?: string }): Promise<Reply> {
  const u = new URL(base);
  const raw: string[] = [];
  for (const [k, v] of req.headers ?? []) raw.push(k, v);
  // With raw header lines Node adds no Host of its own.
  if (!(req.headers ?? []).some(([k]) => k.toLowerCase() === "host")) raw.push("Host", TARGET === "kind" ? "web" : u.host);
  if (req.body !== undefined) raw.push("content-length", String(Buffer.byteLength(req.body)));
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: u.hostname, port: Number(u.port), method: req.method ?? (req.body !== undefined ? "POST" : "GET"), path: req.path, headers: raw, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : String(v);
        resolve({ status: res.statusCode ?? 0, headers, body, json: () => JSON.parse(body) });
      });
    });
    r.on("error", reject);
    r.end(req.body);
  });
}

/** The header values an echo upstream received, by lowercase name. */
export function seen(reply: Reply, name: string): string[] {
  return (reply.json().headers as Array<[string, string]>).filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
}

/** service@env of each hop of a chained echo answer. */
export function hops(reply: Reply): string[] {
  const out: string[] = [];
  for (let j = reply.json(); j && j.service; j = j.next) out.push(`${j.service}@${j.env}`);
  return out;
}

/** Pinning targets: the local example replicas, or the web pods run.sh found in the cluster. */
export const PIN = TARGET === "kind"
  ? (() => {
    const pods = (process.env.E2E_WEB_PODS ?? "").split(",").filter(Boolean);
    const ip = (pods[0] ?? "10.244.0.10:8080").split(":")[0];
    return { replica: pods[1] ?? pods[0] ?? "", badPort: `${ip}:22`, notEndpoint: "10.244.250.250:8080", outside: "10.9.0.1:8080" };
  })()
  : { replica: "127.0.0.1:18102", badPort: "127.0.0.1:22", notEndpoint: "127.0.0.1:18150", outside: "10.9.0.1:18101" };
