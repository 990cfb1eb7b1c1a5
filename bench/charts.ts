// Charts of the closed loop (npm run bench:ratelimit): per scenario, one column per controller,
// requests/s on top (offered, admitted, admitted within the SLO, the limit where it is a rate)
// and the set percentile against the setpoint below. Vega-Lite compiled and rendered to SVG in
// Node (no browser, no canvas: the "none" renderer lays text out with estimated widths).
import * as vega from "vega";
import * as vl from "vega-lite";
import { type Outcome, type Trace, percentile } from "./closed-loop.js";

export interface Row { controller: string; t: number; panel: string; series: string; value: number }

/** Per-second rows of one controller's run: the rates, the limit (if a rate) and the percentile. */
export function seriesOf(controller: string, outcomes: Outcome[], seconds: number, q: number, setpointMs: number, limit?: Trace): Row[] {
  const rows: Row[] = [];
  const rate = "requests/s", lat = `p${q * 100} latency (ms)`;
  const bySecond: Outcome[][] = Array.from({ length: seconds }, () => []);
  for (const o of outcomes) { const s = Math.floor(o.arrival / 1000); if (s < seconds) bySecond[s].push(o); }
  for (let t = 0; t < seconds; t++) {
    const w = bySecond[t];
    const admitted = w.filter((o) => o.admitted && o.latency !== undefined);
    rows.push({ controller, t, panel: rate, series: "offered", value: w.length });
    rows.push({ controller, t, panel: rate, series: "admitted", value: admitted.length });
    rows.push({ controller, t, panel: rate, series: "admitted within the SLO", value: admitted.filter((o) => o.latency! <= setpointMs).length });
    if (limit && limit[t] !== undefined) rows.push({ controller, t, panel: rate, series: "limit", value: limit[t] });
    if (admitted.length > 0) rows.push({ controller, t, panel: lat, series: "measured", value: Math.max(1, percentile(admitted.map((o) => o.latency!), q)) });
    rows.push({ controller, t, panel: lat, series: "setpoint", value: setpointMs });
  }
  return rows;
}

/** The SVG of one scenario. */
export async function chartSvg(title: string, rows: Row[], controllers: string[]): Promise<string> {
  const spec: vl.TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: { text: title, anchor: "start" },
    data: { values: rows },
    facet: {
      row: { field: "panel", type: "nominal", title: null, sort: "descending" },
      column: { field: "controller", type: "nominal", title: null, sort: controllers, header: { labelLimit: 240 } },
    },
    spec: {
      width: 240,
      height: 150,
      mark: { type: "line", strokeWidth: 1.5, interpolate: "step-after" },
      encoding: {
        x: { field: "t", type: "quantitative", title: "time (s)" },
        y: { field: "value", type: "quantitative", title: null, scale: { zero: false, type: "symlog" } },
        color: { field: "series", type: "nominal", title: null, scale: { domain: ["offered", "admitted", "admitted within the SLO", "limit", "measured", "setpoint"], range: ["#9e9e9e", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"] } },
        strokeDash: { condition: { test: "datum.series === 'setpoint' || datum.series === 'limit'", value: [4, 3] }, value: [1, 0] },
      },
    },
    resolve: { scale: { y: "independent" } },
    config: { font: "sans-serif", view: { stroke: "#ddd" } },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
