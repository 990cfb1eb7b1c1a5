// config.schema.json and the filter must agree, and the README's configuration table must
// list the schema's fields (test/filter-contract.ts).
import { configurationContract } from "../../../test/filter-contract.js";

configurationContract("env-router", [
  { mode: "sideways" },
  { unknown_field: 1 },
  { services: { a: ["Feature_X"] } },
  { tag: { sources: ["jwt"] } },
  { controller: { refresh_ms: 5000 } },
  { correlation: { slots: 2 } },
  { default_env: "Default" },
  { explain: "yes" },
  { services: { Reviews: ["default"] } },
]);
