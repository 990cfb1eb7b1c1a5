// One e2e suite, run on every target in turn (see harness.targets): the local gateway over the
// suite's host, then real Envoy at each supported version (npm test runs all of them), or kind.
// Each case speaks HTTP to the front and reads what the example upstreams saw. Every case also
// runs against a control front (the same bootstrap without the suite's wasm filters) where the
// target has one, and checks the build stamp. On Envoy, each case's result is compared with the
// local target's (differential.ts): a difference that is not on the documented list fails.
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { parse, parseAllDocuments } from "yaml";
import { envoyFilterBootstrap } from "../manifests/lib/envoyfilter-bootstrap.js";
import { hcmListener, ROUTER_FILTER } from "../manifests/src/wasm.js";
import { startEcho } from "../runtime/gateway/echo.js";
import type { EchoInstance } from "../runtime/gateway/echo.js";
import { startEnvoy } from "../runtime/gateway/envoy.js";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { Front, PIN, Reply, Target, hops, kindFront, root, seen, send, sendRaw, startFront, targets } from "./harness.js";
import { compareRuns, view } from "./differential.js";

const version = JSON.parse(readFileSync(`${root}package.json`, "utf8")).version;
const shipped = () => parse(readFileSync(`${root}manifests/envoy/envoy.yaml`, "utf8"));
/** The same bootstrap without the suite's wasm filters. */
const withoutWasm = (doc: any) => {
  const hcm = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  hcm.http_filters = hcm.http_filters.filter((f: any) => !String(f.typed_config?.["@type"]).endsWith(".wasm.v3.Wasm"));
  return doc;
};

const TARGETS = targets();
const LOCAL = TARGETS.find((t) => t.kind === "local");
/** case id -> target name -> comparable view of its result. */
const results = new Map<string, Map<string, string[]>>();

interface Case {
  id: string;
  run(base: string, front: Front): Promise<Reply>;
  check(r: Reply, front: Front): void;
  /** The same request on the control front (no wasm filters): what users get without the suite. */
  control?(r: Reply): void;
  /**
   * On kind the control is a gateway without the suite's resources, while the sidecars keep
   * theirs (env-router), and it has no stateful_session filter: where `control` does not hold
   * there, this replaces it (null: no control on kind, for the reason given at the case).
   */
  kindControl?: ((r: Reply) => void) | null;
  /** The case names the replica that must answer: compare which one did (see differential.view). */
  pinned?: boolean;
}

const dupCt: Array<[string, string]> = [["Content-Type", "application/json"], ["Content-Type", "application/json"]];
const chain = (base: string, first: string, headers: Array<[string, string]>) =>
  send(base, { path: "/", headers: [["Host", first], ["x-e2e-next", first === "reviews" ? "ratings,details" : "details"], ...headers] });
/** The onward calls of a chain go through the front the chain started at. */
const via = (base: string): [string, string] => ["x-e2e-gateway", new URL(base).port];

