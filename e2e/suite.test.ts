// One e2e suite, three targets (E2E_TARGET): local (default: the npm start gateway on free
// ports), envoy (real Envoy on the same bootstrap; skipped when no envoy binary), kind (see
// e2e/kind/run.sh, which sets E2E_GATEWAY_URL). Tests speak HTTP and read what the example
// upstreams saw. Each compares with the control route (same routes, no filters) where the
// target has one, and checks the build stamp.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Front, PIN, TARGET, envoyAvailable, hops, root, seen, send, startFront } from "./harness.js";

const version = JSON.parse(readFileSync(`${root}package.json`, "utf8")).version;
const skip = TARGET === "envoy" && !envoyAvailable();
if (skip) console.warn("E2E_TARGET=envoy: no `envoy` binary on PATH; the envoy target is skipped (not passed).");

describe.skipIf(skip)("e2e: the four filters in front of example upstreams", () => {
  let front: Front;
  beforeAll(async () => {
    front = await startFront(`${root}manifests/envoy/envoy.yaml`, { control: true });
  }, 30000);
  afterAll(async () => { await front?.stop(); });
  /** A check against the control route; skipped (not passed) on targets without one. */
  const controlTest = (name: string, fn: () => Promise<void>) => test(name, async (ctx) => {
    if (!front.controlUrl) { ctx.skip(); return; }
    await fn();
  });

  test("every filter stamps its build on the response", async () => {
    const r = await send(front.url, { path: "/hello" });
    for (const f of ["header-normalizer", "env-router", "podip-router"]) expect(r.headers[`x-${f}-build`]).toBe(version);
    const api = await send(front.url, { path: "/api/ping" });
    expect(api.headers["x-adaptive-ratelimit-build"]).toBe(version);
  });

  describe("header-normalizer: the Spring 415 case", () => {
    const dup: Array<[string, string]> = [["Content-Type", "application/json"], ["Content-Type", "application/json"]];
    test("two Content-Type lines in, one value out at the upstream", async () => {
      const r = await send(front.url, { path: "/orders", headers: dup, body: "{}" });
      expect(seen(r, "content-type")).toEqual(["application/json"]);
    });
    controlTest("control route: the upstream gets the joined value Spring rejects", async () => {
      const r = await send(front.controlUrl!, { path: "/orders", headers: dup, body: "{}" });
      expect(seen(r, "content-type")).toEqual(["application/json,application/json"]);
    });
  });

  describe("env-router: same env first, fall back to default, return to the source env", () => {
    const chain = (base: string, first: string, headers: Array<[string, string]>) =>
      send(base, { path: "/", headers: [["Host", first], ["x-e2e-next", first === "reviews" ? "ratings,details" : "details"], ...headers] });
    test("reviews@feature-x -> ratings@default (no feature-x) -> details@feature-x", async () => {
      expect(hops(await chain(front.url, "reviews", [["x-env", "feature-x"]]))).toEqual(["reviews@feature-x", "ratings@default", "details@feature-x"]);
    });
    test("missing env at the first hop", async () => {
      expect(hops(await chain(front.url, "ratings", [["x-env", "feature-x"]]))).toEqual(["ratings@default", "details@feature-x"]);
    });
    test("the tag only in baggage (apps forwarding baggage)", async () => {
      const r = await send(front.url, { path: "/", headers: [["Host", "reviews"], ["baggage", "env=feature-x"], ["x-e2e-next", "ratings,details"], ["x-e2e-forward", "baggage"]] });
      expect(hops(r)).toEqual(["reviews@feature-x", "ratings@default", "details@feature-x"]);
    });
    controlTest("control route: everything stays in default", async () => {
      const via: [string, string] = ["x-e2e-gateway", new URL(front.controlUrl!).port];
      expect(hops(await chain(front.controlUrl!, "reviews", [["x-env", "feature-x"], via]))).toEqual(["reviews@default", "ratings@default", "details@default"]);
    });
  });

  describe("podip-router: pin one replica", () => {
    test("the prefix is stripped and the named replica answers", async () => {
      const r = await send(front.url, { path: `/_pod/${PIN.replica}/hello?x=1` });
      expect(r.status).toBe(200);
      expect(`${r.json().host}:${r.json().port}`).toBe(PIN.replica);
      expect(r.json().path).toBe("/hello?x=1");
      expect(r.headers["x-pinned-upstream"]).toBe(PIN.replica);
    });
    test.each<[string, string, number]>([
      ["port not allowed", `/_pod/${PIN.badPort}/`, 403],
      ["non-canonical address", `/_pod/0${PIN.replica}/`, 400],
      ["outside the pod ranges", `/_pod/${PIN.outside}/`, 403],
      ["metadata address", "/_pod/169.254.169.254:8080/", 403],
      ["path traversal", `/_pod/${PIN.replica}/../admin`, 400],
      ["an allowed address that is not an endpoint (strict session)", `/_pod/${PIN.notEndpoint}/`, 503],
    ])("%s", async (_name, path, status) => {
      const r = await send(front.url, { path });
      expect(r.status).toBe(status);
    });
    test("a client-supplied session header cannot pin", async () => {
      const r = await send(front.url, { path: "/x", headers: [["x-podip-session", Buffer.from("127.0.0.1:18103").toString("base64")]] });
      expect(seen(r, "x-podip-session")).toEqual([]);
    });
    controlTest("control route: no pinning, the prefix reaches the upstream", async () => {
      const r = await send(front.controlUrl!, { path: "/_pod/127.0.0.1:18102/hello" });
      expect(r.json().path).toBe("/_pod/127.0.0.1:18102/hello");
    });
  });

  describe("adaptive-ratelimit: 429 under a burst, then recovery", () => {
    const burst = (base: string) => Promise.all(Array.from({ length: 40 }, () => send(base, { path: "/api/items" })));
    test("a burst gets 429s with Retry-After and RateLimit headers; later traffic is admitted again", async () => {
      const replies = await burst(front.url);
      const rejected = replies.filter((r) => r.status === 429);
      expect(rejected.length).toBeGreaterThan(0);
      expect(replies.some((r) => r.status === 200)).toBe(true);
      expect(Number(rejected[0].headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(rejected[0].headers["ratelimit-limit"]).toBeDefined();
      expect(rejected[0].headers["x-ratelimit-rule"]).toBe("api");
      await new Promise((r) => setTimeout(r, 1500));
      expect((await send(front.url, { path: "/api/items" })).status).toBe(200);
    });
    controlTest("control route: no limit", async () => {
      const replies = await burst(front.controlUrl!);
      expect(replies.every((r) => r.status === 200)).toBe(true);
    });
  });

  test.skipIf(TARGET === "local")("header-name case is restored on the HTTP/1 hop (real Envoy only: the local gateway does not format names)", async () => {
    const r = await send(front.url, { path: "/case", headers: [["X-Custom-Header", "1"]] });
    expect(r.json().headers.map(([k]: [string, string]) => k)).toContain("X-Custom-Header");
  });
});

// The crash fixture runs where the suite controls the proxy's filters (local gateway, real Envoy).
describe.skipIf(skip || TARGET === "kind")("a crashing filter: fail open vs fail closed", () => {
  const bootstrap = (failOpen: boolean) => ({
    static_resources: {
      listeners: [{
        name: "crash", address: { socket_address: { address: "127.0.0.1", port_value: 10090 } },
        filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
          stat_prefix: "crash",
          route_config: { name: "r", virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "web" } }] }] },
          http_filters: [
            { name: "fixture", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", config: {
              name: "fixture", root_id: "fixture", fail_open: failOpen,
              configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: "{}" },
              vm_config: { vm_id: "fixture", runtime: "envoy.wasm.runtime.v8", code: { local: { filename: "dist/fixtures/fixture.wasm" } } },
            } } },
            { name: "envoy.filters.http.router", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } },
          ],
        } }] }],
      }],
      clusters: [{ name: "web", type: "STATIC", connect_timeout: "1s", load_assignment: { cluster_name: "web", endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: 18191 } } } }] }] } }],
    },
  });
  const trap: Array<[string, string]> = [["x-fixture-action", "trap"]];

  test("fail closed: the trapping request and later ones on that worker get 503", async () => {
    const front = await startFront(bootstrap(false), { workers: 1 });
    try {
      expect((await send(front.url, { path: "/", headers: trap })).status).toBe(503);
      expect((await send(front.url, { path: "/" })).status).toBe(503);
    } finally {
      await front.stop();
    }
  });

  test("fail open: traffic goes on without the filter", async () => {
    const front = await startFront(bootstrap(true), { workers: 1 });
    try {
      const r = await send(front.url, { path: "/", headers: trap });
      expect(r.status).toBe(200);
      expect((await send(front.url, { path: "/" })).status).toBe(200);
    } finally {
      await front.stop();
    }
  });
});
