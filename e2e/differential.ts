// The differential check: each e2e case's result on real Envoy against the same case on the local
// target (the suite's host behind the local gateway). A result is flattened into lines (status, the
// headers and body the client received in order, and what each upstream hop received), and the two
// sides must hold the same lines, but for the documented differences below, each with its reason.
import { expect } from "vitest";
import type { Reply } from "./harness.js";

/** Headers that say nothing about the filters: who answered, when, and HTTP/1 framing. */
const FRAMING = new Set(["date", "server", "x-envoy-upstream-service-time", "connection", "keep-alive", "transfer-encoding"]);

/**
 * Known differences between the local target and Envoy. A line that only one side has is accepted
 * when `side` is that side and `line` matches. Keep this list short: every entry is a place where
 * the host is not Envoy.
 */
export const DOCUMENTED_DIFFERENCES: Array<{ side: "local" | "envoy"; line: RegExp; reason: string }> = [];

function norm(value: string, port: string): string {
  if (value === port) return "<front port>";
  return value
    .split(`127.0.0.1:${port}`).join("<front>")
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, "<uuid>");
}

/** An example upstream's answer (what it saw), or undefined for any other body. */
function echoOf(r: Reply): any {
  try {
    const j = JSON.parse(r.body);
    return j && typeof j === "object" && j.service ? j : undefined;
  } catch {
    return undefined;
  }
}

/** The headers an upstream received, without `connection` (HTTP/1 framing between proxy and app; Node's client says keep-alive). */
function upstreamHeaders(j: any): Array<[string, string]> {
  return (j.headers as Array<[string, string]>).filter(([k]) => k.toLowerCase() !== "connection");
}

function echoLines(j: any, port: string, prefix: string, out: string[]): void {
  out.push(`${prefix}: ${j.method} ${j.path} -> ${j.service}@${j.env}#${j.replica}`);
  const hs = upstreamHeaders(j).map(([k, v]) => `${prefix} header: ${k.toLowerCase()}: ${norm(v, port)}`).sort();
  out.push(...hs);
  if (j.body) out.push(`${prefix} body: ${j.body}`);
  if (j.next) {
    if (j.next.service) echoLines(j.next, port, `${prefix}>next`, out);
    else out.push(`${prefix}>next: ${JSON.stringify(j.next)}`);
  }
}

/**
 * A result as lines; `frontUrl` is the front that answered (its port is normalised away). Unless
 * `pinned`, which replica of a cluster answered is the load balancer's choice (round robin per
 * worker, so it depends on which worker took the connection): it is not compared.
 */
export function view(r: Reply, frontUrl: string, pinned = false, caseSensitive = false): string[] {
  const lines = rawView(r, frontUrl);
  if (caseSensitive) {
    // Header names as they were on the wire, each side (for preserve_case).
    lines.push(`client names: ${r.raw.map(([k]) => k).filter((k) => !FRAMING.has(k.toLowerCase())).join(" ")}`);
    const echo = echoOf(r);
    if (echo) lines.push(`upstream names: ${upstreamHeaders(echo).map(([k]) => k).sort().join(" ")}`);
  }
  if (pinned) return lines;
  return lines.map((l) => l.replace(/(@[a-z-]+)#\d+/g, "$1#<lb>"));
}

function rawView(r: Reply, frontUrl: string): string[] {
  const port = new URL(frontUrl).port;
  const out = [`status: ${r.status}`];
  const client = r.raw.map(([k, v]) => [k.toLowerCase(), v]).filter(([k]) => !FRAMING.has(k));
  out.push(`client order: ${client.map(([k]) => k).join(" ")}`);
  // adaptive-ratelimit's remaining tokens and reset time depend on when the request came.
  for (const [k, v] of client) out.push(`client: ${k}: ${k === "ratelimit-remaining" || k === "ratelimit-reset" ? "<varies>" : norm(v, port)}`);
  const echo = echoOf(r);
  if (echo) echoLines(echo, port, "upstream", out);
  else out.push(`client body: ${JSON.stringify(r.body)}`);
  return out;
}

function multisetMinus(a: string[], b: string[]): string[] {
  const left = [...b];
  const out: string[] = [];
  for (const x of a) {
    const i = left.indexOf(x);
    if (i >= 0) left.splice(i, 1);
    else out.push(x);
  }
  return out;
}

/** Fails, showing both sides, when the two targets' results differ beyond the documented list. */
export function compareRuns(id: string, runs: Map<string, string[]> | undefined, local: string, envoy: string): void {
  const a = runs?.get(local);
  const b = runs?.get(envoy);
  if (!a || !b) throw new Error(`${id}: no result to compare (${local}: ${a ? "ran" : "missing"}, ${envoy}: ${b ? "ran" : "missing"})`);
  const ok = (side: "local" | "envoy", line: string) => DOCUMENTED_DIFFERENCES.some((d) => d.side === side && d.line.test(line));
  const onlyLocal = multisetMinus(a, b).filter((l) => !ok("local", l));
  const onlyEnvoy = multisetMinus(b, a).filter((l) => !ok("envoy", l));
  if (onlyLocal.length || onlyEnvoy.length) {
    const report = [
      `${id}: the local target and ${envoy} differ`,
      `only on ${local}:`, ...onlyLocal.map((l) => `  ${l}`),
      `only on ${envoy}:`, ...onlyEnvoy.map((l) => `  ${l}`),
      `--- ${local} ---`, ...a.map((l) => `  ${l}`),
      `--- ${envoy} ---`, ...b.map((l) => `  ${l}`),
    ].join("\n");
    expect.fail(report);
  }
}