const CASES: Case[] = [
  {
    id: "every filter stamps its build on the response",
    run: (base) => send(base, { path: "/hello" }),
    check: (r) => { for (const f of ["header-normalizer", "env-router", "podip-router"]) expect(r.headers[`x-${f}-build`]).toBe(version); },
    control: (r) => expect(r.headers["x-header-normalizer-build"]).toBeUndefined(),
  },
  {
    id: "adaptive-ratelimit stamps its build on a matched route",
    run: (base) => send(base, { path: "/api/ping" }),
    check: (r) => expect(r.headers["x-adaptive-ratelimit-build"]).toBe(version),
  },
  {
    id: "header-normalizer: two Content-Type lines in, one value out at the upstream (Spring's 415)",
    run: (base) => send(base, { path: "/orders", headers: dupCt, body: "{}" }),
    check: (r) => expect(seen(r, "content-type")).toEqual(["application/json"]),
    control: (r) => expect(seen(r, "content-type")).toEqual(["application/json,application/json"]),
  },
  {
    id: "header-normalizer: one Content-Type line with an unquoted comma (boundary=a,b) reaches the upstream unchanged",
    run: (base) => send(base, { path: "/upload", headers: [["Content-Type", "multipart/form-data; boundary=a,b"]], body: "--a,b--" }),
    check: (r) => expect(seen(r, "content-type")).toEqual(["multipart/form-data; boundary=a,b"]),
    control: (r) => expect(seen(r, "content-type")).toEqual(["multipart/form-data; boundary=a,b"]),
  },
  {
    id: "header-normalizer: two different Authorization lines are refused with 400",
    run: (base) => send(base, { path: "/account", headers: [["Authorization", "Bearer aaa"], ["Authorization", "Bearer bbb"]] }),
    check: (r) => {
      expect(r.status).toBe(400);
      expect(r.body).toBe("header-normalizer: conflicting authorization values\n");
    },
    // Without the filter Envoy joins the two lines and the app gets both credentials in one value.
    control: (r) => expect(seen(r, "authorization")).toEqual(["Bearer aaa,Bearer bbb"]),
  },
  {
    id: "env-router: reviews@feature-x -> ratings@default (no feature-x) -> details@feature-x",
    run: (base) => chain(base, "reviews", [["x-env", "feature-x"], via(base)]),
    check: (r) => expect(hops(r)).toEqual(["reviews@feature-x", "ratings@default", "details@feature-x"]),
    control: (r) => expect(hops(r)).toEqual(["reviews@default", "ratings@default", "details@default"]),
    // The gateway's decision is what the control lacks; the sidecars route the later hops.
    kindControl: (r) => expect(hops(r)).toEqual(["reviews@default", "ratings@default", "details@feature-x"]),
  },
  {
    id: "env-router: missing env at the first hop",
    run: (base) => chain(base, "ratings", [["x-env", "feature-x"], via(base)]),
    check: (r) => expect(hops(r)).toEqual(["ratings@default", "details@feature-x"]),
    control: (r) => expect(hops(r)).toEqual(["ratings@default", "details@default"]),
    // ratings has no feature-x either way; the sidecars still route details to feature-x.
    kindControl: null,
  },
  {
    id: "env-router: the tag only in baggage (apps forwarding baggage)",
    run: (base) => send(base, { path: "/", headers: [["Host", "reviews"], ["baggage", "env=feature-x"], ["x-e2e-next", "ratings,details"], ["x-e2e-forward", "baggage"], via(base)] }),
    check: (r) => expect(hops(r)).toEqual(["reviews@feature-x", "ratings@default", "details@feature-x"]),
  },
  {
    id: "podip-router: the prefix is stripped and the named replica answers",
    pinned: true,
    run: (base) => send(base, { path: `/_pod/${PIN.replica}/hello?x=1` }),
    check: (r) => {
      expect(r.status).toBe(200);
      expect(`${r.json().host}:${r.json().port}`).toBe(PIN.replica);
      expect(r.json().path).toBe("/hello?x=1");
      expect(r.headers["x-pinned-upstream"]).toBe(PIN.replica);
      expect(r.headers["x-podip-session"]).toBeUndefined();
    },
    control: (r) => expect(r.json().path).toBe(`/_pod/${PIN.replica}/hello?x=1`),
  },
  ...([
    ["port not allowed", `/_pod/${PIN.badPort}/`, 403],
    ["non-canonical address", `/_pod/0${PIN.replica}/`, 400],
    ["outside the pod ranges", `/_pod/${PIN.outside}/`, 403],
    ["metadata address", "/_pod/169.254.169.254:8080/", 403],
    ["path traversal", `/_pod/${PIN.replica}/../admin`, 400],
    ["an allowed address that is not an endpoint (strict session)", `/_pod/${PIN.notEndpoint}/`, 503],
  ] as Array<[string, string, number]>).map(([name, path, status]): Case => ({
    id: `podip-router refuses: ${name}`,
    run: (base) => send(base, { path }),
    check: (r) => expect(r.status).toBe(status),
  })),
  {
    // Envoy's header-based stateful session writes base64(ip:port) of the host it chose on every
    // response whose request did not name it; the control front shows it.
    id: "podip-router: no response tells the client a pod address (the session header Envoy writes)",
    run: (base) => send(base, { path: "/hello" }),
    check: (r) => {
      expect(r.status).toBe(200);
      expect(r.headers["x-podip-session"]).toBeUndefined();
    },
    control: (r) => expect(Buffer.from(r.headers["x-podip-session"] ?? "", "base64").toString()).toBe(`127.0.0.1:${r.json().port}`),
    // The kind control gateway has no stateful_session filter (the suite ships it), so no header.
    kindControl: null,
  },
  {
    id: "podip-router: a client-supplied session header cannot pin",
    run: (base) => send(base, { path: "/x", headers: [["x-podip-session", Buffer.from("127.0.0.1:18103").toString("base64")]] }),
    check: (r) => expect(seen(r, "x-podip-session")).toEqual([]),
    control: (r) => expect(r.json().port).toBe(18103),
    // Needs the stateful_session filter, which the kind control gateway does not have.
    kindControl: null,
  },
];

function printLogOnFailure(get: () => Front | undefined) {
  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      const f = get();
      if (f) console.error(`--- ${f.target.name}: last lines of the front's log ---\n${f.log().split("\n").slice(-80).join("\n")}`);
    });
  });
}

