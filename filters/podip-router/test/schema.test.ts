// config.schema.json and the filter must agree, and the README's configuration table must
// list the schema's fields (test/filter-contract.ts).
import { configurationContract } from "../../../test/filter-contract.js";

const ok = { allowed_cidrs: ["10.8.0.0/16"], allowed_ports: [8080], authorization: { header: "x-ops" } };
configurationContract("podip-router", [
  {},
  { ...ok, allowed_cidrs: [] },
  { ...ok, allowed_ports: [] },
  { ...ok, allowed_ports: [70000] },
  { ...ok, authorization: {} },
  { ...ok, authorization: { principals: ["cluster.local/ns/a"] } },
  { ...ok, hand_off: "direct" },
  { ...ok, path_prefix: "/_p%6fd/" },
  { ...ok, unknown: 1 },
]);
