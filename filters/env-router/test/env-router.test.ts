// env-router, the built module in the host: the three-hop matrix and the rest of the issue.
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../../../runtime/host/src/index.js";
import { Mesh, caller, traceparent, wasm } from "./mesh.js";

/** client -> a -> b -> c, with the given envs per service and app propagation. */
function threeHops(envs: { a: string[]; b: string[]; c: string[] }, propagates = { tag: true, trace: true }, config: object = {}) {
  const mesh = new Mesh(config);
  for (const env of envs.a) mesh.add("a", env, caller(mesh, "b", propagates));
  for (const env of envs.b) mesh.add("b", env, caller(mesh, "c", propagates));
  for (const env of envs.c) mesh.add("c", env, caller(mesh, null, propagates));
  const client = mesh.add("client", "default", caller(mesh, null, propagates));
  mesh.push();
  return { mesh, client };
}

describe("the three rules", () => {
  test("A(E) -> B(default, E missing) -> C(E): the call returns to E", async () => {
    const { mesh, client } = threeHops({ a: ["default", "feature-x"], b: ["default"], c: ["default", "feature-x"] });
    const res = await mesh.call(client, "a", [["x-env", "feature-x"], ["traceparent", traceparent()]]);
    expect(res.status).toBe(200);
    expect(mesh.served).toEqual(["a@feature-x", "b@default", "c@feature-x"]);
    expect(res.header("x-env-requested")).toBe("feature-x");
    expect(res.header("x-env-served")).toBe("feature-x");
  });

  test("E missing at the first hop", async () => {
    const { mesh, client } = threeHops({ a: ["default"], b: ["default"], c: ["default", "feature-x"] });
    const res = await mesh.call(client, "a", [["x-env", "feature-x"]]);
    expect(mesh.served).toEqual(["a@default", "b@default", "c@feature-x"]);
    expect(res.header("x-env-served")).toBe("default");
    expect(res.header("x-env-fallback-step")).toBe("1");
  });

  test("a nested chain: feature-x.team-a -> team-a -> default", async () => {
    const { mesh, client } = threeHops({ a: ["default", "team-a"], b: ["default", "feature-x.team-a"], c: ["default"] });
    await mesh.call(client, "a", [["x-env", "feature-x.team-a"]]);
    expect(mesh.served).toEqual(["a@team-a", "b@feature-x.team-a", "c@default"]);
  });

  test("an explicit fallback chain replaces the hierarchy", async () => {
    const { mesh, client } = threeHops({ a: ["default", "staging"], b: ["default"], c: ["default"] }, { tag: true, trace: true }, { fallbacks: { "feature-y": ["staging"] } });
    await mesh.call(client, "a", [["x-env", "feature-y"]]);
    expect(mesh.served[0]).toBe("a@staging");
  });

  test("the origin env is never rewritten by a hop that fell back", async () => {
    const { mesh, client } = threeHops({ a: ["default"], b: ["default"], c: ["default"] });
    const seen: string[] = [];
    const c = mesh.pods.find((p) => p.service === "c")!;
    c.app = async (_pod, req) => { seen.push(req.header("x-env") ?? "<none>"); return { status: 200 }; };
    await mesh.call(client, "a", [["x-env", "feature-x"]]);
    expect(seen).toEqual(["feature-x"]);
  });

  test("untagged traffic goes to default and a client-sent route header cannot steer it", async () => {
    const { mesh, client } = threeHops({ a: ["default", "feature-x"], b: ["default"], c: ["default"] });
    await mesh.call(client, "a", [["x-env-route", "feature-x"]]);
    expect(mesh.served[0]).toBe("a@default");
    expect(client.envoy.metric("env_router.untagged")).toBe(1);
  });
});

