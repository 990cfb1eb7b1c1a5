// runtime/gateway/envoy.ts, the one way the suite runs real Envoy: loopback only, ready when the
// admin endpoint says so, stopped for good, and a failed start reported with Envoy's own log.
import { describe, expect, inject, test } from "vitest";
import { hcmListener, ROUTER_FILTER } from "../manifests/src/wasm.js";
import { httpGet, startEnvoy } from "../runtime/gateway/envoy.js";

const root = new URL("..", import.meta.url).pathname;
const direct = (status: number) => ({
  static_resources: {
    listeners: [hcmListener("probe", 10999, {
      stat_prefix: "probe",
      route_config: { name: "r", virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status, body: { inline_string: "probe" } } }] }] },
      http_filters: [ROUTER_FILTER],
    })],
  },
});

describe.each(inject("envoys"))("Envoy $version as the suite runs it", ({ bin }) => {
  test("two at once on loopback (free ports, dynamic base ids), ready through admin, gone after stop()", async () => {
    const [a, b] = await Promise.all([startEnvoy({ bin, bootstrap: direct(200), cwd: root }), startEnvoy({ bin, bootstrap: direct(201), cwd: root })]);
    try {
      expect(new URL(a.adminUrl).hostname).toBe("127.0.0.1");
      expect((await httpGet(`${a.adminUrl}/ready`)).body.trim()).toBe("LIVE");
      expect((await httpGet(`http://127.0.0.1:${a.ports.get("probe")}/`)).status).toBe(200);
      expect((await httpGet(`http://127.0.0.1:${b.ports.get("probe")}/`)).status).toBe(201);
      expect(a.ports.get("probe")).not.toBe(10999);
    } finally {
      await a.stop();
      await b.stop();
    }
    for (const p of [a, b]) {
      expect(p.exited()).toBe(true);
      expect(() => process.kill(p.pid, 0)).toThrow();
      expect(p.log()).toContain("starting main dispatch loop");
    }
  });

  test("a bootstrap Envoy refuses: the start fails with Envoy's reason and log", async () => {
    const bad: any = direct(200);
    bad.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route = { cluster: "missing" };
    delete bad.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].direct_response;
    await expect(startEnvoy({ bin, bootstrap: bad, cwd: root })).rejects.toThrow(/did not become ready: it exited[\s\S]*missing/);
  });
});
