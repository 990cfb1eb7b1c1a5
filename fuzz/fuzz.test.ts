// A short fuzzing budget in `npm test` (FUZZ_RUNS to change it); `npm run fuzz` runs long ones.
import fc from "fast-check";
import { describe, test } from "vitest";
import { FILTERS, configProperty, requestProperty } from "./properties.js";

const runs = Number(process.env.FUZZ_RUNS ?? 40);

describe.each(FILTERS.map((f) => [f]))("%s", (filter) => {
  test("hostile traffic: no trap, a decision for every request, bounded memory", async () => {
    await fc.assert(requestProperty(filter), { numRuns: runs });
  }, 120000);
  test("random and mutated configurations: accepted, or rejected with one critical line, never a trap", () => {
    fc.assert(configProperty(filter), { numRuns: runs * 2 });
  }, 120000);
});