describe("carriers", () => {
  test("the tag only in baggage, apps forwarding only baggage", async () => {
    const { mesh, client } = threeHops({ a: ["default", "feature-x"], b: ["default"], c: ["default", "feature-x"] }, { baggage: true } as never);
    await mesh.call(client, "a", [["baggage", "userId=alice,env=feature-x;ttl=3,other=1"]]);
    expect(mesh.served).toEqual(["a@feature-x", "b@default", "c@feature-x"]);
  });

  test("a cookie, for browsers and third-party callbacks", async () => {
    const { mesh, client } = threeHops({ a: ["default", "feature-x"], b: ["default"], c: ["default"] });
    await mesh.call(client, "a", [["cookie", "session=1; env=feature-x"]]);
    expect(mesh.served[0]).toBe("a@feature-x");
  });

  test("write_baggage adds the member for apps that forward baggage only", async () => {
    const { mesh, client } = threeHops({ a: ["default", "feature-x"], b: ["default"], c: ["default", "feature-x"] }, { baggage: true } as never,
      { tag: { write_baggage: true } });
    await mesh.call(client, "a", [["x-env", "feature-x"], ["baggage", "userId=alice"]]);
    expect(mesh.served).toEqual(["a@feature-x", "b@default", "c@feature-x"]);
  });

  test("tag lost by the app, recovered by trace id at the next outbound hop", async () => {
    const { mesh, client } = threeHops({ a: ["default", "feature-x"], b: ["default"], c: ["default", "feature-x"] }, { trace: true } as never);
    const res = await mesh.call(client, "a", [["x-env", "feature-x"], ["traceparent", traceparent()]]);
    expect(res.status).toBe(200);
    expect(mesh.served).toEqual(["a@feature-x", "b@default", "c@feature-x"]);
    const b = mesh.pods.find((p) => p.service === "b")!;
    expect(b.envoy.metric("env_router.correlated")).toBe(1);
  });

  test("without propagation or a known trace id, later hops fall to default", async () => {
    const { mesh, client } = threeHops({ a: ["default", "feature-x"], b: ["default"], c: ["default", "feature-x"] }, {} as never);
    await mesh.call(client, "a", [["x-env", "feature-x"]]);
    expect(mesh.served).toEqual(["a@feature-x", "b@default", "c@default"]);
  });
});

describe("gateway mode", () => {
  function gateway(trust: object) {
    const mesh = new Mesh();
    mesh.add("a", "default", caller(mesh, null, {}));
    mesh.add("a", "feature-x", caller(mesh, null, {}));
    const gw = mesh.add("gateway", "default", caller(mesh, null, {}));
    mesh.push();
    gw.envoy.removePlugin(gw.outbound);
    const plugin = gw.envoy.addPlugin({
      name: "env-router-gateway", rootId: "env-router", vmId: "env-router", wasm,
      configuration: JSON.stringify({ mode: "gateway", services: mesh.services(), trust }),
    });
    return { mesh, gw, plugin };
  }

  test("a spoofed tag from an untrusted client is dropped", async () => {
    const { mesh, gw, plugin } = gateway({ source_cidrs: ["10.10.0.0/16"], header: "x-env-trusted" });
    const res = await gw.envoy.request({ authority: "a", headers: [["x-env", "feature-x"]], filters: [plugin], source: "203.0.113.9:5555", upstream: (r) => mesh.deliver("a", r) });
    expect(res.status).toBe(200);
    expect(mesh.served).toEqual(["a@default"]);
    expect(gw.envoy.metric("env_router.rejected_tag")).toBe(1);
  });

  test("an untrusted client's tag is removed from every carrier (header, baggage member, cookie) before the next hop", async () => {
    const { mesh, gw, plugin } = gateway({ source_cidrs: ["10.10.0.0/16"], header: "x-env-trusted" });
    const res = await gw.envoy.request({
      authority: "a", filters: [plugin], source: "203.0.113.9:5555", upstream: (r) => mesh.deliver("a", r),
      headers: [["x-env", "feature-x"], ["baggage", "userId=alice,env=feature-x;p=1,k=v"], ["cookie", "session=1; env=feature-x"], ["cookie", "env=feature-x"]],
    });
    expect(res.status).toBe(200);
    expect(res.upstream!.header("x-env")).toBeUndefined();
    expect(res.upstream!.header("baggage")).toBe("userId=alice,k=v");
    expect(res.upstream!.headers.filter(([k]) => k === "cookie").map(([, v]) => v)).toEqual(["session=1"]);
    // The first sidecar (a, inbound) would have believed any of them.
    expect(mesh.served).toEqual(["a@default"]);
  });

  test("the trust header never goes past the gateway, whoever set it", async () => {
    const { mesh, gw, plugin } = gateway({ header: "x-env-trusted" });
    const trusted = await gw.envoy.request({ authority: "a", headers: [["x-env", "feature-x"], ["x-env-trusted", "sso"]], filters: [plugin], source: "203.0.113.9:1", upstream: (r) => mesh.deliver("a", r) });
    expect(trusted.upstream!.header("x-env-trusted")).toBeUndefined();
    expect(trusted.upstream!.header("x-env")).toBe("feature-x");
    const untagged = await gw.envoy.request({ authority: "a", headers: [["x-env-trusted", ""]], filters: [plugin], source: "203.0.113.9:1", upstream: (r) => mesh.deliver("a", r) });
    expect(untagged.upstream!.header("x-env-trusted")).toBeUndefined();
  });

  test("a trusted source range or authenticator header is believed", async () => {
    const { mesh, gw, plugin } = gateway({ source_cidrs: ["10.10.0.0/16"], header: "x-env-trusted" });
    await gw.envoy.request({ authority: "a", headers: [["x-env", "feature-x"]], filters: [plugin], source: "10.10.3.4:5555", upstream: (r) => mesh.deliver("a", r) });
    await gw.envoy.request({ authority: "a", headers: [["x-env", "feature-x"], ["x-env-trusted", "sso"]], filters: [plugin], source: "203.0.113.9:1", upstream: (r) => mesh.deliver("a", r) });
    expect(mesh.served).toEqual(["a@feature-x", "a@feature-x"]);
  });

  test("production-only hosts are always served by default", async () => {
    const mesh = new Mesh();
    mesh.add("pay", "default", caller(mesh, null, {}));
    mesh.add("pay", "feature-x", caller(mesh, null, {}));
    const client = mesh.add("client", "default", caller(mesh, null, {}), { production_hosts: ["pay"] });
    mesh.push();
    client.envoy.removePlugin(client.outbound);
    client.outbound = client.envoy.addPlugin({ name: "o", rootId: "env-router", vmId: "env-router", wasm,
      configuration: JSON.stringify({ services: mesh.services(), production_hosts: ["pay"] }) });
    await mesh.call(client, "pay.prod.svc.cluster.local:8080", [["x-env", "feature-x"]]);
    expect(mesh.served).toEqual(["pay@default"]);
    expect(client.envoy.metric("env_router.production_pinned")).toBe(1);
  });
});

