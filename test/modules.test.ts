// The check no filter escapes: every built module must load in every Envoy the suite
// supports. Imports within what Envoy 1.28 (the oldest, smallest set) provides for the
// module's ABI, exactly one ABI marker, an allocator export, and the name section kept.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { providedImports, readModuleInfo } from "../runtime/host/src/index.js";
import { checkModule } from "../runtime/host/src/plugin.js";
import { modules } from "../scripts/build.mjs";

const dist = new URL("../dist/", import.meta.url).pathname;
const wasmFiles = [dist, join(dist, "fixtures")]
  .filter((d) => existsSync(d))
  .flatMap((d) => readdirSync(d).filter((f) => f.endsWith(".wasm")).map((f) => join(d, f)));

test("every module the build knows about was built", () => {
  const expected = modules().map((m) => m.out).sort();
  expect(expected.length).toBeGreaterThanOrEqual(2);
  for (const out of expected) expect(wasmFiles).toContain(out);
});

describe.each(wasmFiles.map((f) => [f.slice(dist.length), f]))("%s", (_name, file) => {
  const info = readModuleInfo(readFileSync(file));

  test("exports exactly one proxy_abi_version marker", () => {
    expect(info.exports.filter((e) => e.name.startsWith("proxy_abi_version_"))).toHaveLength(1);
  });

  test("imports only what Envoy 1.28+ provides for its ABI, with matching signatures", () => {
    const abi = checkModule(info, 28);
    const provided = providedImports(abi, 28);
    for (const imp of info.imports) expect(provided.has(`${imp.module}.${imp.name}`), `${imp.module}.${imp.name}`).toBe(true);
  });

  test("exports an allocator", () => {
    expect(info.exports.some((e) => e.name === "malloc" || e.name === "proxy_on_memory_allocate")).toBe(true);
  });

  test("keeps the name section (function names are the only crash breadcrumbs)", () => {
    expect(info.customSections).toContain("name");
  });

  test("names in the name section are short: no compiler path prefix, the SDK's entry points as sdk:", () => {
    const bytes = readFileSync(file).toString("latin1");
    expect(bytes).toContain("sdk:exports/proxy_on_context_create");
    for (const prefix of ["~lib/@solo-io/proxy-runtime/assembly/", "runtime/assembly/", "/assembly/"]) expect(bytes).not.toContain(prefix);
  });
});
