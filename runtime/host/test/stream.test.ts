// Stream control and status mapping: reference sections 2.8 (bodies), 2.9 (continue, close,
// local reply) and 4 (status codes).
import { describe, expect, test } from "vitest";
import { withFixture } from "./helpers.js";

const action = (a: string): [string, string] => ["x-fixture-action", a];

describe("send_local_response (2.9)", () => {
  test("is sent after the callback returns, through the filter's own response callbacks", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ headers: [action("local")] });
    expect(res.status).toBe(403);
    expect(res.body).toBe("denied by fixture");
    expect(res.localReply).toBe(true);
    expect(res.upstream).toBeNull();
    // Added keys are lowercased; the filter's on_response_headers saw its own reply.
    expect(res.header("x-fixture-local")).toBe("yes");
    expect(res.header("x-fixture-context")).toBe("2");
    expect(res.header("content-type")).toBe("text/plain");
    expect(res.header("content-length")).toBe("17");
  });

  test("details have whitespace replaced by underscores", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ headers: [action("local")] });
    expect(res.details).toBe("fixture_denied");
  });
});

describe("status mapping (4)", () => {
  test("StopIteration from headers holds the request until continue_stream (here from on_tick)", async () => {
    const { envoy } = withFixture({ workers: 1 }, { configuration: `{"tick_ms": 100}` });
    let done = false;
    const pending = envoy.request({ headers: [action("stop-tick")] }).then((r) => { done = true; return r; });
    await envoy.settle();
    expect(done).toBe(false);
    await envoy.advance(100);
    const res = await pending;
    expect(res.status).toBe(200);
    // The tick wrote a request header through the paused stream's context before continuing.
    expect(res.upstream!.header("x-fixture-resumed-by")).toBe("tick");
  });

  test("StopIteration from headers stops everything: no body callback until the stream continues", async () => {
    const { envoy } = withFixture({ workers: 1, traceCalls: true }, { configuration: `{"tick_ms": 50}` });
    envoy.calls!.length = 0;
    const pending = envoy.request({ method: "POST", body: ["a", "b"], headers: [action("stop-tick")] });
    await envoy.settle();
    const names = () => envoy.calls!.filter((c) => c.worker === 0).map((c) => c.name);
    expect(names()).toEqual(["proxy_on_context_create", "proxy_on_request_headers"]);
    await envoy.advance(50);
    const res = await pending;
    expect(names().filter((n) => n === "proxy_on_request_body")).toHaveLength(2);
    expect(res.upstream!.body.toString()).toBe("ab");
  });

  test("ContinueAndEndStream acts as Continue", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ method: "POST", body: "payload", headers: [action("continue-and-end")] });
    expect(res.status).toBe(200);
    expect(res.upstream!.body.toString()).toBe("payload");
  });
});

describe("bodies (2.8)", () => {
  test("StopIterationAndBuffer accumulates chunks; a whole-body replace reaches the upstream", async () => {
    const { envoy } = withFixture({ workers: 1, traceCalls: true });
    envoy.calls!.length = 0;
    const res = await envoy.request({ method: "POST", body: ["hello ", "big ", "world"], headers: [action("body-upper")] });
    expect(res.upstream!.body.toString()).toBe("HELLO BIG WORLD");
    // Envoy 1.33+: each call sees the whole buffered body so far.
    const sizes = envoy.calls!.filter((c) => c.name === "proxy_on_request_body").map((c) => [c.args[1], c.args[2]]);
    expect(sizes).toEqual([[6, 0], [10, 0], [15, 1]]);
  });

  test("buffering beyond the buffer limit answers 413", async () => {
    const { envoy } = withFixture({ workers: 1, bufferLimitBytes: 8 });
    const res = await envoy.request({ method: "POST", body: ["12345", "67890"], headers: [action("body-upper")] });
    expect(res.status).toBe(413);
    expect(res.upstream).toBeNull();
  });

  test("body hostcalls outside body callbacks see an empty body", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({ method: "POST", body: "x", headers: [action("late-read")] });
    expect(res.status).toBe(200);
    expect(envoy.logsAt("info")).toContain("wasm log fixture-plugin fixture vm1: late read in body: <absent>");
  });
});

test("close_stream resets the stream (2.9)", async () => {
  const { envoy } = withFixture({ workers: 1 });
  const res = await envoy.request({ headers: [action("close")] });
  expect(res.reset).toBe(true);
  expect(res.status).toBe(0);
  expect(res.details).toBe("wasm_close_stream");
  expect(res.upstream).toBeNull();
});

describe("the HTTP/1 codec on upstream responses (anchors 3.1; istio/istio#24753)", () => {
  test("two Transfer-Encoding: chunked lines: Envoy's router answers 502 with protocol_error details, through the filters", async () => {
    const { envoy } = withFixture({ workers: 1 });
    const res = await envoy.request({
      upstream: () => ({ status: 200, headers: [["Transfer-Encoding", "chunked"], ["transfer-encoding", "chunked"]], body: "x" }),
    });
    expect(res.status).toBe(502);
    expect(res.details).toBe("upstream_reset_before_response_started{protocol_error}");
    expect(res.body).toBe("upstream connect error or disconnect/reset before headers. reset reason: protocol error");
    expect(res.header("x-fixture-context")).toBe("2");
  });

  test("a single Transfer-Encoding passes; over HTTP/2 the codec check does not apply", async () => {
    const { envoy } = withFixture({ workers: 1 });
    expect((await envoy.request({ upstream: () => ({ status: 200, headers: [["transfer-encoding", "chunked"]] }) })).status).toBe(200);
    expect((await envoy.request({ upstream: () => ({ status: 200, protocol: "HTTP/2", headers: [["transfer-encoding", "chunked"], ["transfer-encoding", "chunked"]] }) })).status).toBe(200);
  });

  test("Transfer-Encoding on a 204 is refused too", async () => {
    const { envoy } = withFixture({ workers: 1 });
    expect((await envoy.request({ upstream: () => ({ status: 204, headers: [["transfer-encoding", "chunked"]] }) })).status).toBe(502);
  });
});
