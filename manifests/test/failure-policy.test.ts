// Every shipped manifest states its failure policy on purpose, and it is the one the filter's
// README argues for. What each policy then does to the trapping request and to later ones is
// pinned in runtime/host/test/traps.test.ts (host reference section 1.9).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;
const FILTERS = ["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router"];

type Stance = "open" | "closed";

/** The README's stance: a "**Failure policy: fail open|closed**" line followed by its reason. */
function readmeStance(filter: string): { stance: Stance; reason: string } {
  const text = readFileSync(join(root, "filters", filter, "README.md"), "utf8");
  const m = /\*\*Failure policy: fail (open|closed)\b[^*]*\*\*([^\n]*(?:\n(?![-#|\n])[^\n]*)*)/.exec(text);
  if (!m) throw new Error(`${filter}/README.md states no failure policy`);
  return { stance: m[1] as Stance, reason: m[2].trim() };
}

interface Found { file: string; where: string; stance: Stance | "unset" }

/** Every wasm plugin config (Envoy's PluginConfig: root_id + vm_config) and every WasmPlugin in the rendered YAML. */
function shipped(): Map<string, Found[]> {
  const byFilter = new Map<string, Found[]>(FILTERS.map((f) => [f, []]));
  const visit = (node: unknown, file: string): void => {
    if (Array.isArray(node)) { node.forEach((n) => visit(n, file)); return; }
    if (node === null || typeof node !== "object") return;
    const o = node as Record<string, any>;
    if (typeof o.root_id === "string" && o.vm_config) {
      const stance = o.fail_open === true ? "open" : o.fail_open === false ? "closed"
        : o.failure_policy === "FAIL_OPEN" ? "open" : o.failure_policy === "FAIL_CLOSED" || o.failure_policy === "FAIL_RELOAD" ? "closed" : "unset";
      byFilter.get(o.root_id)?.push({ file, where: `plugin ${o.name ?? o.root_id}`, stance });
    }
    if (o.kind === "WasmPlugin") {
      const name = o.spec?.pluginName ?? o.metadata?.name;
      const stance = o.spec?.failStrategy === "FAIL_OPEN" ? "open" : o.spec?.failStrategy === "FAIL_CLOSE" ? "closed" : "unset";
      byFilter.get(name)?.push({ file, where: `WasmPlugin ${o.metadata?.namespace}/${o.metadata?.name}`, stance });
    }
    for (const v of Object.values(o)) visit(v, file);
  };
  const dir = join(root, "manifests");
  for (const sub of readdirSync(dir, { withFileTypes: true })) {
    if (!sub.isDirectory() || ["src", "lib", "test"].includes(sub.name)) continue;
    for (const name of readdirSync(join(dir, sub.name))) {
      if (!name.endsWith(".yaml")) continue;
      const file = `manifests/${sub.name}/${name}`;
      for (const doc of parseAllDocuments(readFileSync(join(root, file), "utf8"))) visit(doc.toJS(), file);
    }
  }
  return byFilter;
}

describe("failure policy: deliberate, and the one each README argues for", () => {
  const found = shipped();
  for (const filter of FILTERS) {
    it(`${filter}: README states a stance with a reason; every shipped manifest sets exactly that`, () => {
      const { stance, reason } = readmeStance(filter);
      expect(reason.length, "the README gives the reason").toBeGreaterThan(40);
      const list = found.get(filter)!;
      // Shipped as an EnvoyFilter (Istio), a WasmPlugin and in the standalone bootstrap.
      expect(list.some((f) => f.file.startsWith(`manifests/${filter}/`) && f.where.startsWith("plugin")), "EnvoyFilter").toBe(true);
      expect(list.some((f) => f.where.startsWith("WasmPlugin")), "WasmPlugin").toBe(true);
      expect(list.some((f) => f.file.startsWith("manifests/envoy/")), "standalone bootstrap").toBe(true);
      const wrong = list.filter((f) => f.stance !== stance).map((f) => `${f.file}: ${f.where} is ${f.stance}`);
      expect(wrong, `README says fail ${stance}`).toEqual([]);
    });
  }

  it("the stances are the ones argued in the docs: only podip-router fails closed", () => {
    expect(FILTERS.map((f) => `${f}: ${readmeStance(f).stance}`)).toEqual([
      "adaptive-ratelimit: open", "env-router: open", "header-normalizer: open", "podip-router: closed",
    ]);
  });
});
