// podip-router, the built module in the host.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { Envoy, PluginLoadError } from "../../../runtime/host/src/index.js";
import type { RequestSpec, UpstreamRequest, UpstreamResponse } from "../../../runtime/host/src/index.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";
import { hostileCorpus } from "./corpus.js";

const wasm = readFileSync(wasmPath("podip-router"));
const BASE = {
  allowed_cidrs: ["10.8.0.0/16", "fd00:10::/64"],
  allowed_ports: [8080, "9000-9100"],
  authorization: { source_cidrs: ["10.20.0.0/16"], header: "x-ops-authenticated", principals: ["spiffe://cluster.local/ns/ops/sa/debugger"] },
  host_suffix: "pods.example.com",
  pod_names: { "web-0": "10.8.3.17" },
  default_port: 8080,
};
const TRUSTED = "10.20.1.1:51000";

/** Endpoints of the service's EDS cluster, and Envoy's stateful session in strict mode over them. */
const ENDPOINTS = ["10.8.3.17:8080", "10.8.3.18:8080", "10.8.4.2:9090", "[fd00:10::5]:8080"];
function strictSession(header = "x-podip-session") {
  return (req: UpstreamRequest): UpstreamResponse => {
    const pin = req.header(header);
    if (pin === undefined) return { status: 200, body: "any replica" };
    const target = Buffer.from(pin, "base64").toString("utf8");
    if (!ENDPOINTS.includes(target)) return { status: 503, body: "no healthy upstream" };
    return { status: 200, headers: [["x-replica", target]], body: `replica ${target} saw ${req.header(":path")}` };
  };
}

function router(config: object = {}) {
  const envoy = new Envoy({ workers: 1, logLevel: "info" });
  const plugin = envoy.addPlugin({ name: "podip-router", rootId: "podip-router", wasm, configuration: JSON.stringify({ ...BASE, ...config }) });
  const send = (spec: RequestSpec) => envoy.request({ source: TRUSTED, upstream: strictSession(), ...spec });
  return { envoy, send, vm: () => plugin.workerVms[0]! };
}

describe("URL forms and hand-off (session mode)", () => {
  test("the path form pins the replica and strips the prefix, query kept", async () => {
    const { send } = router();
    const res = await send({ path: "/_pod/10.8.3.17:8080/actuator/health?verbose=1" });
    expect(res.status).toBe(200);
    expect(res.body).toBe("replica 10.8.3.17:8080 saw /actuator/health?verbose=1");
    expect(res.upstream!.header("x-podip-session")).toBe(Buffer.from("10.8.3.17:8080").toString("base64"));
    expect(res.header("x-pinned-upstream")).toBe("10.8.3.17:8080");
  });

  test("the host form pins by the host label", async () => {
    const { send } = router();
    const res = await send({ authority: "10-8-3-18.pods.example.com", path: "/metrics" });
    expect(res.body).toBe("replica 10.8.3.18:8080 saw /metrics");
  });

  test("IPv6: bracketed in the path, '-' for ':' in the host label; the session value keeps the brackets", async () => {
    const { send } = router();
    expect((await send({ path: "/_pod/[fd00:10::5]:8080/x" })).body).toBe("replica [fd00:10::5]:8080 saw /x");
    expect((await send({ authority: "fd00-10--5.pods.example.com", path: "/y" })).body).toBe("replica [fd00:10::5]:8080 saw /y");
  });

  test("pod names from the configured map (StatefulSet debugging)", async () => {
    const { send } = router();
    expect((await send({ path: "/_pod/web-0/status" })).body).toBe("replica 10.8.3.17:8080 saw /status");
  });

  test("an address in the allowed range that is not an endpoint of the service gets Envoy's strict 503", async () => {
    const { send } = router();
    const res = await send({ path: "/_pod/10.8.9.9:8080/x" });
    expect(res.status).toBe(503);
  });

  test("rewrite_authority sends pins to the service's host", async () => {
    const { send } = router({ rewrite_authority: "web.default.svc.cluster.local" });
    const res = await send({ authority: "10-8-3-17.pods.example.com" });
    expect(res.upstream!.header(":authority")).toBe("web.default.svc.cluster.local");
  });
});

