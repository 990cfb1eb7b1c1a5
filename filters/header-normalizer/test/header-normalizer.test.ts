// header-normalizer, the built module in the host (runtime/host).
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../../../runtime/host/src/index.js";
import type { RequestSpec } from "../../../runtime/host/src/index.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";

const wasm = readFileSync(wasmPath("header-normalizer"));

function normalizer(configuration: object | string = {}, workers = 1) {
  const envoy = new Envoy({ workers, logLevel: "info" });
  const plugin = envoy.addPlugin({
    name: "header-normalizer", rootId: "header-normalizer", vmId: "header-normalizer", wasm,
    configuration: typeof configuration === "string" ? configuration : JSON.stringify(configuration),
  });
  return { envoy, plugin, vm: () => plugin.workerVms[0]! };
}

const all = (headers: Array<[string, string]>, name: string) => headers.filter(([k]) => k === name).map(([, v]) => v);

describe("the Spring 415 case", () => {
  test("two Content-Type lines in, one application/json out, as the upstream sees it", async () => {
    const { envoy } = normalizer();
    const res = await envoy.request({
      method: "POST", path: "/orders", body: "{}",
      headers: [["Content-Type", "application/json"], ["Content-Type", "application/json"]],
    });
    expect(res.status).toBe(200);
    expect(all(res.upstream!.headers, "content-type")).toEqual(["application/json"]);
    expect(envoy.metric("header_normalizer.request.collapsed")).toBe(1);
  });

  test("without the filter the upstream gets the joined value that Spring rejects", async () => {
    const envoy = new Envoy({ workers: 1 });
    const res = await envoy.request({ method: "POST", body: "{}", headers: [["Content-Type", "application/json"], ["Content-Type", "application/json"]] });
    expect(all(res.upstream!.headers, "content-type")).toEqual(["application/json,application/json"]);
  });

  test("a quoted comma in a boundary is one value, left untouched", async () => {
    const { envoy, vm } = normalizer();
    const ct = `multipart/form-data; boundary="a,b"`;
    const writesBefore = vm().hostcallsByName.get("proxy_replace_header_map_value") ?? 0;
    const res = await envoy.request({ method: "POST", body: "x", headers: [["content-type", ct]] });
    expect(res.upstream!.header("content-type")).toBe(ct);
    expect(vm().hostcallsByName.get("proxy_replace_header_map_value") ?? 0).toBe(writesBefore);
  });
});

describe("one line is never split as if it were two", () => {
  test("content-type with an unquoted comma in its boundary reaches the upstream unchanged", async () => {
    const { envoy } = normalizer();
    const ct = "multipart/form-data; boundary=a,b";
    const res = await envoy.request({ method: "POST", body: "--a,b--", headers: [["content-type", ct]] });
    expect(res.status).toBe(200);
    expect(all(res.upstream!.headers, "content-type")).toEqual([ct]);
    expect(envoy.metric("header_normalizer.request.conflict_resolved")).toBe(0);
  });
});

describe("authorization: two credentials are refused by default", () => {
  test("two different Authorization lines (joined by Envoy) get 400, the upstream never sees them", async () => {
    const { envoy } = normalizer();
    const res = await envoy.request({ headers: [["Authorization", "Bearer aaa"], ["Authorization", "Bearer bbb"]] });
    expect(res.status).toBe(400);
    expect(res.body).toBe("header-normalizer: conflicting authorization values\n");
    expect(res.upstream).toBeNull();
  });
  test("two identical lines become one", async () => {
    const { envoy } = normalizer();
    const res = await envoy.request({ headers: [["Authorization", "Bearer aaa"], ["Authorization", "Bearer aaa"]] });
    expect(all(res.upstream!.headers, "authorization")).toEqual(["Bearer aaa"]);
  });
  test("one Digest credential passes unchanged", async () => {
    const { envoy } = normalizer();
    const digest = `Digest username="a", realm="b", nonce="c", uri="/", response="d"`;
    const res = await envoy.request({ headers: [["Authorization", digest]] });
    expect(all(res.upstream!.headers, "authorization")).toEqual([digest]);
  });
});

