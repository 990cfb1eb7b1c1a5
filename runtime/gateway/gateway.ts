// The local gateway: real HTTP on 127.0.0.1 in front of the suite's host (runtime/host), driven
// by a standalone Envoy bootstrap. Routing, the strict stateful session and ORIGINAL_DST are
// done here as Envoy does them; the wasm filters run as built modules in the host.
import { createServer, request as httpRequest, IncomingMessage, Server, ServerResponse } from "node:http";
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { isAbsolute, join } from "node:path";
import { Envoy, Plugin } from "../host/src/index.js";
import type { UpstreamRequest, UpstreamResponse } from "../host/src/index.js";
import { CaseFormatter, ClusterConfig, GatewayConfig, SessionFilterConfig, loadBootstrap } from "./bootstrap.js";

export interface GatewayOptions {
  bootstrap: string | GatewayConfig;
  /** Directory wasm filenames are relative to (the repository root). */
  root: string;
  /** Listener port override (0: any free port). */
  port?: number;
  workers?: number;
  /** Print Envoy's log lines at this level and above. */
  logLevel?: "trace" | "debug" | "info" | "warn" | "error" | "critical";
  onLog?: (line: string) => void;
}

export interface Gateway {
  port: number;
  envoy: Envoy;
  stop(): Promise<void>;
}

const REQUEST_HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"]);

/**
 * Per stream, the formatter attached to each header map by the codec that parsed it (seen on
 * Envoy 1.40): the connection manager's preserve_case captures the request's names and Envoy
 * writes the upstream request with it; the cluster's captures the response's names and Envoy
 * writes the client's response with it. A side without one writes lowercase.
 */
interface Captured { fmt: CaseFormatter; seen: Map<string, string> }
interface StreamCase { request?: Captured; response?: Captured }
const streamCase = new AsyncLocalStorage<StreamCase>();

function captureCase(raw: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < raw.length; i += 2) if (!m.has(raw[i].toLowerCase())) m.set(raw[i].toLowerCase(), raw[i]);
  return m;
}

/**
 * How Envoy's HTTP/1 codec spells a (lowercase) name: as it arrived when a preserve_case formatter
 * captured it, else Proper-Case (formatter_type_on_envoy_headers: PROPER_CASE) or lowercase.
 */
