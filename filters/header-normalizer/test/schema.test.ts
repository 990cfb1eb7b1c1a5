// config.schema.json and the filter must agree, and the README's configuration table must
// list the schema's fields (test/filter-contract.ts).
import { configurationContract } from "../../../test/filter-contract.js";

configurationContract("header-normalizer", [
  { dry_run: "yes" },
  { unknown_field: 1 },
  { headers: [{ name: "Content-Type" }] },
  { headers: [{ name: "x", on_conflict: "newest" }] },
  { headers: [{ on_conflict: "first" }] },
  { aliases: [{ from: "x-a" }] },
  { aliases: [{ from: "x-a", to: "x-b", mode: "move" }] },
  { diagnostic_header: "Bad Header" },
]);
