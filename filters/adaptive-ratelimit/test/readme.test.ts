// The README's configuration table must list exactly the fields of config.schema.json.
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";

test("the README config table lists every schema property, and nothing else", () => {
  const schema = JSON.parse(readFileSync(new URL("../config.schema.json", import.meta.url), "utf8"));
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## What it emits"));
  const fields = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  expect(fields.sort()).toEqual(Object.keys(schema.properties).sort());
});
