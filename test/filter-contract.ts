// The contract every filter's configuration keeps, shared by filters/*/test/schema.test.ts:
// config.schema.json and the filter agree (each example is valid and loads; each invalid
// configuration is refused by both), and the README's configuration table lists exactly the
// schema's top-level fields.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../runtime/host/src/index.js";
import { wasmPath } from "../runtime/host/test/helpers.js";

const root = new URL("..", import.meta.url).pathname;

export function configurationContract(filter: string, invalid: unknown[]): void {
  const schema = JSON.parse(readFileSync(join(root, "filters", filter, "config.schema.json"), "utf8"));
  const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
  const wasm = readFileSync(wasmPath(filter));

  function loads(config: unknown): boolean {
    // Node metadata DC: env-router's stamp example reads it, as a sidecar in a data centre would.
    const envoy = new Envoy({ workers: 1, node: { metadata: { DC: "hz-a" } } });
    try {
      envoy.addPlugin({ name: "n", rootId: filter, wasm, configuration: JSON.stringify(config) });
      return true;
    } catch (err) {
      if (err instanceof PluginLoadError) return false;
      throw err;
    }
  }

  describe("config.schema.json", () => {
    const examples: Array<[string, unknown]> = schema.examples.map((e: unknown) => [JSON.stringify(e), e]);
    test.each(examples)("example %s is valid and loads", (_t, example) => {
      expect(validate(example), JSON.stringify(validate.errors)).toBe(true);
      expect(loads(example)).toBe(true);
    });

    const invalidCases: Array<[string, unknown]> = invalid.map((c) => [JSON.stringify(c), c]);
    test.each(invalidCases)("%s is refused by the schema and by the filter", (_t, config) => {
      expect(validate(config)).toBe(false);
      expect(loads(config)).toBe(false);
    });
  });

  test("the README config table lists every schema property, and nothing else", () => {
    const readme = readFileSync(join(root, "filters", filter, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## What it emits"));
    const fields = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    expect(fields.sort()).toEqual(Object.keys(schema.properties).sort());
  });
}
