// Header maps: reference sections 2.7 (call semantics, availability, route cache) and 3.
import { describe, expect, test } from "vitest";
import { Envoy, HeaderMap, inlineSets } from "../src/index.js";
import { withFixture } from "./helpers.js";

const action = (a: string): [string, string] => ["x-fixture-action", a];

describe("HeaderMap as Envoy keeps it (section 3)", () => {
  const inline = inlineSets();
  test("keys are lowercased and host is :authority", () => {
    const m = new HeaderMap(inline.request, [["Host", "a.example"], ["X-Foo", "1"]]);
    expect(m.get(":authority")).toBe("a.example");
    expect(m.get("host")).toBe("a.example");
    expect(m.get("x-foo")).toBe("1");
    expect(m.pairs()).toEqual([[":authority", "a.example"], ["x-foo", "1"]]);
  });

  test("inline headers join repeats with a comma; other repeats stay separate entries", () => {
    const m = new HeaderMap(inline.request, [["content-type", "application/json"], ["content-type", "application/json"], ["x-a", "1"], ["x-a", "2"]]);
    expect(m.getAll("content-type")).toEqual(["application/json,application/json"]);
    expect(m.getAll("x-a")).toEqual(["1", "2"]);
    expect(m.get("x-a")).toBe("1");
  });

  test("set-cookie is never joined; transfer-encoding is (request and response)", () => {
    const resp = new HeaderMap(inline.response, [["set-cookie", "a=1"], ["set-cookie", "b=2"], ["transfer-encoding", "chunked"], ["transfer-encoding", "chunked"]]);
    expect(resp.getAll("set-cookie")).toEqual(["a=1", "b=2"]);
    expect(resp.getAll("transfer-encoding")).toEqual(["chunked,chunked"]);
  });

  test("whether a header is inline depends on the map: user-agent joins in requests only", () => {
    const req = new HeaderMap(inline.request, [["user-agent", "a"], ["user-agent", "b"]]);
    const resp = new HeaderMap(inline.response, [["user-agent", "a"], ["user-agent", "b"]]);
    expect(req.getAll("user-agent")).toEqual(["a,b"]);
    expect(resp.getAll("user-agent")).toEqual(["a", "b"]);
  });

  test("the official build's custom inline headers (authorization) join; without them they stay separate", () => {
    expect(new HeaderMap(inlineSets().request, [["authorization", "a"], ["authorization", "b"]]).size).toBe(1);
    expect(new HeaderMap(inlineSets({ officialBuild: false }).request, [["authorization", "a"], ["authorization", "b"]]).size).toBe(2);
  });

  test("pseudo-headers iterate first; replace moves a header to the end of its group", () => {
    const m = new HeaderMap(inline.request, [["x-a", "1"], [":path", "/"], ["x-b", "2"], [":method", "GET"]]);
    m.replace("x-a", "3");
    expect(m.pairs()).toEqual([[":path", "/"], [":method", "GET"], ["x-b", "2"], ["x-a", "3"]]);
  });

  test("byteSize counts name and value bytes", () => {
    expect(new HeaderMap(inline.request, [["ab", "cde"], ["f", ""]]).byteSize()).toBe(6);
  });
});

describe("header hostcalls through the fixture (section 2.7)", () => {
  test("get returns the first entry only; pairs lists every entry; size is in bytes", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ path: "/p", headers: [action("pairs"), ["x-dup", "1"], ["x-dup", "2"]] });
    const up = res.upstream!;
    expect(up.header("x-fixture-first")).toBe("1");
    // 4 pseudo-headers + x-fixture-action + 2 x-dup + x-fixture-count + x-fixture-eos.
    expect(up.header("x-fixture-pairs")).toBe("9");
    const bytesBefore = [[":authority", "example.com"], [":path", "/p"], [":method", "GET"], [":scheme", "http"], ["x-fixture-action", "pairs"],
      ["x-dup", "1"], ["x-dup", "2"], ["x-fixture-count", "7"], ["x-fixture-eos", "1"], ["x-fixture-pairs", "9"], ["x-fixture-first", "1"]]
      .reduce((n, [k, v]) => n + k.length + v.length, 0);
    expect(up.header("x-fixture-bytes")).toBe(String(bytesBefore));
  });

  test("duplicate Content-Type lines arrive joined, as Envoy's HTTP/1 codec stores them", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ method: "POST", headers: [["Content-Type", "application/json"], ["Content-Type", "application/json"]], body: "{}" });
    expect(res.upstream!.headers.filter(([k]) => k === "content-type")).toEqual([["content-type", "application/json,application/json"]]);
  });

  test("add joins inline headers and appends others; remove drops every entry", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ headers: [action("add-remove"), ["content-type", "text/plain"], ["x-remove-me", "1"], ["x-remove-me", "2"]] });
    const up = res.upstream!;
    expect(up.headers.filter(([k]) => k === "x-added").map(([, v]) => v)).toEqual(["one", "two"]);
    expect(up.header("content-type")).toBe("text/plain,text/extra");
    expect(up.header("x-remove-me")).toBeUndefined();
  });

  test("set_header_map_pairs replaces the whole map, lowercasing keys", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ path: "/orig", headers: [action("set-pairs"), ["x-gone", "1"]] });
    expect(res.upstream!.headers).toEqual([[":method", "GET"], [":path", "/replaced"], [":authority", "replaced.example"], ["x-replaced", "yes"]]);
  });

  test("a response header cannot be added while the request is decoded: BadArgument", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ headers: [action("response-in-request")] });
    expect(res.upstream!.header("x-fixture-rc")).toBe("2");
    expect(res.header("x-too-early")).toBeUndefined();
  });

  test("request headers are unreadable after Continue: NotFound for the SDK in response callbacks, no trap", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ path: "/late", headers: [action("late-read")] });
    expect(res.status).toBe(200);
    expect(res.header("x-fixture-late")).toBe("<absent>");
    expect(res.header("x-fixture-late-property")).toBe("<absent>");
  });

  test("request headers are readable again, read-only, in on_log", async () => {
    const { envoy } = withFixture({ workers: 1 });
    await envoy.request({ path: "/logged", headers: [action("log-read")] });
    expect(envoy.logsAt("info")).toContain("wasm log fixture-plugin fixture vm1: on_log path=/logged status=200");
  });

  test("request-header mutations clear the route cache for ABI 0.2.x modules", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({});
    expect(res.routeCacheClears).toBeGreaterThan(0);
  });
});

test("the inline registry can be extended, as bootstrap inline_headers does", () => {
  const envoy = new Envoy({ inline: { extra: { request: ["x-custom"] } } });
  expect(new HeaderMap(envoy.inline.request, [["x-custom", "a"], ["x-custom", "b"]]).getAll("x-custom")).toEqual(["a,b"]);
});
