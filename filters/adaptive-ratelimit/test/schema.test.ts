// config.schema.json and the filter must agree, and the README's configuration table must
// list the schema's fields (test/filter-contract.ts).
import { configurationContract } from "../../../test/filter-contract.js";

const rule = { name: "api", controller: { signal: "latency", setpoint_ms: 200 } };
configurationContract("adaptive-ratelimit", [
  {},
  { rules: [] },
  { rules: [{ ...rule, name: "API" }] },
  { rules: [{ ...rule, controller: { signal: "cpu" } }] },
  { rules: [{ ...rule, controller: { ...rule.controller, kp: -1 } }] },
  { rules: [{ ...rule, controller: { ...rule.controller, interval_ms: 0 } }] },
  { rules: [rule], reject_status: 200 },
  { rules: [rule], classes: [] },
  { rules: [rule], unknown: true },
  { rules: [{ ...rule, controller: { ...rule.controller, inflight_guard: 1.5 } }] },
  { rules: [{ ...rule, controller: { signal: "error_ratio", setpoint_ratio: 0.01, inflight_guard: 0.5 } }] },
  { rules: [{ ...rule, controller: { signal: "error_ratio", setpoint_ms: 100 } }] },
  { rules: [{ ...rule, controller: { signal: "latency" } }] },
  { rules: [rule], priority_from: [] },
  { rules: [rule], priority_from: [{ header: "x-p", filter_state: "k" }] },
  { rules: [rule], priority_from: [{ header: "x-p", namespace: "n" }] },
  { rules: [rule], priority_from: [{ filter_state: "" }] },
  { rules: [rule], priority_from: [{ header: "X-P" }] },
]);