for (const target of TARGETS) {
  describe(`${target.name}: the four filters in front of example upstreams (manifests/envoy/envoy.yaml)`, () => {
    let front: Front | undefined;
    let control: Front | undefined;
    beforeAll(async () => {
      front = await startFront(target, shipped());
      // The control front shares the example upstreams: start it without its own.
      // On kind, a second gateway with the same routes and none of the suite's resources.
      control = target.kind === "kind" ? kindFront(target, "E2E_CONTROL_URL") : await startFront(target, withoutWasm(shipped()), { upstreams: false });
    }, 60000);
    afterAll(async () => { await control?.stop(); await front?.stop(); });
    printLogOnFailure(() => front);

    for (const c of CASES) {
      test(c.id, async () => {
        const r = await c.run(front!.url, front!);
        record(c.id, target, view(r, front!.url, c.pinned));
        c.check(r, front!);
      });
      const checkControl = target.kind === "kind" && c.kindControl !== undefined ? c.kindControl : c.control;
      if (checkControl) {
        test(`${c.id} [control: no wasm filters]`, async () => {
          checkControl(await c.run(control!.url, control!));
        });
      }
      sameAsLocal(c.id, target);
    }

    test("adaptive-ratelimit: a burst gets 429s with Retry-After and RateLimit headers; later traffic is admitted again", async () => {
      const replies = await Promise.all(Array.from({ length: 40 }, () => send(front!.url, { path: "/api/items" })));
      const rejected = replies.filter((r) => r.status === 429);
      expect(rejected.length).toBeGreaterThan(0);
      expect(replies.some((r) => r.status === 200)).toBe(true);
      expect(Number(rejected[0].headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(rejected[0].headers["ratelimit-limit"]).toBeDefined();
      expect(rejected[0].headers["x-ratelimit-rule"]).toBe("api");
      // Which bound sheds a concurrent burst (the rate, or the in-flight guard that adds
      // "(too many requests in flight)" to the body) depends on how the 40 requests overlap: the
      // comparison keeps the reply's shape and leaves out which bound it was, and the retry time
      // (it follows the share shed in the last ticks, which depends on when the ticks fell).
      record("429", target, view(rejected[0], front!.url)
        .filter((l) => !/^client: (retry-after|content-length):/.test(l))
        .map((l) => l.replace(" (too many requests in flight)", "").replace(/retry after \d+ s/, "retry after N s")));
      await new Promise((r) => setTimeout(r, 1500));
      expect((await send(front!.url, { path: "/api/items" })).status).toBe(200);
    });
    if (target.kind === "envoy" && LOCAL) {
      test("adaptive-ratelimit: the 429 is the same as the local target's (but for the remaining count and reset time)", () =>
        compareRuns("429", results.get("429"), LOCAL.name, target.name));
    }
    test("adaptive-ratelimit [control: no wasm filters]: a burst is all admitted", async () => {
      const replies = await Promise.all(Array.from({ length: 40 }, () => send(control!.url, { path: "/api/items" })));
      expect(replies.every((r) => r.status === 200)).toBe(true);
    });
  });
}

const staticCluster = (name: string, port: number) => ({
  name, type: "STATIC", connect_timeout: "1s",
  load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] }] },
});
/**
 * A one-route bootstrap for the behaviour cases: the fixture filter (unless `policy` is null)
 * in front of cluster `web` (an echo on 127.0.0.1:18191), or of the clusters given.
 */
function small(opts: { policy?: Record<string, unknown> | null; clusters?: Record<string, unknown>[]; route?: string } = {}) {
  const fixture = { name: "fixture", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", config: {
    name: "fixture", root_id: "fixture", ...(opts.policy ?? {}),
    configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: "{}" },
    vm_config: { vm_id: "fixture", runtime: "envoy.wasm.runtime.v8", code: { local: { filename: "dist/fixtures/fixture.wasm" } } },
  } } };
  return {
    static_resources: {
      listeners: [hcmListener("small", 10090, {
        stat_prefix: "small",
        route_config: { name: "r", virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: opts.route ?? "web" } }] }] },
        http_filters: opts.policy === null ? [ROUTER_FILTER] : [fixture, ROUTER_FILTER],
      })],
      clusters: opts.clusters ?? [staticCluster("web", 18191)],
    },
  };
}

/**
 * Runs `fn` against real Envoy on `bootstrap` (one worker) with example upstreams; stops them all
 * whatever happens, and prints Envoy's log when `fn` fails.
 */
async function withEnvoy(target: Target, bootstrap: Record<string, any>, upstreams: EchoInstance[], fn: (url: string) => Promise<void>): Promise<void> {
  if (target.kind !== "envoy") throw new Error("withEnvoy: real Envoy targets only");
  const echo = await startEcho(upstreams, () => 0);
  let envoy: Awaited<ReturnType<typeof startEnvoy>> | undefined;
  try {
    envoy = await startEnvoy({ bin: target.bin, bootstrap, cwd: root, concurrency: 1 });
    await fn(`http://127.0.0.1:${[...envoy.ports.values()][0]}`);
  } catch (err) {
    if (envoy) console.error(`--- ${target.name}: last lines of Envoy's log ---\n${envoy.log().split("\n").slice(-80).join("\n")}`);
    throw err;
  } finally {
    await envoy?.stop();
    await echo();
  }
}

