// adaptive-ratelimit in real Envoy: the priority class named by the route's metadata and by
// filter state an earlier filter (envoy.filters.http.set_filter_state) set, read through the
// property paths the filter uses (xds.route_metadata..., filter_state.<key>).
import { describe, expect, inject, test } from "vitest";
import { hcmListener, ROUTER_FILTER, wasmHttpFilter } from "../../../manifests/src/wasm.js";
import { startEnvoy } from "../../../runtime/gateway/envoy.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";

const root = new URL("../../..", import.meta.url).pathname;

// One token every 5 s and a 50 s bucket (10 tokens; a refill matters only after 20 s): critical
// needs 1 token, sheddable (reserve 0.95) 1 + 0.95 x 9 = 9.55. After a few critical requests
// only critical fits.
const configuration = {
  classes: [{ name: "critical" }, { name: "sheddable", reserve: 0.95 }],
  default_class: "sheddable",
  priority_from: [{ route_metadata: "priority" }, { filter_state: "acme.priority" }, { header: "x-priority" }],
  rules: [{ name: "api", burst_ms: 50000, controller: { signal: "latency", setpoint_ms: 200, min_rate: 0.2, max_rate: 0.2, initial_rate: 0.2 } }],
};

const direct = { direct_response: { status: 200, body: { inline_string: "ok" } } };
const withClass = (prefix: string, cls: string) => ({ match: { prefix }, metadata: { filter_metadata: { "adaptive-ratelimit": { priority: cls } } }, ...direct });

function bootstrap(): Record<string, unknown> {
  return {
    static_resources: {
      listeners: [hcmListener("front", 10000, {
        stat_prefix: "front",
        route_config: {
          name: "r",
          virtual_hosts: [{ name: "all", domains: ["*"], routes: [withClass("/api/critical", "critical"), withClass("/api/sheddable", "sheddable"), { match: { prefix: "/" }, ...direct }] }],
        },
        http_filters: [
          // A trusted filter in front: it copies the class an authenticated caller was given
          // (here simply a header this test sets) into filter state.
          {
            name: "envoy.filters.http.set_filter_state",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
              on_request_headers: [{ object_key: "acme.priority", factory_key: "envoy.string", format_string: { text_format_source: { inline_string: "%REQ(x-trusted-class)%" } }, skip_if_empty: true }],
            },
          },
          wasmHttpFilter({ filter: "adaptive-ratelimit", configuration, filename: wasmPath("adaptive-ratelimit"), failOpen: false }),
          ROUTER_FILTER,
        ],
      })],
    },
  };
}

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  await r.text();
  return r.status;
}

describe.each(inject("envoys"))("adaptive-ratelimit on Envoy $version: the class from the route and from filter state", ({ bin }) => {
  test("route metadata and filter state name the class; the route's class beats the client's header", async () => {
    const envoy = await startEnvoy({ bin, bootstrap: bootstrap(), cwd: root, concurrency: 1 });
    try {
      const port = envoy.ports.get("front")!;
      // Three critical requests by the route's metadata: the bucket (10) drops to about 7.
      for (let i = 0; i < 3; i++) expect(await get(port, "/api/critical/x")).toBe(200);
      // A sheddable route is refused even when the client claims critical.
      expect(await get(port, "/api/sheddable/x", { "x-priority": "critical" })).toBe(429);
      // No metadata on this route: filter state set by the trusted filter gives critical.
      expect(await get(port, "/api/other", { "x-trusted-class": "critical" })).toBe(200);
      expect(await get(port, "/api/other", { "x-trusted-class": "sheddable", "x-priority": "critical" })).toBe(429);
      // Neither: the header is the last source.
      expect(await get(port, "/api/other", { "x-priority": "critical" })).toBe(200);
      // Nothing names a class: the default, sheddable.
      expect(await get(port, "/api/other")).toBe(429);
    } finally {
      await envoy.stop();
    }
  });
});