describe("original-dst mode", () => {
  test("filter state (set_envoy_filter_state) plus the internal pin header for the ORIGINAL_DST route", async () => {
    const { send } = router({ hand_off: "original-dst-filter-state" });
    const res = await send({ path: "/_pod/10.8.4.2:9090/x", upstream: () => ({ status: 200 }) });
    expect(res.upstream!.envoyFilterState).toEqual({ "envoy.network.transport_socket.original_dst_address": "10.8.4.2:9090" });
    expect(res.upstream!.header("x-podip-router-pin")).toBe("original-dst");
    expect(res.upstream!.header("x-envoy-original-dst-host")).toBeUndefined();
    expect(res.upstream!.header("x-podip-session")).toBeUndefined();
  });

  test("or the x-envoy-original-dst-host header", async () => {
    const { send } = router({ hand_off: "original-dst-header" });
    const res = await send({ path: "/_pod/10.8.4.2:9090/x", upstream: () => ({ status: 200 }) });
    expect(res.upstream!.header("x-envoy-original-dst-host")).toBe("10.8.4.2:9090");
  });
});

describe("rejections: status, body, nothing forwarded", () => {
  const cases: Array<[string, RequestSpec, number, string]> = [
    ["unauthorised caller", { path: "/_pod/10.8.3.17:8080/", source: "203.0.113.5:4000" }, 403, "podip-router: not allowed to pin a pod\n"],
    ["malformed address", { path: "/_pod/010.8.3.17:8080/" }, 400, "podip-router: not a canonical IPv4 or IPv6 address\n"],
    ["unknown pod name", { path: "/_pod/web-7/" }, 400, "podip-router: unknown pod name\n"],
    ["always-denied range", { path: "/_pod/169.254.169.254:8080/" }, 403, "podip-router: address is in a range no pin may reach\n"],
    ["outside the pod ranges", { path: "/_pod/10.9.0.1:8080/" }, 403, "podip-router: address is not in an allowed pod range\n"],
    ["port not allowed", { path: "/_pod/10.8.3.17:22/" }, 403, "podip-router: port is not allowed\n"],
    ["path traversal", { path: "/_pod/10.8.3.17:8080/../admin" }, 400, "podip-router: path traversal after the address\n"],
  ];
  test.each(cases)("%s", async (_name, spec, status, body) => {
    const { envoy, send } = router();
    const res = await send(spec);
    expect(res.status).toBe(status);
    expect(res.body).toBe(body);
    expect(res.upstream).toBeNull();
    const reason = res.details.replace("podip_router_", "");
    expect(envoy.metric(`podip_router.rejected.${reason}`)).toBe(1);
    expect(envoy.logsAt("info").some((l) => l.includes("outcome=rejected reason=" + reason))).toBe(true);
  });
});

describe("who may pin", () => {
  test("a trusted source range", async () => {
    const { send } = router();
    expect((await send({ path: "/_pod/10.8.3.17:8080/" })).status).toBe(200);
  });
  test("a header set by a trusted authenticator", async () => {
    const { send } = router();
    expect((await send({ path: "/_pod/10.8.3.17:8080/", source: "203.0.113.5:1", headers: [["x-ops-authenticated", "alice"]] })).status).toBe(200);
  });
  test("a peer principal (sidecar mode)", async () => {
    const { send } = router();
    const res = await send({ path: "/_pod/10.8.3.17:8080/", source: "10.99.0.1:1", connection: { mtls: true, uriSanPeerCertificate: "spiffe://cluster.local/ns/ops/sa/debugger" } });
    expect(res.status).toBe(200);
    const other = await send({ path: "/_pod/10.8.3.17:8080/", source: "10.99.0.1:1", connection: { mtls: true, uriSanPeerCertificate: "spiffe://cluster.local/ns/app/sa/web" } });
    expect(other.status).toBe(403);
  });
  test("every decision is audited with the caller", async () => {
    const { envoy, send } = router();
    await send({ path: "/_pod/10.8.3.17:8080/", headers: [["x-ops-authenticated", "alice"]] });
    expect(envoy.logsAt("info")).toContain("wasm log podip-router podip-router: podip-router audit: caller=10.20.1.1:51000 via x-ops-authenticated=alice target=10.8.3.17:8080 outcome=pinned");
  });
});