/** Records a case's view on a target for the differential check. */
function record(id: string, target: Target, lines: string[]): void {
  if (!results.has(id)) results.set(id, new Map());
  results.get(id)!.set(target.name, lines);
}
/** On an Envoy target, the test that compares case `id` with the local target's result. */
function sameAsLocal(id: string, target: Target): void {
  if (target.kind === "envoy" && LOCAL) test(`${id} [same result as the local target]`, () => compareRuns(id, results.get(id), LOCAL.name, target.name));
}

/** Polls `url` (after `last`) until a fresh fixture VM answers 200, for at most `ms`. */
async function expectFreshVm(url: string, last: Reply, ms: number): Promise<void> {
  const until = Date.now() + ms;
  let r = last;
  while (r.status !== 200 && Date.now() < until) {
    await new Promise((res) => setTimeout(res, 200));
    r = await send(url, { path: "/" });
  }
  expect(r.status).toBe(200);
  expect(r.headers["x-fixture-context"]).toBeDefined();
}

// The crash fixture runs where the suite controls the proxy's filters (local gateway, real Envoy).
describe.each(TARGETS.filter((t) => t.kind !== "kind"))("$name: a crashing filter under each failure policy", (target: Target) => {
  const trap: Array<[string, string]> = [["x-fixture-action", "trap"]];
  let front: Front | undefined;
  printLogOnFailure(() => front);
  afterAll(async () => { await front?.stop(); });
  // One worker: "later requests" then meet the VM that trapped.
  const start = async (policy: Record<string, unknown>) => { await front?.stop(); front = await startFront(target, small({ policy }), { workers: 1 }); return front; };

  // [policy, name, status of the trapping request, of the next request, does it recover after the reload backoff]
  const POLICIES: Array<[Record<string, unknown>, string, number, number, boolean]> = [
    [{ fail_open: false }, "legacy fail_open: false", 503, 503, false],
    [{ fail_open: true }, "legacy fail_open: true", 200, 200, false],
    [{ failure_policy: "FAIL_CLOSED" }, "failure_policy FAIL_CLOSED", 503, 503, false],
    [{ failure_policy: "FAIL_OPEN" }, "failure_policy FAIL_OPEN", 503, 200, false],
    [{ failure_policy: "FAIL_RELOAD" }, "failure_policy FAIL_RELOAD", 503, 503, true],
  ];
  for (const [policy, name, first, next, reloads] of POLICIES) {
    const id = `crash: ${name}`;
    test(`${name}: the trapping request gets ${first}, the next one ${next}${reloads ? ", and a fresh VM serves after the backoff" : ""}`, async () => {
      const f = await start(policy);
      const a = await send(f.url, { path: "/", headers: trap });
      const b = await send(f.url, { path: "/" });
      if (!results.has(id)) results.set(id, new Map());
      results.get(id)!.set(target.name, [...view(a, f.url).map((l) => `trap ${l}`), ...view(b, f.url).map((l) => `next ${l}`)]);
      expect(a.status).toBe(first);
      expect(b.status).toBe(next);
      // The reload backoff is 1 s (jittered); poll for the fresh VM for up to 5 s.
      if (reloads) await expectFreshVm(f.url, b, 5000);
    });
    if (target.kind === "envoy" && LOCAL) {
      test(`${name} [same result as the local target]`, () => compareRuns(id, results.get(id), LOCAL.name, target.name));
    }
  }
});

// On kind: a gateway per WasmPlugin failStrategy, each running the crash fixture alone with one
// worker (e2e/kind/resources.ts); Istio turns failStrategy into Envoy's failure_policy.
describe.each(TARGETS.filter((t) => t.kind === "kind"))("$name: a crashing WasmPlugin under each failStrategy", (target: Target) => {
  const trap: Array<[string, string]> = [["x-fixture-action", "trap"]];
  const urls = new Map((process.env.E2E_CRASH_URLS ?? "").split(",").filter(Boolean).map((e) => e.split("=", 2) as [string, string]));
  // [failStrategy, status of the trapping request, of the next request, does a fresh VM serve after the backoff]
  const STRATEGIES: Array<[string, number, number, boolean]> = [
    ["FAIL_OPEN", 503, 200, false],
    ["FAIL_CLOSE", 503, 503, false],
    ["FAIL_RELOAD", 503, 503, true],
  ];
  for (const [strategy, first, next, reloads] of STRATEGIES) {
    test(`${strategy}: the trapping request gets ${first}, the next one ${next}${reloads ? ", and a fresh VM serves after the backoff" : ""}`, async () => {
      const url = urls.get(strategy);
      if (!url) throw new Error(`E2E_CRASH_URLS has no ${strategy} gateway (run e2e/kind/run.sh)`);
      const f = kindFront(target, "E2E_GATEWAY_URL");
      const a = await send(url, { path: "/", headers: trap });
      const b = await send(url, { path: "/" });
      expect(a.status).toBe(first);
      expect(b.status).toBe(next);
      if (reloads) await expectFreshVm(url, b, 10000);
      // The suite's own gateway is not affected.
      expect((await send(f.url, { path: "/hello" })).status).toBe(200);
    });
  }
});

