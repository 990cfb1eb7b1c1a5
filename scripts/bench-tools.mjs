// The tools `npm run bench:envoy` drives real Envoy with, each taken from a registry the project's
// machines reach and cached under .envoy/tools/ (git-ignored), never installed globally:
//   wrk     closed-loop load for throughput at saturation: WRK_BIN, `wrk` on PATH, or Debian's
//           wrk package and its LuaJIT library unpacked with `apt-get download` + `dpkg-deb -x`
//           (no root needed);
//   vegeta  open-loop load at a fixed rate, for latency percentiles without coordinated
//           omission: VEGETA_BIN, `vegeta` on PATH, or `go install` through the Go module proxy;
//   the Go proxy-wasm peer (bench/peers/header-normalizer-go), built with the installed Go for
//           GOOS=wasip1 GOARCH=wasm as a reactor (-buildmode=c-shared).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { root, cacheDir } from "./envoy.mjs";

export const toolsDir = join(cacheDir, "tools");
export const WRK_PACKAGES = ["wrk=4.1.0-3+b2", "libluajit2-5.1-2=2.1-20230119-1"];
export const VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0";

export class ToolUnavailable extends Error {}

function run(cmd, args, what, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 600000, ...opts });
  if (r.error) throw new ToolUnavailable(`${what}: ${cmd} did not run (${r.error.message})`);
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-12).join("\n");
    throw new ToolUnavailable(`${what} failed (exit ${r.status}):\n${out}`);
  }
  return r.stdout;
}

function onPath(name) {
  const r = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** A command to run a tool: its path and the environment it needs. */
function works(tool) {
  const r = spawnSync(tool.bin, tool.probe, { encoding: "utf8", env: { ...process.env, ...tool.env }, timeout: 30000 });
  return !r.error && (r.status === 0 || `${r.stdout}${r.stderr}`.includes(tool.expect));
}

/** wrk: { bin, env } (env carries LD_LIBRARY_PATH when wrk came from the unpacked Debian package). */
export function resolveWrk({ log = (line) => console.error(line) } = {}) {
  const probe = { probe: ["--version"], expect: "Copyright (C) 2012 Will Glozer" };
  const given = process.env.WRK_BIN ?? onPath("wrk");
  if (given) return { bin: given, env: {} };
  const dir = join(toolsDir, "wrk");
  const cached = { bin: join(dir, "usr", "bin", "wrk"), env: { LD_LIBRARY_PATH: join(dir, "usr", "lib", "x86_64-linux-gnu") }, ...probe };
  if (existsSync(cached.bin) && works(cached)) return { bin: cached.bin, env: cached.env };
  if (!onPath("apt-get") || !onPath("dpkg-deb")) {
    throw new ToolUnavailable("wrk is not on PATH and this machine has no apt-get/dpkg-deb to fetch Debian's package: install wrk, or set WRK_BIN");
  }
  mkdirSync(toolsDir, { recursive: true });
  const tmp = mkdtempSync(join(toolsDir, ".tmp-wrk-"));
  log(`bench: fetching ${WRK_PACKAGES.join(" ")} from Debian into ${relative(root, dir)}/ ...`);
  try {
    run("apt-get", ["download", ...WRK_PACKAGES], "apt-get download wrk", { cwd: tmp });
    const unpacked = join(tmp, "root");
    for (const deb of readdirSync(tmp).filter((f) => f.endsWith(".deb"))) run("dpkg-deb", ["-x", join(tmp, deb), unpacked], `dpkg-deb -x ${deb}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(unpacked, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!works(cached)) throw new ToolUnavailable(`the unpacked wrk (${cached.bin}) does not run`);
  return { bin: cached.bin, env: cached.env };
}

/** vegeta: { bin, env }. */
export function resolveVegeta({ log = (line) => console.error(line) } = {}) {
  const given = process.env.VEGETA_BIN ?? onPath("vegeta");
  if (given) return { bin: given, env: {} };
  const bin = join(toolsDir, "bin", "vegeta");
  if (existsSync(bin)) return { bin, env: {} };
  if (!onPath("go")) throw new ToolUnavailable("vegeta is not on PATH and there is no Go to build it: install Go, or set VEGETA_BIN");
  log(`bench: go install ${VEGETA_MODULE} into ${relative(root, join(toolsDir, "bin"))}/ ...`);
  run("go", ["install", VEGETA_MODULE], `go install ${VEGETA_MODULE}`, { env: { ...process.env, GOBIN: join(toolsDir, "bin"), CGO_ENABLED: "0" } });
  return { bin, env: {} };
}

function newestMtime(dir) {
  let t = 0;
  for (const name of readdirSync(dir)) t = Math.max(t, statSync(join(dir, name)).mtimeMs);
  return t;
}

/** Builds a Go proxy-wasm peer from bench/peers/<name> into .envoy/tools/peers/<name>.wasm (when its sources changed). */
export function buildGoPeer(name, { log = (line) => console.error(line) } = {}) {
  const src = join(root, "bench", "peers", name);
  const out = join(toolsDir, "peers", `${name}.wasm`);
  if (existsSync(out) && statSync(out).mtimeMs > newestMtime(src)) return out;
  if (!onPath("go")) throw new ToolUnavailable(`no Go on PATH to build bench/peers/${name}`);
  mkdirSync(join(toolsDir, "peers"), { recursive: true });
  log(`bench: building bench/peers/${name} with ${run("go", ["version"], "go version").trim()} (wasip1) ...`);
  run("go", ["build", "-buildmode=c-shared", "-o", out, "."], `go build bench/peers/${name}`,
    { cwd: src, env: { ...process.env, GOOS: "wasip1", GOARCH: "wasm", CGO_ENABLED: "0" } });
  return out;
}