describe("edge sanitisation", () => {
  const smuggled: Array<[string, string]> = [["x-envoy-original-dst-host", "169.254.169.254:80"], ["x-podip-session", Buffer.from("10.8.3.18:8080").toString("base64")], ["x-podip-router-pin", "original-dst"]];

  test("client-supplied destination and session headers are removed from ordinary requests", async () => {
    const { envoy, send } = router();
    const res = await send({ path: "/api", headers: smuggled, source: "203.0.113.5:1" });
    expect(res.status).toBe(200);
    for (const [k] of smuggled) expect(res.upstream!.header(k)).toBeUndefined();
    expect(envoy.metric("podip_router.sanitized")).toBe(3);
  });

  test("and from pin requests, before the decision", async () => {
    const { send } = router();
    const res = await send({ path: "/_pod/10.8.3.17:8080/x", headers: smuggled });
    expect(res.upstream!.header("x-envoy-original-dst-host")).toBeUndefined();
    expect(res.upstream!.header("x-podip-router-pin")).toBeUndefined();
    expect(res.upstream!.header("x-podip-session")).toBe(Buffer.from("10.8.3.17:8080").toString("base64"));
  });

  test("even in dry run, which otherwise pins and rejects nothing", async () => {
    const { envoy, send } = router({ dry_run: true });
    const res = await send({ path: "/_pod/169.254.169.254:80/x", headers: smuggled, source: "203.0.113.5:1" });
    expect(res.status).toBe(200);
    expect(res.upstream!.header(":path")).toBe("/_pod/169.254.169.254:80/x");
    for (const [k] of smuggled) expect(res.upstream!.header(k)).toBeUndefined();
    expect(envoy.metric("podip_router.rejected.unauthorized")).toBe(1);
  });
});

describe("fail closed: a request the filter cannot read whole is refused", () => {
  // More request headers than one read returns (1,024): possible once an operator raises
  // Envoy's max_headers_count. The smuggled destination must never reach the upstream.
  const many: Array<[string, string]> = [
    ...Array.from({ length: 1100 }, (_, i) => [`x-filler-${i}`, "1"] as [string, string]),
    ["x-envoy-original-dst-host", "169.254.169.254:80"], ["x-podip-session", Buffer.from("10.8.3.18:8080").toString("base64")],
  ];
  test.each([["an ordinary request", "/api"], ["a pin request", "/_pod/10.8.3.17:8080/x"]])("%s with 1,102 headers gets 400 and reaches no upstream", async (_name, path) => {
    const { envoy, send } = router();
    const res = await send({ path, headers: many, source: "203.0.113.5:1" });
    expect(res.status).toBe(400);
    expect(res.body).toBe("podip-router: the request headers could not be read whole, so they could not be sanitised\n");
    expect(res.upstream).toBeNull();
    expect(envoy.metric("podip_router.rejected.unreadable")).toBe(1);
    expect(envoy.metric("podip_router.rejected")).toBe(1);
  });
  test("even in dry run (sanitising is never dry)", async () => {
    const { send } = router({ dry_run: true });
    expect((await send({ path: "/api", headers: many })).status).toBe(400);
  });
});

describe("the authorisation header is the gateway's business only", () => {
  test("it never reaches the upstream, pinned or not", async () => {
    const { send } = router();
    const pinned = await send({ path: "/_pod/10.8.3.17:8080/x", headers: [["x-ops-authenticated", "alice"]], source: "203.0.113.5:1" });
    expect(pinned.status).toBe(200);
    expect(pinned.upstream!.header("x-ops-authenticated")).toBeUndefined();
    const plain = await send({ path: "/api", headers: [["x-ops-authenticated", "alice"]] });
    expect(plain.upstream!.header("x-ops-authenticated")).toBeUndefined();
  });
});

describe("no response tells the client a pod address", () => {
  // Envoy's header-based stateful session writes base64(ip:port) of the host it chose on every
  // response whose request did not name that host (seen on Envoy 1.36 and 1.40, e2e).
  const sessionFilter = (req: UpstreamRequest): UpstreamResponse => {
    const chosen = "10.8.3.18:8080";
    const pin = req.header("x-podip-session");
    const headers: Array<[string, string]> = [["content-type", "text/plain"]];
    if (pin !== Buffer.from(chosen).toString("base64")) headers.push(["x-podip-session", Buffer.from(chosen).toString("base64")]);
    return { status: 200, headers, body: "ok" };
  };
  test("an unpinned response loses the session header Envoy wrote", async () => {
    const { send } = router();
    const res = await send({ path: "/api", source: "203.0.113.5:1", upstream: sessionFilter });
    expect(res.status).toBe(200);
    expect(res.header("x-podip-session")).toBeUndefined();
  });
  test("a pinned response names the pin in response_header only", async () => {
    const { send } = router();
    const res = await send({ path: "/_pod/10.8.3.17:8080/x", upstream: sessionFilter });
    expect(res.header("x-podip-session")).toBeUndefined();
    expect(res.header("x-pinned-upstream")).toBe("10.8.3.17:8080");
  });
  test("with a custom session_header, that one is removed", async () => {
    const { send } = router({ session_header: "x-sticky" });
    const res = await send({ path: "/api", upstream: () => ({ status: 200, headers: [["x-sticky", "MTAuOC4zLjE4OjgwODA="]], body: "ok" }) });
    expect(res.header("x-sticky")).toBeUndefined();
  });
});