// Behaviours of Envoy that the host must match, settled on real Envoy (each compared with the local target).
describe.each(TARGETS.filter((t) => t.kind !== "kind"))("$name: Envoy behaviours the host reproduces", (target: Target) => {
  let front: Front | undefined;
  printLogOnFailure(() => front);
  afterAll(async () => { await front?.stop(); });
  const start = async (doc: Record<string, any>, opts: { upstreams?: boolean } = {}) => {
    await front?.stop();
    front = await startFront(target, doc, { workers: 1, ...opts });
    return front;
  };

  test("local reply: the filter's headers come first, then content-length and content-type; text/plain only when the filter set none", async () => {
    const f = await start(small({ policy: { fail_open: false } }));
    const json = await send(f.url, { path: "/", headers: [["x-fixture-action", "local-json"]] });
    const text = await send(f.url, { path: "/", headers: [["x-fixture-action", "local"]] });
    record("local reply content-type", target, [...view(json, f.url).map((l) => `json ${l}`), ...view(text, f.url).map((l) => `text ${l}`)]);
    expect(json.status).toBe(403);
    expect(json.raw.filter(([k]) => k.toLowerCase() === "content-type")).toEqual([["content-type", "application/json"]]);
    expect(json.body).toBe('{"denied":true}');
    expect(text.headers["content-type"]).toBe("text/plain");
    // Envoy lowercases the names a filter gives (X-Fixture-Local) and puts them before its own.
    // The fixture adds x-fixture-context while the reply is encoded: after Envoy's own.
    const names = text.raw.map(([k]) => k).filter((k) => !["date", "server", "connection"].includes(k.toLowerCase()));
    expect(names).toEqual(["x-fixture-local", "content-length", "content-type", "x-fixture-context"]);
  });
  sameAsLocal("local reply content-type", target);

  test("preserve_case on both sides (manifests/envoy/header-normalizer.yaml): names reach the app and the client as they were sent, Envoy's own in Proper-Case", async () => {
    const doc = parse(readFileSync(`${root}manifests/envoy/header-normalizer.yaml`, "utf8"));
    // The shipped file fronts an app on 8080; the example upstream takes a port of the suite's range.
    doc.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 18197;
    const f = await start(doc);
    const r = await sendRaw(f.url, ["GET /case HTTP/1.1", "Host: app", "X-Custom-Header: 1", "x-lower-case: 2", "SOAPAction: urn:x"]);
    record("preserve_case", target, view(r, f.url, false, true));
    expect(r.status).toBe(200);
    const upstream = (r.json().headers as Array<[string, string]>).map(([k]) => k);
    expect(upstream).toEqual(expect.arrayContaining(["Host", "X-Custom-Header", "x-lower-case", "SOAPAction", "X-Forwarded-Proto", "X-Request-Id"]));
    const client = r.raw.map(([k]) => k);
    expect(client).toEqual(expect.arrayContaining(["Content-Type", "X-Served-By"]));
    // Every other name on the client side is one the proxy wrote: Proper-Case.
    for (const k of client.filter((n) => !["Content-Type", "X-Served-By"].includes(n))) expect(k).toMatch(/^[A-Z][a-z0-9]*(-[A-Z][a-z0-9]*)*$/);
  });
  sameAsLocal("preserve_case", target);

  // Which side captures: the connection manager's formatter keeps the request's names, the
  // cluster's the response's (each side alone, on the same file).
  for (const only of ["connection manager", "cluster"] as const) {
    test(`preserve_case on the ${only} only: ${only === "cluster" ? "responses" : "requests"} keep their case, ${only === "cluster" ? "requests" : "responses"} are lowercase`, async () => {
      const doc = parse(readFileSync(`${root}manifests/envoy/header-normalizer.yaml`, "utf8"));
      doc.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 18197;
      if (only === "cluster") delete doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_protocol_options;
      else delete doc.static_resources.clusters[0].typed_extension_protocol_options;
      const f = await start(doc);
      const r = await sendRaw(f.url, ["GET /case HTTP/1.1", "Host: app", "X-Custom-Header: 1"]);
      record(`preserve_case ${only} only`, target, view(r, f.url, false, true));
      const upstream = (r.json().headers as Array<[string, string]>).map(([k]) => k);
      const client = r.raw.map(([k]) => k);
      if (only === "cluster") {
        expect(upstream).toContain("x-custom-header");
        expect(client).toEqual(expect.arrayContaining(["Content-Type", "X-Served-By"]));
      } else {
        expect(upstream).toEqual(expect.arrayContaining(["Host", "X-Custom-Header", "X-Request-Id"]));
        expect(client).toEqual(expect.arrayContaining(["content-type", "x-served-by"]));
      }
    });
    sameAsLocal(`preserve_case ${only} only`, target);
  }

  test("an upstream sending Transfer-Encoding twice: Envoy's codec answers 502, header-normalizer tags it and names the upstream once in the log", async () => {
    const doc = parse(readFileSync(`${root}manifests/envoy/header-normalizer.yaml`, "utf8"));
    doc.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 18195;
    const hn = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config;
    hn.configuration.value = JSON.stringify({ diagnostic_header: "x-upstream-diagnosis" });
    const bad = createServer((s) => s.once("data", () => s.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")));
    await new Promise<void>((res) => bad.listen(18195, "127.0.0.1", () => res()));
    try {
      const f = await start(doc, { upstreams: false });
      const r = await send(f.url, { path: "/report" });
      // The warning is written when the response is encoded; give the log a moment to reach the file.
      const until = Date.now() + 3000;
      let line: string | undefined;
      while (!(line = /upstream \S+( \([^)]*\))? sent a response Envoy's HTTP\/1 codec rejected \([^)]*\)/.exec(f.log())?.[0]) && Date.now() < until) await new Promise((x) => setTimeout(x, 50));
      record("duplicate transfer-encoding", target, [...view(r, f.url), `log: ${line ?? "<none>"}`]);
      expect(r.status).toBe(502);
      expect(r.headers["x-upstream-diagnosis"]).toBe("upstream-protocol-error");
      expect(line).toMatch(/^upstream app /);
    } finally {
      await new Promise<void>((res) => bad.close(() => res()));
    }
  });
  sameAsLocal("duplicate transfer-encoding", target);

  test("Envoy refuses more request headers than max_headers_count (431) before any filter", async () => {
    const f = await start(parse(readFileSync(`${root}manifests/envoy/podip-router.yaml`, "utf8")));
    const r = await sendRaw(f.url, ["GET /x HTTP/1.1", "Host: web", ...Array.from({ length: 120 }, (_, i) => `h${i}: 1`)]);
    record("max_headers_count", target, view(r, f.url));
    expect(r.status).toBe(431);
  });
  sameAsLocal("max_headers_count", target);

  test("podip-router fails closed when it cannot read the request headers whole (max_headers_count raised to 2,000; 1,100 headers)", async () => {
    const doc = parse(readFileSync(`${root}manifests/envoy/podip-router.yaml`, "utf8"));
    const hcm = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    hcm.common_http_protocol_options = { max_headers_count: 2000 };
    hcm.max_request_headers_kb = 96;
    const f = await start(doc);
    const smuggled = ["x-envoy-original-dst-host: 127.0.0.1:18103", `x-podip-session: ${Buffer.from("127.0.0.1:18103").toString("base64")}`];
    for (const path of ["/hello", `/_pod/${PIN.replica}/hello`]) {
      const r = await sendRaw(f.url, [`GET ${path} HTTP/1.1`, "Host: web", ...Array.from({ length: 1100 }, (_, i) => `h${i}: 1`), ...smuggled]);
      record(`unreadable headers ${path}`, target, view(r, f.url));
      expect(r.status).toBe(400);
      expect(r.body).toBe("podip-router: the request headers could not be read whole, so they could not be sanitised\n");
    }
  });
  sameAsLocal("unreadable headers /hello", target);
  sameAsLocal(`unreadable headers /_pod/${PIN.replica}/hello`, target);

  for (const mode of ["original-dst-filter-state", "original-dst-header"]) {
    test(`podip-router hand_off ${mode} (manifests/envoy/podip-router.yaml): the pin reaches the named replica through the ORIGINAL_DST cluster`, async () => {
      const doc = parse(readFileSync(`${root}manifests/envoy/podip-router.yaml`, "utf8"));
      const podip = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config;
      podip.configuration.value = JSON.stringify({ ...JSON.parse(podip.configuration.value), hand_off: mode });
      const f = await start(doc);
      const r = await send(f.url, { path: `/_pod/${PIN.replica}/hello` });
      record(`hand_off ${mode}`, target, view(r, f.url, true));
      expect(r.status).toBe(200);
      expect(`127.0.0.1:${r.json().port}`).toBe(PIN.replica);
      expect(r.json().path).toBe("/hello");
      // A client's own pin header and destination never take that route.
      const c = await send(f.url, { path: "/hello", headers: [["x-podip-router-pin", "original-dst"], ["x-envoy-original-dst-host", "127.0.0.1:18150"]] });
      expect(c.status).toBe(200);
      expect(seen(c, "x-podip-router-pin")).toEqual([]);
      expect(seen(c, "x-envoy-original-dst-host")).toEqual([]);
    });
    sameAsLocal(`hand_off ${mode}`, target);
  }

  // The Istio recipe (for Istio before 1.25), each hop's patches applied as istiod would to a
  // sidecar-like bootstrap, chained: the caller's sidecar (or the gateway) -> the app's sidecar ->
  // the app. Real Envoy only: the local gateway does not read Istio-shaped bootstraps (node, SDS).
  if (target.kind === "envoy") {
    for (const [first, label] of [[1, "a calling sidecar"], [2, "the ingress gateway"]] as const) {
      test(`preserve-case.envoyfilter.yaml on ${label} and the app's sidecar: names keep their case both ways, and only the app's cluster is patched`, async () => {
        const efs = parseAllDocuments(readFileSync(`${root}manifests/header-normalizer/preserve-case.envoyfilter.yaml`, "utf8")).map((d) => d.toJS() as any);
        const appSide = envoyFilterBootstrap(efs[0], { context: "SIDECAR_INBOUND", endpointPort: () => 18197 });
        // The app's sidecar in front of the app, then the first hop in front of the app's sidecar.
        await withEnvoy(target, appSide, [{ service: "legacy-app", env: "default", replica: 0, port: 18197 }], async (appUrl) => {
          const firstSide = envoyFilterBootstrap(efs[first], { context: first === 1 ? "SIDECAR_OUTBOUND" : "GATEWAY", endpointPort: () => Number(new URL(appUrl).port) });
          await withEnvoy(target, firstSide, [], async (url) => {
            const r = await sendRaw(url, ["GET /case HTTP/1.1", "Host: legacy-app", "X-Custom-Header: 1", "SOAPAction: urn:x"]);
            expect(r.status).toBe(200);
            const upstream = (r.json().headers as Array<[string, string]>).map(([k]) => k);
            expect(upstream).toEqual(expect.arrayContaining(["Host", "X-Custom-Header", "SOAPAction"]));
            expect(r.raw.map(([k]) => k)).toEqual(expect.arrayContaining(["Content-Type", "X-Served-By"]));
            // Every cluster but the app's keeps its own protocol options.
            for (const doc of [appSide, firstSide]) {
              const other = doc.static_resources.clusters.find((c: any) => c.name.startsWith("outbound|9090|"));
              expect(other.typed_extension_protocol_options).toBeUndefined();
            }
          });
        });
      });
    }
  }

  // env-router at the gateway as shipped (manifests/env-router/istio.yaml): the trust guard first,
  // env-router (gateway mode) before the router; Envoy-only, like the recipe above.
  if (target.kind === "envoy") {
    test("env-router's gateway resources on real Envoy: a client's trust header and tag, in every carrier, never pass the gateway", async () => {
      const docs = parseAllDocuments(readFileSync(`${root}manifests/env-router/istio.yaml`, "utf8")).map((d) => d.toJS() as any);
      const guard = docs.find((d) => d.metadata.name === "env-router-trust-guard");
      const gw = docs.find((d) => d.metadata.name === "env-router-gateway");
      const bootstrap = envoyFilterBootstrap({ metadata: { name: "gateway" }, spec: { configPatches: [...guard.spec.configPatches, ...gw.spec.configPatches] } }, { endpointPort: () => 18198 });
      await withEnvoy(target, bootstrap, [{ service: "productpage", env: "default", replica: 0, port: 18198 }], async (url) => {
        const r = await send(url, { path: "/", headers: [
          ["Host", "productpage"], ["x-env", "feature-x"], ["x-env-trusted", "i-say-so"], ["baggage", "userId=alice,env=feature-x"], ["cookie", "theme=dark; env=feature-x"],
        ] });
        expect(r.status).toBe(200);
        expect(seen(r, "x-env-trusted")).toEqual([]);
        expect(seen(r, "x-env")).toEqual([]);
        expect(seen(r, "baggage")).toEqual(["userId=alice"]);
        expect(seen(r, "cookie")).toEqual(["theme=dark"]);
        expect(seen(r, "x-env-route")).toEqual(["default"]);
      });
    });
  }

  if (target.kind === "envoy") {
    test("podip-router's istio-session.yaml on real Envoy: a client's own x-ops-authenticated is never believed, and never reaches a pod", async () => {
      const docs = parseAllDocuments(readFileSync(`${root}manifests/podip-router/istio-session.yaml`, "utf8")).map((d) => d.toJS() as any);
      const bootstrap = envoyFilterBootstrap({ metadata: { name: "gateway" }, spec: { configPatches: docs.flatMap((d) => d.spec.configPatches) } }, { endpointPort: () => 18198 });
      await withEnvoy(target, bootstrap, [{ service: "web", env: "default", replica: 0, port: 18198 }], async (url) => {
        const pin = await send(url, { path: "/_pod/10.8.3.17:8080/x", headers: [["x-ops-authenticated", "i-say-so"]] });
        expect(pin.status).toBe(403);
        expect(pin.body).toBe("podip-router: not allowed to pin a pod\n");
        const plain = await send(url, { path: "/x", headers: [["x-ops-authenticated", "i-say-so"]] });
        expect(plain.status).toBe(200);
        expect(seen(plain, "x-ops-authenticated")).toEqual([]);
      });
    });
  }

  // Health-aware fallback (manifests/envoy/env-router.yaml): aggregate clusters over each env's
  // fallback chain with active health checks. Real Envoy only: the local gateway has neither.
  if (target.kind === "envoy") {
    test("env-router's standalone bootstrap falls back on health: reviews@feature-x stops, its traffic goes to default within seconds, and returns when it answers again", async () => {
      const doc = parse(readFileSync(`${root}manifests/envoy/env-router.yaml`, "utf8"));
      const instances = doc.static_resources.clusters.filter((c: any) => c.type === "STATIC").map((c: any) => {
        const [service, env] = c.name.split(/\.(.+)/);
        return { service, env, replica: 0, port: c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value };
      });
      const featureX = instances.find((i: any) => i.service === "reviews" && i.env === "feature-x")!;
      // The reviews@feature-x upstream is started and stopped on its own; withEnvoy runs the rest.
      let stopFeatureX: (() => Promise<void>) | undefined = await startEcho([featureX], () => 0);
      try {
        await withEnvoy(target, doc, instances.filter((i: any) => i !== featureX), async (url) => {
          const servedBy = async () => {
            const r = await send(url, { path: "/", headers: [["Host", "reviews"], ["x-env", "feature-x"]] });
            return r.status === 200 ? `${r.json().service}@${r.json().env}` : `status ${r.status}`;
          };
          const until = async (want: string) => {
            const deadline = Date.now() + 10000;
            let got = await servedBy();
            while (got !== want && Date.now() < deadline) { await new Promise((res) => setTimeout(res, 100)); got = await servedBy(); }
            return got;
          };
          expect(await servedBy()).toBe("reviews@feature-x");
          await stopFeatureX!();
          stopFeatureX = undefined;
          expect(await until("reviews@default")).toBe("reviews@default");
          // Once Envoy has seen it go, every request is served (no 503 while it is away).
          for (let i = 0; i < 10; i++) expect(await servedBy()).toBe("reviews@default");
          stopFeatureX = await startEcho([featureX], () => 0);
          expect(await until("reviews@feature-x")).toBe("reviews@feature-x");
        });
      } finally {
        await stopFeatureX?.();
      }
    }, 40000);
  }

  // The Istio form of the fallback (env-router-health-fallback in manifests/env-router/istio.yaml):
  // its patches on a sidecar-like bootstrap whose reviews subsets are STATIC clusters, as Istio's
  // EDS would give them: with the feature-x subset empty (pods gone), the env's route falls to default.
  if (target.kind === "envoy") {
    test.each([["has a ready pod", true], ["has no endpoint", false]])("env-router's Istio fallback on real Envoy: reviews' feature-x subset %s", async (_n, up) => {
      const docs = parseAllDocuments(readFileSync(`${root}manifests/env-router/istio.yaml`, "utf8")).map((d) => d.toJS() as any);
      const ef = docs.find((d) => d.metadata.name === "env-router-health-fallback");
      const host = "reviews.bookinfo.svc.cluster.local";
      const subset = (env: string) => `outbound|9080|${env}|${host}`;
      const bootstrap = envoyFilterBootstrap(ef, {
        extraClusters: [subset("feature-x"), subset("team-a"), subset("default")],
        endpointPort: (name) => (name === subset("default") ? 18198 : name === subset("feature-x") && up ? 18199 : name.startsWith("outbound|9080|") ? null : 18999),
      });
      const upstreams = [{ service: "reviews", env: "default", replica: 0, port: 18198 }, { service: "reviews", env: "feature-x", replica: 0, port: 18199 }];
      await withEnvoy(target, bootstrap, upstreams, async (url) => {
        const r = await send(url, { path: "/", headers: [["Host", `${host}:9080`], ["x-patched-route", "env-feature-x"]] });
        expect(r.status).toBe(200);
        expect(`${r.json().service}@${r.json().env}`).toBe(up ? "reviews@feature-x" : "reviews@default");
      });
    });
  }

  const odst = (useHeader: boolean) => small({
    policy: null, route: "odst",
    clusters: [
      { name: "odst", type: "ORIGINAL_DST", lb_policy: "CLUSTER_PROVIDED", connect_timeout: "1s", ...(useHeader ? { original_dst_lb_config: { use_http_header: true } } : {}) },
      staticCluster("target", 18196),
    ],
  });
  test("ORIGINAL_DST with use_http_header routes to x-envoy-original-dst-host", async () => {
    const f = await start(odst(true));
    const r = await send(f.url, { path: "/", headers: [["x-envoy-original-dst-host", "127.0.0.1:18196"]] });
    record("original_dst with use_http_header", target, view(r, f.url, true));
    expect(r.status).toBe(200);
    expect(r.json().port).toBe(18196);
  });
  sameAsLocal("original_dst with use_http_header", target);
  test("ORIGINAL_DST without use_http_header ignores x-envoy-original-dst-host: 503 no healthy upstream", async () => {
    const f = await start(odst(false));
    const r = await send(f.url, { path: "/", headers: [["x-envoy-original-dst-host", "127.0.0.1:18196"]] });
    record("original_dst without use_http_header", target, view(r, f.url, true));
    expect(r.status).toBe(503);
    expect(r.body).toBe("no healthy upstream");
  });
  sameAsLocal("original_dst without use_http_header", target);
});
