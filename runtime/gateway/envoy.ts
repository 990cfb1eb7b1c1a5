// Runs real Envoy on a bootstrap, for the e2e suite and `npm start`: admin and listeners on
// 127.0.0.1 (port 0 = any free port, read back from the admin endpoint), a dynamic base id so
// that runs never collide, readiness taken from the admin endpoint (/ready, then the listeners'
// bound addresses), Envoy's log kept in a file, and the process stopped on stop(), on exit and on
// SIGINT/SIGTERM/SIGHUP of this process.
import { spawn, ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

export interface EnvoyOptions {
  bin: string;
  /** The bootstrap as an object (a copy is written to a temp dir). */
  bootstrap: Record<string, any>;
  /** Working directory: the bootstrap's relative wasm paths resolve from here. */
  cwd: string;
  concurrency?: number;
  logLevel?: "trace" | "debug" | "info" | "warning" | "error" | "critical";
  /** Port for the listeners (0: a free port each, the default). */
  listenPort?: number;
  readyTimeoutMs?: number;
  /** CPUs to pin Envoy to (a taskset list such as "0" or "0-1"); unpinned when absent. */
  cpus?: string;
}

export interface EnvoyProcess {
  pid: number;
  adminUrl: string;
  /** Bound port of each listener, by name. */
  ports: Map<string, number>;
  /** Envoy's log so far. */
  log(): string;
  /** Path of the log file (kept after stop). */
  logFile: string;
  exited(): boolean;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => { for (const c of running) { try { c.kill("SIGTERM"); } catch { /* already gone */ } } };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      killAll();
      // Exit as the signal would have, unless the program handles the signal itself.
      if (process.listenerCount(sig) <= 1) process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    r.on("timeout", () => r.destroy(new Error(`GET ${url}: timed out`)));
    r.on("error", reject);
    r.end();
  });
}

/** The bootstrap with admin and every listener on 127.0.0.1 and the given port. */
export function loopbackBootstrap(doc: Record<string, any>, listenPort: number): Record<string, any> {
  const copy = structuredClone(doc);
  copy.admin = { address: { socket_address: { address: "127.0.0.1", port_value: 0 } } };
  for (const l of copy.static_resources?.listeners ?? []) {
    l.address = { socket_address: { address: "127.0.0.1", port_value: listenPort } };
  }
  return copy;
}

export async function startEnvoy(opts: EnvoyOptions): Promise<EnvoyProcess> {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), "suite-envoy-"));
  const config = join(dir, "bootstrap.yaml");
  const adminFile = join(dir, "admin-address");
  const logFile = join(dir, "envoy.log");
  writeFileSync(config, stringify(loopbackBootstrap(opts.bootstrap, opts.listenPort ?? 0), { lineWidth: 0 }));
  const fd = openSync(logFile, "a");
  const argv = [
    "-c", config,
    "--concurrency", String(opts.concurrency ?? 4),
    "--use-dynamic-base-id", "--base-id-path", join(dir, "base-id"),
    "--admin-address-path", adminFile,
    "--log-level", opts.logLevel ?? "info",
  ];
  // taskset execs Envoy, so the child's pid is Envoy's.
  const child = opts.cpus === undefined
    ? spawn(opts.bin, argv, { cwd: opts.cwd, stdio: ["ignore", fd, fd] })
    : spawn("taskset", ["-c", opts.cpus, opts.bin, ...argv], { cwd: opts.cwd, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  running.add(child);
  let exitCode: number | null | undefined;
  const exitedP = new Promise<void>((resolve) => child.once("exit", (code, signal) => { exitCode = code ?? (signal ? -1 : 0); running.delete(child); resolve(); }));
  child.once("error", () => { exitCode = -1; running.delete(child); });
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const stop = async () => {
    if (exitCode === undefined) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exitedP;
      clearTimeout(timer);
    }
  };
  const fail = async (why: string): Promise<never> => {
    await stop();
    throw new Error(`Envoy (${opts.bin}) did not become ready: ${why}\n--- Envoy log (${logFile}) ---\n${log().split("\n").slice(-60).join("\n")}`);
  };
  const until = Date.now() + (opts.readyTimeoutMs ?? 30000);
  let adminUrl = "";
  let ports = new Map<string, number>();
  for (;;) {
    if (exitCode !== undefined) return fail(`it exited with code ${exitCode}`);
    if (Date.now() > until) return fail("timed out");
    if (!adminUrl && existsSync(adminFile)) {
      const text = readFileSync(adminFile, "utf8").trim();
      if (text) adminUrl = `http://${text}`;
    }
    if (adminUrl) {
      try {
        const ready = await httpGet(`${adminUrl}/ready`);
        if (ready.status === 200) {
          const ls = JSON.parse((await httpGet(`${adminUrl}/listeners?format=json`)).body);
          ports = new Map((ls.listener_statuses ?? []).map((s: any) => [s.name, s.local_address?.socket_address?.port_value]));
          if ([...ports.values()].every((p) => typeof p === "number" && p > 0)) break;
        }
      } catch {
        // not answering yet
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid!, adminUrl, ports, log, logFile,
    exited: () => exitCode !== undefined,
    async stop() {
      await stop();
      rmSync(config, { force: true });
    },
  };
}
