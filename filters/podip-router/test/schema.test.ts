// config.schema.json and the filter must agree: what the schema accepts loads, what it
// refuses is refused at configure time.
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../../../runtime/host/src/index.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";

const schema = JSON.parse(readFileSync(new URL("../config.schema.json", import.meta.url), "utf8"));
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
const wasm = readFileSync(wasmPath("podip-router"));

function loads(config: unknown): boolean {
  const envoy = new Envoy({ workers: 1 });
  try {
    envoy.addPlugin({ name: "n", rootId: "podip-router", wasm, configuration: JSON.stringify(config) });
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

  const ok = { allowed_cidrs: ["10.8.0.0/16"], allowed_ports: [8080], authorization: { header: "x-ops" } };
  const invalid: unknown[] = [
    {},
    { ...ok, allowed_cidrs: [] },
    { ...ok, allowed_ports: [] },
    { ...ok, allowed_ports: [70000] },
    { ...ok, authorization: {} },
    { ...ok, authorization: { principals: ["cluster.local/ns/a"] } },
    { ...ok, hand_off: "direct" },
    { ...ok, path_prefix: "/_p%6fd/" },
    { ...ok, unknown: 1 },
  ];
  const invalidCases: Array<[string, unknown]> = invalid.map((c) => [JSON.stringify(c), c]);
  test.each(invalidCases)("%s is refused by the schema and by the filter", (_t, config) => {
    expect(validate(config)).toBe(false);
    expect(loads(config)).toBe(false);
  });
});