describe("availability refresh from a controller", () => {
  const base = { services: { a: ["default"] }, controller: { cluster: "env-controller", refresh_ms: 5000 } };

  function sidecar(workers: number) {
    const envoy = new Envoy({ workers });
    let calls = 0;
    let answer: () => ReturnType<Parameters<Envoy["addCluster"]>[1]> = () => ({ status: 200, body: JSON.stringify({ services: { a: ["default", "feature-x"] } }) });
    envoy.addCluster("env-controller", () => { calls++; return answer(); });
    const plugin = envoy.addPlugin({ name: "env-router", rootId: "env-router", vmId: "env-router", wasm, configuration: JSON.stringify(base) });
    const route = async (worker: number) => {
      const r = await envoy.request({ worker, authority: "a", headers: [["x-env", "feature-x"]] });
      return r.upstream!.header("x-env-route");
    };
    return { envoy, plugin, route, calls: () => calls, setAnswer: (f: typeof answer) => { answer = f; } };
  }

  test("several workers share one refresh, and all adopt the new map", async () => {
    const s = sidecar(4);
    expect(await s.route(0)).toBe("default");
    await s.envoy.advance(1000);
    expect(s.calls()).toBe(1);
    for (let w = 0; w < 4; w++) expect(await s.route(w)).toBe("feature-x");
    await s.envoy.advance(5000);
    expect(s.calls()).toBe(2);
    await s.envoy.advance(20_000);
    expect(s.calls()).toBe(6);
  });

  test("a failing or garbage answer keeps the last good map", async () => {
    const s = sidecar(2);
    await s.envoy.advance(1000);
    expect(await s.route(0)).toBe("feature-x");
    for (const bad of [() => ({ status: 500, body: "oops" }), () => ({ status: 200, body: "{not json" }), () => "reset" as const,
      () => ({ status: 200, body: JSON.stringify({ services: { a: ["Bad Env"] } }) })]) {
      s.setAnswer(bad);
      await s.envoy.advance(5000);
      expect(await s.route(0)).toBe("feature-x");
      expect(await s.route(1)).toBe("feature-x");
    }
    expect(s.envoy.metric("env_router.controller_refresh_failed")).toBe(4);
    expect(s.envoy.logsAt("warn").some((l) => l.includes("availability refresh failed, keeping the last good map: status 500"))).toBe(true);
  });

  test("if the lease holder's VM dies, another worker takes over the refresh", async () => {
    const s = sidecar(2);
    await s.envoy.advance(1000);
    const holder = s.plugin.workerVms.findIndex((vm) => (vm!.hostcallsByName.get("proxy_http_call") ?? 0) > 0);
    s.plugin.workerVms[holder]!.failed = true;
    await s.envoy.advance(20_000);
    const other = s.plugin.workerVms[1 - holder]!;
    expect(other.hostcallsByName.get("proxy_http_call") ?? 0).toBeGreaterThan(0);
  });
});

