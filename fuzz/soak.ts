// npm run soak [-- --requests N] [--only text]: every soak scenario for N requests (default
// 1,000,000), pages sampled every 10,000. Exits 1 if a filter traps or its memory grows after
// the warm-up (the first 20% of samples). Writes fuzz/results/soak-latest.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SCENARIOS, soak } from "./soak-scenarios.js";

const args = process.argv.slice(2);
const requests = Number(args.includes("--requests") ? args[args.indexOf("--requests") + 1] : 1_000_000);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const root = new URL("..", import.meta.url).pathname;

const results = [];
for (const s of SCENARIOS) {
  if (only && !s.name.includes(only)) continue;
  process.stderr.write(`soaking: ${s.name} ...\n`);
  const r = await soak(s, requests);
  results.push(r);
  const verdict = r.trapped ? "TRAP" : r.growthAfterWarmup > 0 ? `GREW by ${r.growthAfterWarmup} pages after warm-up` : "flat after warm-up";
  const statuses = Object.entries(r.statuses).map(([k, v]) => `${k}:${v}`).join(" ");
  console.log(`${s.name}\n  ${r.requests} requests in ${r.seconds.toFixed(0)} s; pages at first sample ${r.samples[0]}, end of warm-up ${r.samples[r.warmupSamples - 1]}, end ${r.samples[r.samples.length - 1]}: ${verdict}\n  statuses ${statuses}`);
  if (r.trapped || r.growthAfterWarmup > 0) process.exitCode = 1;
}
const dir = join(root, "fuzz", "results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "soak-latest.json"), JSON.stringify({ date: new Date().toISOString(), node: process.version, requests, results }, null, 2));
