// The Grafana dashboard (manifests/grafana/adaptive-ratelimit.json) against the names real Envoy
// exports the limiter's metrics under on /stats/prometheus: every series a panel queries exists,
// and the rule variable finds every rule (also one whose name Prometheus has to rewrite).
import { readFileSync } from "node:fs";
import { describe, expect, inject, test } from "vitest";
import { hcmListener, ROUTER_FILTER, wasmHttpFilter } from "../../../manifests/src/wasm.js";
import { httpGet, startEnvoy } from "../../../runtime/gateway/envoy.js";
import { wasmPath } from "../../../runtime/host/test/helpers.js";

const root = new URL("../../..", import.meta.url).pathname;
const dashboard = JSON.parse(readFileSync(`${root}manifests/grafana/adaptive-ratelimit.json`, "utf8"));

const configuration = {
  tick_ms: 100,
  rules: [
    { name: "api", match: { path_prefix: "/api" }, controller: { signal: "latency", setpoint_ms: 200 } },
    { name: "checkout-v2", match: { path_prefix: "/checkout" }, controller: { signal: "error_ratio", setpoint_ratio: 0.01 } },
  ],
};

function bootstrap(): Record<string, unknown> {
  return {
    static_resources: {
      listeners: [hcmListener("front", 10000, {
        stat_prefix: "front",
        route_config: { name: "r", virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "ok" } } }] }] },
        http_filters: [
          wasmHttpFilter({ filter: "adaptive-ratelimit", configuration, filename: wasmPath("adaptive-ratelimit"), failOpen: false }),
          ROUTER_FILTER,
        ],
      })],
    },
  };
}

/** The metric selectors of every panel query, with ${rule} set: exact names and __name__ regexes. */
function selectors(rule: string): Array<{ panel: string; name?: string; regex?: RegExp }> {
  const out: Array<{ panel: string; name?: string; regex?: RegExp }> = [];
  for (const p of dashboard.panels) {
    for (const t of p.targets) {
      const expr = (t.expr as string).split("${rule}").join(rule);
      for (const m of expr.matchAll(/__name__=~"([^"]+)"/g)) out.push({ panel: p.title, regex: new RegExp(`^${m[1]}$`) });
      for (const m of expr.replace(/__name__=~"[^"]+"/g, "").matchAll(/\badaptive_ratelimit_[a-z0-9_]+/g)) out.push({ panel: p.title, name: m[0] });
    }
  }
  return out;
}

describe.each(inject("envoys"))("the Grafana dashboard against Envoy $version's Prometheus names", ({ bin }) => {
  test("every panel's series exists for every rule, and the rule variable lists the rules", async () => {
    const envoy = await startEnvoy({ bin, bootstrap: bootstrap(), cwd: root });
    let names: Set<string>;
    try {
      const port = envoy.ports.get("front")!;
      for (const path of ["/api/a", "/checkout/b"]) for (let i = 0; i < 5; i++) await (await fetch(`http://127.0.0.1:${port}${path}`)).text();
      const body = (await httpGet(`${envoy.adminUrl}/stats/prometheus`)).body;
      names = new Set(body.split("\n").filter((l) => l.length > 0 && !l.startsWith("#")).map((l) => l.split(/[{ ]/)[0]));
    } finally {
      await envoy.stop();
    }
    // The rule variable: metric names matching its query, through its regex.
    const variable = dashboard.templating.list.find((v: any) => v.name === "rule");
    const query = new RegExp(`^${(variable.definition as string).match(/^metrics\((.*)\)$/)![1]}$`);
    const extract = new RegExp((variable.regex as string).slice(1, -1));
    const rules = [...names].filter((n) => query.test(n)).map((n) => n.match(extract)![1]).sort();
    expect(rules).toEqual(["api", "checkout_v2"]);
    for (const rule of rules) {
      for (const s of selectors(rule)) {
        if (s.name) expect(names.has(s.name), `${s.panel}: ${s.name}`).toBe(true);
        else expect([...names].some((n) => s.regex!.test(n)), `${s.panel}: ${s.regex}`).toBe(true);
      }
    }
  });
});