describe("data-centre stamping and explainability", () => {
  test("the stamp comes from a VM environment variable", async () => {
    const envoy = new Envoy({ workers: 1 });
    envoy.addPlugin({ name: "e", rootId: "env-router", wasm, env: { DC_NAME: "hz-b" }, configuration: JSON.stringify({ stamp: { header: "x-dc", env_var: "DC_NAME" } }) });
    const r = await envoy.request({});
    expect(r.upstream!.header("x-dc")).toBe("hz-b");
  });

  test("or from node metadata", async () => {
    const envoy = new Envoy({ workers: 1, node: { metadata: { DC: "hz-a" } } });
    envoy.addPlugin({ name: "e", rootId: "env-router", wasm, configuration: JSON.stringify({ stamp: { header: "x-dc", node_metadata: "DC" } }) });
    expect((await envoy.request({})).upstream!.header("x-dc")).toBe("hz-a");
  });

  test("a stamp with no value is a configuration error", () => {
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({ name: "e", rootId: "env-router", wasm, configuration: JSON.stringify({ stamp: { header: "x-dc", env_var: "MISSING" } }) })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical")[0]).toContain("env-router: stamp: no usable value");
  });

  test("dry run decides and logs, writes nothing", async () => {
    const envoy = new Envoy({ workers: 1 });
    envoy.addPlugin({ name: "e", rootId: "env-router", wasm, configuration: JSON.stringify({ dry_run: true, services: { a: ["default", "feature-x"] } }) });
    const r = await envoy.request({ authority: "a", headers: [["x-env", "feature-x"]] });
    expect(r.upstream!.header("x-env-route")).toBeUndefined();
    expect(envoy.logsAt("info")).toContain("wasm log e env-router: env-router dry-run: a tagged feature-x would be served by feature-x");
    expect(envoy.metric("env_router.hit")).toBe(1);
  });
});

