// config.schema.json and the filter must agree: what the schema accepts loads, what it
// refuses is refused at configure time.
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../../../runtime/host/src/index.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";

const schema = JSON.parse(readFileSync(new URL("../config.schema.json", import.meta.url), "utf8"));
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
const wasm = readFileSync(wasmPath("adaptive-ratelimit"));

function loads(config: unknown): boolean {
  const envoy = new Envoy({ workers: 1 });
  try {
    envoy.addPlugin({ name: "n", rootId: "adaptive-ratelimit", wasm, configuration: JSON.stringify(config) });
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

  const rule = { name: "api", controller: { signal: "latency", setpoint_ms: 200 } };
  const invalid: unknown[] = [
    {},
    { rules: [] },
    { rules: [{ ...rule, name: "API" }] },
    { rules: [{ ...rule, controller: { signal: "cpu" } }] },
    { rules: [{ ...rule, controller: { ...rule.controller, kp: -1 } }] },
    { rules: [{ ...rule, controller: { ...rule.controller, interval_ms: 0 } }] },
    { rules: [rule], reject_status: 200 },
    { rules: [rule], classes: [] },
    { rules: [rule], unknown: true },
  ];
  const invalidCases: Array<[string, unknown]> = invalid.map((c) => [JSON.stringify(c), c]);
  test.each(invalidCases)("%s is refused by the schema and by the filter", (_t, config) => {
    expect(validate(config)).toBe(false);
    expect(loads(config)).toBe(false);
  });
});