describe("conflicting values under each policy", () => {
  const conflicting: RequestSpec = { headers: [["x-tenant", "blue"], ["x-tenant", "green"]] };
  const rule = (onConflict: string) => ({ headers: [{ name: "x-tenant", on_conflict: onConflict }] });

  test("first", async () => {
    const { envoy } = normalizer(rule("first"));
    const res = await envoy.request(conflicting);
    expect(all(res.upstream!.headers, "x-tenant")).toEqual(["blue"]);
    expect(envoy.metric("header_normalizer.request.conflict_resolved")).toBe(1);
  });

  test("last", async () => {
    const { envoy } = normalizer(rule("last"));
    const res = await envoy.request(conflicting);
    expect(all(res.upstream!.headers, "x-tenant")).toEqual(["green"]);
  });

  test("reject: 400 with the reason, nothing forwarded", async () => {
    const { envoy } = normalizer(rule("reject"));
    const res = await envoy.request(conflicting);
    expect(res.status).toBe(400);
    expect(res.body).toBe("header-normalizer: conflicting x-tenant values\n");
    expect(res.details).toBe("header_normalizer_conflict");
    expect(res.upstream).toBeNull();
    expect(envoy.metric("header_normalizer.request.rejected")).toBe(1);
  });

  test("content-type conflicts resolve to the first value by default", async () => {
    const { envoy } = normalizer();
    const res = await envoy.request({ method: "POST", body: "x", headers: [["content-type", "application/json"], ["content-type", "text/plain"]] });
    expect(res.upstream!.header("content-type")).toBe("application/json");
  });

  test("conflicting Host values are rejected by default", async () => {
    const { envoy } = normalizer();
    const res = await envoy.request({ headers: [["host", "a.example"], ["host", "b.example"]] });
    expect(res.status).toBe(400);
    expect(res.body).toContain("conflicting :authority values");
  });

  test("conflicting Content-Length values are rejected; identical ones collapse", async () => {
    const { envoy } = normalizer();
    expect((await envoy.request({ method: "POST", body: "abc", headers: [["content-length", "3"], ["content-length", "4"]] })).status).toBe(400);
    const ok = await envoy.request({ method: "POST", body: "abc", headers: [["content-length", "3"], ["content-length", "3"]] });
    expect(ok.upstream!.header("content-length")).toBe("3");
  });
});

describe("response direction", () => {
  test("a duplicated Content-Type from the upstream reaches the client once", async () => {
    const { envoy } = normalizer();
    const res = await envoy.request({ upstream: () => ({ status: 200, headers: [["content-type", "application/json"], ["content-type", "application/json"]], body: "{}" }) });
    expect(all(res.headers, "content-type")).toEqual(["application/json"]);
    expect(envoy.metric("header_normalizer.response.collapsed")).toBe(1);
  });

  test("reject answers 502 with the reason", async () => {
    const { envoy } = normalizer({ headers: [{ name: "content-type", on_conflict: "reject" }] });
    const res = await envoy.request({ upstream: () => ({ status: 200, headers: [["content-type", "text/html"], ["content-type", "application/json"]], body: "x" }) });
    expect(res.status).toBe(502);
    expect(res.body).toBe("header-normalizer: conflicting content-type values\n");
  });

  test("set-cookie is never merged", async () => {
    const { envoy } = normalizer();
    const res = await envoy.request({ upstream: () => ({ status: 200, headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] }) });
    expect(all(res.headers, "set-cookie")).toEqual(["a=1", "b=2"]);
  });

  test("response normalisation can be turned off", async () => {
    const { envoy } = normalizer({ response: false });
    const res = await envoy.request({ upstream: () => ({ status: 200, headers: [["content-type", "a/b"], ["content-type", "a/b"]] }) });
    expect(all(res.headers, "content-type")).toEqual(["a/b,a/b"]);
  });
});

