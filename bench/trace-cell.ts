import { cells } from "./family.ts";
import { arrivals, runFilter, percentile } from "./closed-loop.ts";
import { familyConfig } from "./family.ts";
const name = process.argv[2];
const cell = cells().find((c) => c.scenario.name.includes(name))!;
console.log(cell.scenario.name, JSON.stringify(familyConfig(cell.scenario)));
process.env.ARL_TRACE = "1";
await runFilter(cell.scenario, arrivals(cell.scenario, cell.seed), familyConfig(cell.scenario));
