// The e2e harness: starts a front (the local gateway over the suite's host, or real Envoy) with
// the example upstreams, and speaks raw HTTP/1.1 to it (duplicate header lines must stay
// duplicate lines, and the case of names must be seen as sent).
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { inject } from "vitest";
import { interpret } from "../runtime/gateway/bootstrap.js";
import { echoInstances, startEcho } from "../runtime/gateway/echo.js";
import { startEnvoy } from "../runtime/gateway/envoy.js";
import { startGateway } from "../runtime/gateway/gateway.js";

export const root = new URL("..", import.meta.url).pathname;

/** Where the suite runs: the local gateway, real Envoy (one entry per version), or kind. */
export type Target =
  | { kind: "local"; name: "local" }
  | { kind: "envoy"; name: string; version: string; bin: string }
  | { kind: "kind"; name: "kind" };

/**
 * E2E_TARGET picks: `local`, `envoy`, `kind`, or unset for local and every Envoy version
 * (what `npm test` runs). The Envoy binaries come from the global setup (test/envoy.global.ts),
 * which fails the run when one cannot be had: never a skip.
 */
export function targets(): Target[] {
  const want = process.env.E2E_TARGET ?? "all";
  if (want === "kind") return [{ kind: "kind", name: "kind" }];
  const out: Target[] = [];
  if (want === "all" || want === "local") out.push({ kind: "local", name: "local" });
  if (want === "all" || want === "envoy") {
    for (const e of inject("envoys")) out.push({ kind: "envoy", name: `envoy ${e.version}`, version: e.version, bin: e.bin });
  }
  if (out.length === 0) throw new Error(`E2E_TARGET=${want}: expected local, envoy or kind`);
  return out;
}

export interface Front {
  target: Target;
  url: string;
  /** The front's log (Envoy's log, or the wasm log lines of the local gateway). */
  log(): string;
  stop(): Promise<void>;
}

/** A kind gateway run.sh port-forwarded, at the URL in environment variable `env`. */
export function kindFront(target: Target, env: string): Front {
  const url = process.env[env];
  if (!url) throw new Error(`E2E_TARGET=kind: ${env} is not set (run e2e/kind/run.sh)`);
  return { target, url, log: () => "", async stop() {} };
}

/** Starts the example upstreams and the front for a bootstrap object (on kind: the suite's gateway). */
export async function startFront(target: Target, bootstrap: Record<string, any>, opts: { workers?: number; upstreams?: boolean } = {}): Promise<Front> {
  if (target.kind === "kind") return kindFront(target, "E2E_GATEWAY_URL");
  const cfg = interpret(bootstrap);
  let port = 0;
  const stopEcho = opts.upstreams === false ? async () => {} : await startEcho(echoInstances(cfg.clusters.values()), () => port);
  try {
    if (target.kind === "envoy") {
      const envoy = await startEnvoy({ bin: target.bin, bootstrap, cwd: root, concurrency: opts.workers ?? 4, logLevel: "info" });
      port = envoy.ports.get(cfg.listener.name)!;
      return { target, url: `http://127.0.0.1:${port}`, log: envoy.log, async stop() { await envoy.stop(); await stopEcho(); } };
    }
    const lines: string[] = [];
    const gw = await startGateway({ bootstrap: cfg, root, port: 0, workers: opts.workers ?? 4, logLevel: "info", onLog: (l) => lines.push(l) });
    port = gw.port;
    return {
      target,
      url: `http://127.0.0.1:${gw.port}`,
      log: () => lines.join("\n"),
      async stop() { await gw.stop(); await stopEcho(); },
    };
  } catch (err) {
    await stopEcho();
    throw err;
  }
}

export interface Reply {
  status: number;
  /** Header names lowercased, repeats joined with ", ". */
  headers: Record<string, string>;
  /** Header lines as received: order and case kept. */
  raw: Array<[string, string]>;
  body: string;
  json(): any;
}

export interface Request { method?: string; path: string; headers?: Array<[string, string]>; body?: string }

/** One HTTP/1.1 request; `headers` are sent as separate lines, in order, case kept. */
export function send(base: string, req: Request): Promise<Reply> {
  const u = new URL(base);
  const raw: string[] = [];
  for (const [k, v] of req.headers ?? []) raw.push(k, v);
  // With raw header lines Node adds no Host of its own.
  if (!(req.headers ?? []).some(([k]) => k.toLowerCase() === "host")) raw.push("Host", process.env.E2E_TARGET === "kind" ? "web.e2e.svc.cluster.local" : u.host);
  if (req.body !== undefined) raw.push("content-length", String(Buffer.byteLength(req.body)));
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: u.hostname, port: Number(u.port), method: req.method ?? (req.body !== undefined ? "POST" : "GET"), path: req.path, headers: raw, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : String(v);
        const pairs: Array<[string, string]> = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
        resolve({ status: res.statusCode ?? 0, headers, raw: pairs, body, json: () => JSON.parse(body) });
      });
    });
    r.on("error", reject);
    r.end(req.body);
  });
}

/**
 * Writes `head` (request line and header lines, CRLF added) and a body on a raw TCP socket and
 * returns the response as a Reply whose `raw` header lines are exactly as they came (no HTTP
 * client in between to lowercase or merge them).
 */
export async function sendRaw(base: string, head: string[], body = ""): Promise<Reply> {
  return rawReply(await exchangeRaw(base, head, body));
}

function exchangeRaw(base: string, head: string[], body: string): Promise<{ statusLine: string; lines: string[]; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    sock.setTimeout(10000, () => sock.destroy(new Error("raw request timed out")));
    sock.on("connect", () => sock.write([...head, "Connection: close", "", ""].join("\r\n") + body));
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", reject);
    sock.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      const lines = text.slice(0, end < 0 ? text.length : end).split("\r\n");
      resolve({ statusLine: lines[0] ?? "", lines: lines.slice(1), body: end < 0 ? "" : text.slice(end + 4) });
    });
  });
}

/** A raw exchange as a Reply: header lines split at the first colon, case kept; chunked bodies decoded. */
function rawReply(raw: { statusLine: string; lines: string[]; body: string }): Reply {
  const pairs: Array<[string, string]> = raw.lines.map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]);
  const headers: Record<string, string> = {};
  for (const [k, v] of pairs) headers[k.toLowerCase()] = headers[k.toLowerCase()] === undefined ? v : `${headers[k.toLowerCase()]}, ${v}`;
  let body = raw.body;
  if ((headers["transfer-encoding"] ?? "").toLowerCase() === "chunked") {
    let out = "";
    for (let rest = raw.body; ;) {
      const nl = rest.indexOf("\r\n");
      const size = parseInt(rest.slice(0, nl), 16);
      if (!(size > 0)) break;
      out += rest.slice(nl + 2, nl + 2 + size);
      rest = rest.slice(nl + 2 + size + 2);
    }
    body = out;
  }
  return { status: Number(raw.statusLine.split(" ")[1]), headers, raw: pairs, body, json: () => JSON.parse(body) };
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
export const PIN = process.env.E2E_TARGET === "kind"
  ? (() => {
    const pods = (process.env.E2E_WEB_PODS ?? "").split(",").filter(Boolean);
    const ip = (pods[0] ?? "10.244.0.10:8080").split(":")[0];
    return { replica: pods[1] ?? pods[0] ?? "", badPort: `${ip}:22`, notEndpoint: "10.244.250.250:8080", outside: "10.9.0.1:8080" };
  })()
  : { replica: "127.0.0.1:18102", badPort: "127.0.0.1:22", notEndpoint: "127.0.0.1:18150", outside: "10.9.0.1:18101" };