describe("aliases", () => {
  test("copy keeps the source and replaces the target", async () => {
    const { envoy } = normalizer({ aliases: [{ from: "x-user", to: "x-user-id", mode: "copy", direction: "request" }] });
    const res = await envoy.request({ headers: [["X-User", "alice"], ["x-user-id", "spoofed"]] });
    expect(res.upstream!.header("x-user")).toBe("alice");
    expect(all(res.upstream!.headers, "x-user-id")).toEqual(["alice"]);
    expect(envoy.metric("header_normalizer.request.alias_copied")).toBe(1);
  });

  test("rename moves every entry", async () => {
    const { envoy } = normalizer({ aliases: [{ from: "x-authtoken", to: "x-auth-token", mode: "rename" }] });
    const res = await envoy.request({ headers: [["x-authtoken", "t1"], ["x-authtoken", "t2"]] });
    expect(res.upstream!.header("x-authtoken")).toBeUndefined();
    expect(all(res.upstream!.headers, "x-auth-token")).toEqual(["t1", "t2"]);
  });
});

describe("dry run", () => {
  test("counts and logs what would change, changes nothing", async () => {
    const { envoy } = normalizer({ dry_run: true, headers: [{ name: "x-tenant", on_conflict: "reject" }] });
    const res = await envoy.request({ method: "POST", body: "x", headers: [["content-type", "a/b"], ["content-type", "a/b"], ["x-tenant", "1"], ["x-tenant", "2"]] });
    expect(res.status).toBe(200);
    expect(res.upstream!.header("content-type")).toBe("a/b,a/b");
    expect(all(res.upstream!.headers, "x-tenant")).toEqual(["1", "2"]);
    expect(envoy.metric("header_normalizer.request.collapsed")).toBe(1);
    expect(envoy.metric("header_normalizer.request.rejected")).toBe(1);
    const info = envoy.logsAt("info").join("\n");
    expect(info).toContain(`header-normalizer dry-run: would set request content-type to "a/b" (1 entries)`);
    expect(info).toContain("header-normalizer dry-run: would reject the request: conflicting x-tenant values");
  });
});

describe("duplicate Transfer-Encoding from the upstream", () => {
  const doubleTe = () => ({ status: 200, headers: [["transfer-encoding", "chunked"], ["Transfer-Encoding", "chunked"]] as Array<[string, string]>, body: "x", address: "10.1.2.3:8080" });

  test("the codec's 502 is counted, logged once with the upstream's name, and can be tagged", async () => {
    const { envoy } = normalizer({ diagnostic_header: "x-header-normalizer" });
    const res = await envoy.request({ clusterName: "outbound|8080||legacy.default.svc.cluster.local", upstream: doubleTe });
    expect(res.status).toBe(502);
    expect(res.header("x-header-normalizer")).toBe("upstream-protocol-error");
    await envoy.request({ clusterName: "outbound|8080||legacy.default.svc.cluster.local", upstream: doubleTe });
    expect(envoy.metric("header_normalizer.upstream_protocol_error")).toBe(2);
    const warns = envoy.logsAt("warn").filter((l) => l.includes("codec rejected"));
    expect(warns).toHaveLength(1);
    // upstream.address stays readable after the codec's rejection (as on Envoy 1.36 and 1.40).
    expect(warns[0]).toContain("upstream outbound|8080||legacy.default.svc.cluster.local (10.1.2.3:8080) sent a response Envoy's HTTP/1 codec rejected (upstream_reset_before_response_started{protocol_error})");
  });

  test("an application's own 502 is not mistaken for it", async () => {
    const { envoy } = normalizer({ diagnostic_header: "x-header-normalizer" });
    const res = await envoy.request({ upstream: () => ({ status: 502, body: "app down" }) });
    expect(res.header("x-header-normalizer")).toBeUndefined();
    expect(envoy.metric("header_normalizer.upstream_protocol_error")).toBe(0);
  });
});