function formatName(k: string, fmt: CaseFormatter | undefined, seen: Map<string, string> | undefined): string {
  if (!fmt) return k;
  const original = seen?.get(k);
  if (original !== undefined) return original;
  return fmt.properCase ? k.replace(/(^|[^a-zA-Z0-9])([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase()) : k;
}

function routerReply(status: number, text: string): UpstreamResponse {
  return { status, headers: [["content-length", String(Buffer.byteLength(text))], ["content-type", "text/plain"]], body: text };
}

function hostOnly(authority: string): string {
  return authority.replace(/:\d+$/, "");
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const cfg = typeof opts.bootstrap === "string" ? loadBootstrap(opts.bootstrap) : opts.bootstrap;
  const envoy = new Envoy({ workers: opts.workers ?? 2, clock: "real", logLevel: opts.logLevel ?? "warn" });
  const plugins: Plugin[] = [];
  for (const f of cfg.filters) {
    if (f.kind !== "wasm") continue;
    plugins.push(envoy.addPlugin({
      name: f.name, rootId: f.rootId, vmId: f.vmId, configuration: f.configuration, failOpen: f.failOpen, failurePolicy: f.failurePolicy,
      wasm: isAbsolute(f.filename) ? f.filename : join(opts.root, f.filename),
    }));
  }
  const session = cfg.filters.find((f): f is SessionFilterConfig => f.kind === "stateful_session");
  const stopTicks = envoy.runRealTime();
  const rr = new Map<string, number>();
  let printed = 0;
  const flushLogs = () => {
    for (; printed < envoy.logs.length; printed++) opts.onLog?.(`[${envoy.logs[printed].level}] ${envoy.logs[printed].message}`);
  };

  function route(up: UpstreamRequest): { cluster: ClusterConfig; timeoutMs: number } | undefined {
    const authority = up.header(":authority") ?? "";
    const path = up.header(":path") ?? "/";
    const vh = cfg.virtualHosts.find((v) => v.domains.some((d) => d === authority || d === hostOnly(authority) || d === "*" || (d.endsWith(":*") && d.slice(0, -2) === hostOnly(authority))));
    const r = vh?.routes.find((rt) => path.startsWith(rt.prefix) && rt.headers.every((h) => up.header(h.name) === h.exact));
    const cluster = r ? cfg.clusters.get(r.cluster) : undefined;
    return r && cluster ? { cluster, timeoutMs: r.timeoutMs } : undefined;
  }

  /** Picks the endpoint: the strict stateful session's choice, else round robin; ORIGINAL_DST from filter state. */
  function pick(cluster: ClusterConfig, up: UpstreamRequest): { address: string; port: number } | string {
    if (cluster.type === "ORIGINAL_DST") {
      // Envoy's order: the filter state, then (only with use_http_header) the header, then the
      // downstream connection's restored destination, which a plain listener never has.
      const dst = up.envoyFilterState["envoy.network.transport_socket.original_dst_address"] ??
        (cluster.originalDstHeader ? up.header(cluster.originalDstHeader) : undefined);
      const m = dst ? /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(dst) : null;
      if (!m || m[1] !== "127.0.0.1") return "no original destination (or not on 127.0.0.1)";
      return { address: m[1], port: Number(m[2]) };
    }
    const pinned = session ? up.header(session.header) : undefined;
    if (pinned !== undefined) {
      const target = Buffer.from(pinned, "base64").toString("utf8");
      const hit = cluster.endpoints.find((e) => `${e.address}:${e.port}` === target);
      if (hit) return hit;
      if (session!.strict) return `${target} is not an endpoint of cluster ${cluster.name}`;
    }
    const i = rr.get(cluster.name) ?? 0;
    rr.set(cluster.name, i + 1);
    return cluster.endpoints[i % cluster.endpoints.length];
  }

  function forward(up: UpstreamRequest): Promise<UpstreamResponse> {
    const matched = route(up);
    // The router's own replies, as Envoy words them (404 without a body when no route matches).
    if (!matched) return Promise.resolve({ status: 404, headers: [], body: "" });
    const { cluster } = matched;
    const target = pick(cluster, up);
    if (typeof target === "string") {
      if (opts.logLevel === "debug" || opts.logLevel === "trace") opts.onLog?.(`[debug] no healthy upstream: ${target}`);
      return Promise.resolve({ ...routerReply(503, "no healthy upstream"), cluster: cluster.name });
    }
    const ctx = streamCase.getStore();
    const name = (k: string) => formatName(k, ctx?.request?.fmt, ctx?.request?.seen);
    const headers: string[] = [];
    for (const [k, v] of up.rawHeaders) {
      if (k.startsWith(":") || HOP_BY_HOP.has(k)) continue;
      headers.push(name(k), Buffer.from(v, "latin1").toString("latin1"));
    }
    headers.push(name("host"), up.header(":authority") ?? "");
    // The router tells the upstream the route's timeout (Envoy's default route timeout is 15 s).
    if (up.header("x-envoy-expected-rq-timeout-ms") === undefined) headers.push(name("x-envoy-expected-rq-timeout-ms"), String(matched.timeoutMs));
    // Header-based stateful session (Envoy's HeaderBasedSessionState::onUpdate): the response
    // carries base64(ip:port) of the chosen host unless the request already named that host.
    const sessionOut = session ? up.header(session.header) : undefined;
    const sessionValue = Buffer.from(`${target.address}:${target.port}`).toString("base64");
    return new Promise((resolve) => {
      const req = httpRequest({ host: target.address, port: target.port, method: up.header(":method"), path: up.header(":path"), headers, setHost: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const out: Array<[string, string]> = [];
          if (cluster.headerCase && ctx) ctx.response = { fmt: cluster.headerCase, seen: captureCase(res.rawHeaders) };
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const k = res.rawHeaders[i].toLowerCase();
            // transfer-encoding goes on to the host, whose HTTP/1 codec check rejects a doubled
            // chunked as Envoy's does; it is never written to the client as such.
            if (!HOP_BY_HOP.has(k) || k === "transfer-encoding") out.push([k, res.rawHeaders[i + 1]]);
          }
          if (session && sessionOut !== sessionValue) out.push([session.header, sessionValue]);
          resolve({ status: res.statusCode ?? 502, headers: out, body: Buffer.concat(chunks), address: `${target.address}:${target.port}`, cluster: cluster.name });
        });
      });
      req.on("error", () => resolve({ cluster: cluster.name, address: `${target.address}:${target.port}`, ...routerReply(503, "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused") }));
      req.end(up.body);
    });
  }

  function handler(filters: Plugin[]) {
    return (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", async () => {
        if (req.rawHeaders.length / 2 > cfg.limits.maxHeadersCount) {
          // Envoy's HTTP/1 codec, past max_headers_count (seen on 1.40).
          const text = "Request Header Fields Too Large";
          res.writeHead(431, ["content-length", String(text.length), "content-type", "text/plain", "connection", "close"]);
          res.end(text);
          return;
        }
        // The HTTP/1 codec and the connection manager drop hop-by-hop headers before any filter.
        const headers: Array<[string, string]> = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) {
          const k = req.rawHeaders[i].toLowerCase();
          if (REQUEST_HOP_BY_HOP.has(k) || (k === "te" && req.rawHeaders[i + 1].toLowerCase() !== "trailers")) continue;
          headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
        }
        const body = Buffer.concat(chunks);
        // The connection manager, before any filter: x-request-id when the request has none, and
        // x-forwarded-proto (this listener is plain HTTP).
        if (!headers.some(([k]) => k.toLowerCase() === "x-forwarded-proto")) headers.push(["x-forwarded-proto", "http"]);
        if (!headers.some(([k]) => k.toLowerCase() === "x-request-id")) headers.push(["x-request-id", randomUUID()]);
        // preserve_case on the connection manager: the case each request name arrived in.
        const names: StreamCase = { request: cfg.headerCase ? { fmt: cfg.headerCase, seen: captureCase(req.rawHeaders) } : undefined };
        try {
          const result = await streamCase.run(names, () => envoy.request({
            method: req.method, path: req.url, scheme: "http", headers, body: body.length > 0 ? body : undefined,
            source: `${req.socket.remoteAddress}:${req.socket.remotePort}`, destination: `127.0.0.1:${(req.socket.address() as AddressInfo).port}`,
            filters, upstream: forward,
          }));
          flushLogs();
          if (result.hung || result.reset) { req.socket.destroy(); return; }
          // The response headers in the host's order, one line each, as Envoy's HTTP/1 codec writes them.
          const out: string[] = [];
          for (const [k, v] of result.headers) {
            if (k.startsWith(":") || HOP_BY_HOP.has(k)) continue;
            if (k === "content-length" && Number(v) !== result.bodyBytes.length) continue;
            out.push(formatName(k, names.response?.fmt, names.response?.seen), v);
          }
          // Envoy's HTTP/1 codec ends a bodiless response with content-length: 0.
          if (result.bodyBytes.length === 0 && !out.some((k, i) => i % 2 === 0 && k.toLowerCase() === "content-length") && result.status !== 204 && result.status !== 304 && result.status >= 200) {
            out.push(formatName("content-length", names.response?.fmt, names.response?.seen), "0");
          }
          res.writeHead(result.status, out);
          res.end(result.bodyBytes);
        } catch (err) {
          res.writeHead(500);
          res.end(`gateway error: ${(err as Error).message}\n`);
        }
      });
    };
  }

  const listen = (server: Server, port: number) => new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
  // The connection manager's limits (Envoy answers 431 past them, as Node's parser does).
  const serverOptions = { maxHeaderSize: cfg.limits.maxRequestHeadersKb * 1024 };
  const main = createServer(serverOptions, handler(plugins));
  // One more than the limit, so that going past it is seen (Node would silently drop the rest).
  main.maxHeadersCount = cfg.limits.maxHeadersCount + 1;
  const port = await listen(main, opts.port ?? cfg.listener.port);
  return {
    port, envoy,
    async stop() {
      stopTicks();
      await new Promise<void>((r) => main.close(() => r()));
      main.closeAllConnections?.();
    },
  };
}