describe("bad input", () => {
  function router(config: object = {}) {
    const envoy = new Envoy({ workers: 1 });
    const plugin = envoy.addPlugin({ name: "e", rootId: "env-router", wasm, configuration: JSON.stringify({ services: { a: ["default", "feature-x"] }, ...config }) });
    return { envoy, vm: () => plugin.workerVms[0]! };
  }

  test.each<[string, Array<[string, string]>]>([
    ["oversized baggage", [["baggage", "env=feature-x," + "k=v,".repeat(2100)]]],
    ["10,000-member baggage", [["baggage", Array.from({ length: 10_000 }, (_, i) => `m${i}=1`).join(",")]]],
    ["a tag with CR/LF", [["x-env", "feature-x\r\nx-evil: 1"]]],
    ["a 1 KiB tag", [["x-env", "f".repeat(1024)]]],
    ["an unknown env", [["x-env", "nobody-has-this"]]],
    ["malformed baggage", [["baggage", "=,,;;env,env=%zz,env=%e9"]]],
    ["a garbage traceparent", [["traceparent", "zz-" + "0".repeat(200)]]],
  ])("%s: no trap, served by default, counted", async (_name, headers) => {
    const { envoy, vm } = router();
    for (let i = 0; i < 5; i++) {
      const r = await envoy.request({ authority: "a", headers });
      expect(r.status).toBe(200);
      expect(r.upstream!.header("x-env-route")).toBe("default");
    }
    expect(vm().failed).toBe(false);
    expect(vm().memoryPages).toBeLessThanOrEqual(32);
  });

  test("oversized baggage and bad tags are counted", async () => {
    const { envoy } = router();
    await envoy.request({ authority: "a", headers: [["baggage", "k=v,".repeat(3000)]] });
    await envoy.request({ authority: "a", headers: [["x-env", "BAD"]] });
    expect(envoy.metric("env_router.oversized_baggage")).toBe(1);
    expect(envoy.metric("env_router.rejected_tag")).toBe(1);
  });

  test("a slow controller does not block traffic", async () => {
    const envoy = new Envoy({ workers: 1 });
    envoy.addCluster("ctl", () => new Promise(() => {}));
    envoy.addPlugin({ name: "e", rootId: "env-router", wasm, configuration: JSON.stringify({ services: { a: ["default"] }, controller: { cluster: "ctl" } }) });
    await envoy.advance(1000);
    const r = await envoy.request({ authority: "a" });
    expect(r.status).toBe(200);
  });

  test("a slot holding another trace's tag is never used, and the loss is counted", async () => {
    const envoy = new Envoy({ workers: 1 });
    const corr = { slots: 16 };
    const inbound = envoy.addPlugin({ name: "in", rootId: "env-router", vmId: "env-router", wasm, configuration: JSON.stringify({ mode: "inbound", correlation: corr }) });
    const outbound = envoy.addPlugin({ name: "out", rootId: "env-router", vmId: "env-router", wasm, configuration: JSON.stringify({ mode: "outbound", services: { a: ["default", "feature-x"] }, correlation: corr }) });
    // 200 traces tagged feature-x fill all 16 slots.
    for (let i = 0; i < 200; i++) await envoy.request({ headers: [["x-env", "feature-x"], ["traceparent", traceparent()]], filters: [inbound] });
    // An untagged call of a trace never seen: its slot holds another trace's tag.
    const r = await envoy.request({ authority: "a", headers: [["traceparent", traceparent()]], filters: [outbound] });
    expect(r.upstream!.header("x-env-route")).toBe("default");
    expect(envoy.metric("env_router.correlated")).toBe(0);
    expect(envoy.metric("env_router.correlation_lost")).toBe(1);
  });

  test("inbound correlation memory is bounded under many distinct trace ids", async () => {
    const envoy = new Envoy({ workers: 1 });
    const plugin = envoy.addPlugin({ name: "in", rootId: "env-router", vmId: "env-router", wasm, configuration: JSON.stringify({ mode: "inbound", correlation: { slots: 256 } }) });
    for (let i = 0; i < 3000; i++) await envoy.request({ headers: [["x-env", "feature-x"], ["traceparent", traceparent()]] });
    const keys = envoy.sharedData.keys("env-router").filter((k) => k.startsWith("env-router:corr:"));
    expect(keys.length).toBeLessThanOrEqual(256);
    expect(envoy.metric("env_router.recorded")).toBe(3000);
    expect(plugin.workerVms[0]!.memoryPages).toBeLessThanOrEqual(4);
  });
});

describe("configuration", () => {
  test.each<[object, string]>([
    [{ mode: "sidewards" }, `mode: must be one of outbound, inbound, gateway, got "sidewards"`],
    [{ services: { a: ["Feature_X"] } }, `services.a[0]: not a valid env name: "Feature_X" (dot-separated labels of a-z, 0-9 and '-')`],
    [{ trust: { source_cidrs: ["10.0.0.1/8"] } }, `trust.source_cidrs[0]: not a canonical CIDR: "10.0.0.1/8"`],
    [{ tag: { sources: ["header", "jwt"] } }, `tag.sources[1]: must be one of header, baggage, cookie, got "jwt"`],
    [{ controller: { refresh_ms: 5000 } }, "controller.cluster: is required"],
    [{ fallbacks: { "feature-x": ["team a"] } }, `fallbacks.feature-x[0]: not a valid env name: "team a" (dot-separated labels of a-z, 0-9 and '-')`],
  ])("%j is rejected naming the field", (config, message) => {
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({ name: "e", rootId: "env-router", wasm, configuration: JSON.stringify(config) })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical")[0]).toBe(`wasm log env-router: env-router: ${message}`);
  });
});
