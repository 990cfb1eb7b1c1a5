// A foreign module: the Hello World filter of @solo-io/proxy-runtime's README, built with the
// suite's toolchain. Its README says it adds `hello: world!` to every response, or
// `hello: <configuration>` when a configuration is given.
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { Envoy } from "../src/index.js";
import { wasmPath } from "./helpers.js";

const wasm = readFileSync(wasmPath("sdk-readme"));

test("adds hello: world! with no configuration", async () => {
  const envoy = new Envoy();
  envoy.addPlugin({ name: "add_header", rootId: "add_header", wasm });
  const res = await envoy.request({});
  expect(res.status).toBe(200);
  expect(res.header("hello")).toBe("world!");
});

test("adds hello: <configuration> when configured", async () => {
  const envoy = new Envoy();
  envoy.addPlugin({ name: "add_header", rootId: "add_header", wasm, configuration: "what ever you want" });
  const res = await envoy.request({});
  expect(res.header("hello")).toBe("what ever you want");
});
