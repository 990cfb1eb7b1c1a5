// HTTP callouts: reference section 2.13.
import { describe, expect, test } from "vitest";
import { withFixture } from "./helpers.js";

const action = (a: string): [string, string] => ["x-fixture-action", a];

describe("proxy_http_call (2.13)", () => {
  test("the call goes to a named cluster; the answer reaches the root, then the stream through set_effective_context", async () => {
    const { envoy } = withFixture({ workers: 1, traceCalls: true });
    const seen: Array<[string, string]>[] = [];
    envoy.addCluster("authz", (req) => { seen.push(req.headers); return { status: 200, body: "allowed" }; });
    const res = await envoy.request({ headers: [action("call"), ["x-fixture-cluster", "authz"]] });
    expect(res.status).toBe(200);
    expect(res.upstream!.header("x-fixture-call-status")).toBe("200");
    expect(res.upstream!.header("x-fixture-call-body")).toBe("allowed");
    // The first token on a VM is 4.
    expect(res.upstream!.header("x-fixture-rc")).toBe("4");
    expect(seen[0]).toEqual([[":method", "GET"], [":path", "/check"], [":authority", "control"], ["content-length", "4"]]);
    const cb = envoy.calls!.find((c) => c.name === "proxy_on_http_call_response")!;
    expect(cb.args.slice(0, 2)).toEqual([1, 4]); // root context id, token
  });

  test("tokens step by 4 per VM", async () => {
    const { envoy } = withFixture({ workers: 1 });
    envoy.addCluster("control", () => ({ status: 200 }));
    const a = await envoy.request({ headers: [action("call")] });
    const b = await envoy.request({ headers: [action("call")] });
    expect([a.upstream!.header("x-fixture-rc"), b.upstream!.header("x-fixture-rc")]).toEqual(["4", "8"]);
  });

  test("an unknown cluster is BadArgument at call time", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ headers: [action("call"), ["x-fixture-cluster", "nowhere"]] });
    expect(res.upstream!.header("x-fixture-rc")).toBe("-2");
  });

  test("headers without :authority are BadArgument", async () => {
    const { envoy } = withFixture({ workers: 1 });
    envoy.addCluster("control", () => ({ status: 200 }));
    const res = await envoy.request({ headers: [action("call, call-no-authority")] });
    expect(res.upstream!.header("x-fixture-rc")).toBe("-2");
  });

  test("a reset call is delivered with no headers and status BrokenConnection", async () => {
    const { envoy } = withFixture({ workers: 1 });
    envoy.addCluster("control", () => "reset");
    const res = await envoy.request({ headers: [action("call")] });
    expect(res.status).toBe(200);
    expect(res.upstream!.header("x-fixture-call-status")).toBe("0");
  });

  test("a local reply sent from the call's callback answers the paused stream", async () => {
    const { envoy } = withFixture({ workers: 1 });
    envoy.addCluster("control", () => ({ status: 500 }));
    const res = await envoy.request({ headers: [action("call-deny")] });
    expect(res.status).toBe(502);
    expect(res.details).toBe("fixture_call_failed");
    expect(res.upstream).toBeNull();
  });
});