describe("the hostile corpus", () => {
  const corpus = hostileCorpus();
  test("has at least 150 cases", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(150);
  });
  test("no case reaches the hand-off, and none traps", async () => {
    const { send, vm } = router();
    const reached: string[] = [];
    for (const c of corpus) {
      const res = await send({ path: c.path ?? "/x", authority: c.authority ?? "gw.example.com", upstream: (req) => {
        if (req.header("x-podip-session") || req.header("x-envoy-original-dst-host") || Object.keys(req.envoyFilterState).length > 0) reached.push(c.name);
        return { status: 200 };
      } });
      if (res.status !== 400 && res.status !== 403) reached.push(`${c.name} (status ${res.status})`);
    }
    expect(reached).toEqual([]);
    expect(vm().failed).toBe(false);
  });
});

describe("cost and configuration", () => {
  test("ordinary traffic costs one header read and, on the response, the session header's removal", async () => {
    const { send, vm } = router();
    await send({ path: "/api/items" });
    const before = vm().hostcalls;
    await send({ path: "/api/items", headers: [["accept", "application/json"]], upstream: () => ({ status: 200 }) });
    expect(vm().hostcalls - before).toBe(2);
    expect(vm().hostcallsByName.get("proxy_remove_header_map_value")).toBe(2);
  });

  test.each<[object, string]>([
    [{ allowed_cidrs: [] }, "allowed_cidrs: is required and must not be empty (the pod ranges pins may reach)"],
    [{ allowed_cidrs: ["10.8.0.1/16"] }, `allowed_cidrs[0]: not a canonical CIDR: "10.8.0.1/16"`],
    [{ allowed_ports: ["9100-9000"] }, `allowed_ports[0]: must be a range like "8000-8100", got "9100-9000"`],
    [{ authorization: {} }, "authorization: needs at least one of source_cidrs, header, principals (who may pin)"],
    [{ authorization: { principals: ["cluster.local/ns/ops"] } }, "authorization.principals[0]: must be a SPIFFE id (spiffe://...)"],
    [{ pod_names: { "web-0": "010.8.3.17" } }, `pod_names.web-0: must map to a canonical IP address, got "010.8.3.17"`],
    [{ path_prefix: "_pod" }, `path_prefix: must look like "/_pod/" (start and end with '/'), or be "" to turn the path form off`],
    [{ hand_off: "direct" }, `hand_off: must be one of session, original-dst-filter-state, original-dst-header, got "direct"`],
  ])("%j is rejected naming the field", (config, message) => {
    const envoy = new Envoy({ workers: 1 });
    expect(() => envoy.addPlugin({ name: "p", rootId: "podip-router", wasm, configuration: JSON.stringify({ ...BASE, ...config }) })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical")[0]).toBe(`wasm log podip-router: podip-router: ${message}`);
  });

  test("allow_loopback opens loopback only, with a warning; metadata stays denied", async () => {
    const { envoy, send } = router({ allow_loopback: true, allowed_cidrs: ["127.0.0.0/8", "169.254.0.0/16"], allowed_ports: [8080, 80] });
    expect(envoy.logsAt("warn")[0]).toContain("allow_loopback is on");
    expect((await send({ path: "/_pod/127.0.0.2:8080/x", upstream: () => ({ status: 200 }) })).status).toBe(200);
    expect((await send({ path: "/_pod/169.254.169.254:80/x" })).status).toBe(403);
    const { send: strict } = router({ allowed_cidrs: ["127.0.0.0/8"] });
    expect((await strict({ path: "/_pod/127.0.0.2:8080/x" })).status).toBe(403);
  });

  test("allowed_cidrs and allowed_ports are required", () => {
    const envoy = new Envoy({ workers: 1 });
    const { allowed_ports: _p, ...noPorts } = BASE;
    expect(() => envoy.addPlugin({ name: "p", rootId: "podip-router", wasm, configuration: JSON.stringify(noPorts) })).toThrow(PluginLoadError);
    expect(envoy.logsAt("critical")[0]).toContain("allowed_ports: is required");
  });
});
