// Real Envoy judges every Envoy configuration the suite ships: each standalone bootstrap in
// manifests/envoy/, and each EnvoyFilter's patches rendered into a bootstrap the way istiod would
// apply them, pass `envoy --mode validate` on every supported version. Validation builds the
// filters, so each wasm filter's on_configure runs on its shipped configuration inside Envoy.
// Broken fixtures show that the check fails: an unknown field, and a configuration a filter refuses.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, test } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { envoyFilterBootstrap } from "../lib/envoyfilter-bootstrap.js";

const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "validate-"));
let n = 0;

function validate(bin: string, doc: Record<string, unknown>): Promise<{ ok: boolean; out: string }> {
  const file = join(dir, `config-${n++}.yaml`);
  writeFileSync(file, stringify(doc, { lineWidth: 0 }));
  return new Promise((resolve) => {
    const child = spawn(bin, ["--mode", "validate", "-c", file, "--use-dynamic-base-id", "-l", "warning"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c) => { out += c; });
    child.stderr.on("data", (c) => { out += c; });
    child.on("close", (code) => resolve({ ok: code === 0 && out.includes(" OK"), out }));
  });
}

const bootstraps = readdirSync(join(root, "manifests/envoy")).filter((f) => f.endsWith(".yaml")).sort()
  .map((f) => [`manifests/envoy/${f}`, parse(readFileSync(join(root, "manifests/envoy", f), "utf8"))] as [string, any]);
const envoyFilters = readdirSync(join(root, "manifests"), { withFileTypes: true }).filter((d) => d.isDirectory() && !["envoy", "lib", "src", "test"].includes(d.name))
  .flatMap((d) => readdirSync(join(root, "manifests", d.name)).filter((f) => f.endsWith(".yaml")).map((f) => `manifests/${d.name}/${f}`))
  .sort()
  .flatMap((file) => parseAllDocuments(readFileSync(join(root, file), "utf8")).map((d) => d.toJS()).filter((d: any) => d?.kind === "EnvoyFilter")
    .map((d: any) => [`${file} EnvoyFilter ${d.metadata.name}`, d] as [string, any]));

test("the suite ships standalone bootstraps and EnvoyFilters to validate", () => {
  expect(bootstraps.length).toBeGreaterThanOrEqual(5);
  expect(envoyFilters.length).toBeGreaterThanOrEqual(8);
});

describe.each(inject("envoys"))("Envoy $version --mode validate", ({ bin }) => {
  test.each(bootstraps)("%s", async (_name, doc) => {
    const r = await validate(bin, doc);
    expect(r.ok, r.out).toBe(true);
  });
  test.each(envoyFilters)("%s, patches applied to a bootstrap", async (_name, ef) => {
    const r = await validate(bin, envoyFilterBootstrap(ef));
    expect(r.ok, r.out).toBe(true);
  });

  test("broken fixture: an unknown field is refused", async () => {
    const doc = structuredClone(bootstraps.find(([f]) => f.endsWith("/envoy.yaml"))![1]);
    doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefixx = "typo";
    const r = await validate(bin, doc);
    expect(r.ok).toBe(false);
    expect(r.out).toContain("stat_prefixx");
  });
  test("broken fixture: a filter configuration that the module refuses fails validation", async () => {
    const doc = structuredClone(bootstraps.find(([f]) => f.endsWith("/envoy.yaml"))![1]);
    const hcm = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const podip = hcm.http_filters.find((f: any) => f.name === "podip-router").typed_config.config;
    podip.configuration.value = JSON.stringify({ ...JSON.parse(podip.configuration.value), allowed_cidrs: ["not-a-cidr"] });
    const r = await validate(bin, doc);
    expect(r.ok).toBe(false);
    expect(r.out).toContain("allowed_cidrs");
  });
});