describe("cost on a clean request", () => {
  test("one read per direction, no write", async () => {
    const { envoy, vm } = normalizer();
    const headers: Array<[string, string]> = Array.from({ length: 20 }, (_, i) => [`x-h${i}`, `value-${i}`]);
    await envoy.request({ headers });
    const before = new Map(vm().hostcallsByName);
    const total = vm().hostcalls;
    await envoy.request({ headers, upstream: () => ({ status: 200, headers: [["content-type", "text/plain"]], body: "ok" }) });
    expect(vm().hostcalls - total).toBe(2);
    expect((vm().hostcallsByName.get("proxy_get_header_map_pairs") ?? 0) - (before.get("proxy_get_header_map_pairs") ?? 0)).toBe(2);
  });
});

describe("bad input never traps", () => {
  const cases: Array<[string, RequestSpec]> = [
    ["CR/LF/NUL in values", { headers: [["content-type", "a\r\nx: y"], ["content-type", "a\r\nx: y"], ["x-nul", "a\u0000b"]] }],
    ["a 64 KiB value", { headers: [["content-type", "a/b; p=" + "x".repeat(65536)], ["content-type", "c/d"]] }],
    ["a 64 KiB list of commas", { headers: [["content-type", ",".repeat(65536)]] }],
    ["500 headers", { headers: Array.from({ length: 500 }, (_, i): [string, string] => [i % 2 ? "content-type" : `x-${i}`, "a/b"]) }],
    ["invalid UTF-8", { headers: [["content-type", new Uint8Array([0x61, 0xff, 0xfe, 0x2c, 0x61, 0xff, 0xfe])], ["x-bin", new Uint8Array([0xc3, 0x28])]] }],
    ["unbalanced quotes", { headers: [["content-type", `multipart/form-data; boundary="abc, text/plain`]] }],
  ];

  test.each(cases)("%s", async (_name, spec) => {
    const { envoy, vm } = normalizer();
    for (let i = 0; i < 20; i++) {
      const res = await envoy.request({ method: "POST", body: "x", ...spec });
      expect(res.status === 200 || res.status === 400).toBe(true);
    }
    expect(vm().failed).toBe(false);
    expect(vm().memoryPages).toBeLessThanOrEqual(64);
  });

  test("a value we would have to rewrite with invalid UTF-8 is left byte for byte", async () => {
    const { envoy } = normalizer();
    const raw = new Uint8Array([0x61, 0xff, 0x2c, 0x61, 0xff]);
    const res = await envoy.request({ method: "POST", body: "x", headers: [["content-type", raw]] });
    const forwarded = res.upstream!.rawHeaders.filter(([k]) => k === "content-type").map(([, v]) => Buffer.from(v, "latin1"));
    expect(forwarded).toEqual([Buffer.from(raw)]);
    expect(envoy.metric("header_normalizer.request.malformed_skipped")).toBe(1);
  });
});

describe("configuration", () => {
  test("{} works, and so does an empty configuration", () => {
    expect(() => normalizer({})).not.toThrow();
    expect(() => normalizer("")).not.toThrow();
  });

  test("a bad configuration is rejected with one critical line naming the field", () => {
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({ name: "n", rootId: "header-normalizer", wasm, configuration: `{"headers": [{"name": "x", "on_conflict": "newest"}]}` }))
      .toThrow(PluginLoadError);
    const critical = envoy.logsAt("critical");
    expect(critical.filter((l) => l.startsWith("wasm log"))).toEqual([
      `wasm log header-normalizer: header-normalizer: headers[0].on_conflict: must be one of first, last, reject, got "newest"`,
    ]);
  });

  test("stamp_build adds the version that package.json declares", async () => {
    const { envoy } = normalizer({ stamp_build: true });
    const res = await envoy.request({});
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
    expect(res.header("x-header-normalizer-build")).toBe(pkg.version);
  });
});
