// Fuzz regressions: each case the fuzzer (or a user) found, kept as a test forever.
//
// To add one: `npm run fuzz` prints the shrunk counterexample (a FuzzRequest, or a
// configuration text) and the seed. Paste the request into REQUESTS (or the text into CONFIGS)
// with the filter, the seed and a line on what went wrong; fix the filter; the case stays here.
// Raw bytes (invalid UTF-8) are written as Uint8Array.
//
// The fuzzer has not found a trap yet (see docs/reliability.md): the cases below are hand-picked
// edges from the fuzzing work, kept so the procedure has a home and these stay covered.
import { describe, expect, it } from "vitest";
import type { FuzzRequest } from "./arbitraries.js";
import { Envoy } from "../runtime/host/src/index.js";
import { FilterName, Sidecar, checkConfig, wasmOf } from "./properties.js";

function accepted(filter: FilterName, text: string): boolean {
  try {
    new Envoy({ workers: 1, logLevel: "critical" }).addPlugin({ name: filter, rootId: filter, wasm: wasmOf(filter), configuration: text });
    return true;
  } catch {
    return false;
  }
}

const ok = { status: 200, headers: [] as Array<[string, string]>, reset: false };
const base = { method: "GET", path: "/", authority: "a.example.com", headers: [], response: ok, worker: 0, waitMs: 0 };

/** Requests that broke (or nearly broke) a filter, replayed on a sidecar with schema example `config`. */
const REQUESTS: Array<{ filter: FilterName; config: number; why: string; requests: FuzzRequest[] }> = [
  {
    filter: "header-normalizer", config: 0, why: "duplicate Content-Type where one value is invalid UTF-8",
    requests: [{ ...base, method: "POST", headers: [["content-type", "application/json"], ["content-type", new Uint8Array([0x61, 0xff, 0xfe, 0x2f, 0x6a])]] }],
  },
  {
    filter: "podip-router", config: 1, why: "pod path with an IPv6 zone id and a port beyond 65535",
    requests: [{ ...base, path: "/_pod/[fe80::1%25eth0]:99999/x", headers: [["x-ops-authenticated", "a"]] }],
  },
  {
    filter: "env-router", config: 4, why: "baggage of 1,000 members, one of them the env key, empty and duplicated",
    requests: [{ ...base, headers: [["baggage", Array.from({ length: 1000 }, (_, i) => (i % 100 === 0 ? "env=" : `k${i}=v`)).join(",")]] }],
  },
  {
    filter: "adaptive-ratelimit", config: 1, why: "upstream reset on every stream while the control step runs, across workers",
    requests: Array.from({ length: 30 }, (_, i) => ({ ...base, method: "POST", path: "/checkout/x", worker: i % 3, waitMs: 150, response: { ...ok, status: 0, reset: true } })),
  },
];

/** Configuration texts that once broke configure (or were close), with the filter. */
const CONFIGS: Array<{ filter: FilterName; text: string; why: string }> = [
  { filter: "adaptive-ratelimit", text: "{\"rules\":[{\"name\":\"a\",\"controller\":{\"signal\":\"latency\",\"setpoint_ms\":1e309}}]}", why: "a number that overflows to Infinity" },
  // Both were accepted and silently unused until this file was written: a key that is not a
  // lowercase DNS name can never match an authority.
  { filter: "env-router", text: "{\"services\":{\"\\u0000\":[\"default\"]}}", why: "NUL as a service name" },
  { filter: "env-router", text: "{\"services\":{\"Reviews\":[\"default\",\"feature-x\"]}}", why: "an uppercase service name" },
  { filter: "podip-router", text: "{\"allowed_cidrs\":[\"10.8.0.0/33\"],\"allowed_ports\":[8080],\"authorization\":{\"header\":\"x\"}}", why: "prefix length past 32" },
  { filter: "header-normalizer", text: "[".repeat(5000), why: "deeply nested, unterminated JSON" },
  // Schema-valid (47 items) but 65 rules with the 18 built-in ones: the filter's limit, documented in the schema.
  { filter: "header-normalizer", text: JSON.stringify({ headers: Array.from({ length: 47 }, (_, n) => ({ name: `x-rule-${n}` })) }), why: "more than 64 rules counting the built-in ones" },
];

describe("fuzz regressions", () => {
  for (const c of REQUESTS) {
    it(`${c.filter}: ${c.why}`, async () => {
      const sidecar = new Sidecar(c.filter, c.config);
      for (const r of c.requests) expect(await sidecar.send(r)).toBe("");
    });
  }
  for (const c of CONFIGS) {
    it(`${c.filter} configuration: ${c.why}: rejected cleanly`, () => {
      expect(checkConfig(c.filter, c.text)).toBe("");
      expect(accepted(c.filter, c.text)).toBe(false);
    });
  }
});
