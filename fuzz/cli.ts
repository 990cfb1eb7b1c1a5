// npm run fuzz -- --runs N [--configs M] [--filter name] [--seed S]: N fuzzed requests per
// filter on a long-lived sidecar (3 workers, renewed every 10,000 requests with the next schema
// example), plus M configurations (default N/10). A failure prints fast-check's shrunk counterexample and its seed:
// paste it into fuzz/regressions.test.ts.
import fc from "fast-check";
import { request } from "./arbitraries.js";
import { FILTERS, FilterName, Sidecar, WORKERS, configProperty } from "./properties.js";

const args = process.argv.slice(2);
const runs = Number(args.includes("--runs") ? args[args.indexOf("--runs") + 1] : 10000);
const only = args.includes("--filter") ? args[args.indexOf("--filter") + 1] : undefined;
const configs = args.includes("--configs") ? Number(args[args.indexOf("--configs") + 1]) : Math.max(1, Math.floor(runs / 10));
const seed = args.includes("--seed") ? Number(args[args.indexOf("--seed") + 1]) : Date.now() % 2 ** 31;

async function fuzzFilter(filter: FilterName): Promise<void> {
  const started = Date.now();
  let sidecar = new Sidecar(filter, 0);
  let done = 0, rotations = 0, maxPages = 0;
  await fc.assert(fc.asyncProperty(request(WORKERS), async (r) => {
    if (sidecar.requests >= 10000 || sidecar.plugin.workerVms.some((vm) => !vm || vm.failed)) {
      maxPages = Math.max(maxPages, ...sidecar.envoy.memoryPages(sidecar.plugin));
      const left = await sidecar.drained();
      if (left) throw new Error(left);
      sidecar = new Sidecar(filter, ++rotations);
    }
    const problem = await sidecar.send(r);
    done++;
    if (done % 100000 === 0) process.stderr.write(`${filter}: ${done} requests\n`);
    if (problem) throw new Error(problem);
  }), { numRuns: runs, seed, endOnFailure: false });
  maxPages = Math.max(maxPages, ...sidecar.envoy.memoryPages(sidecar.plugin));
  const configStarted = Date.now();
  fc.assert(configProperty(filter), { numRuns: configs, seed });
  const seconds = (from: number, to: number) => ((to - from) / 1000).toFixed(0);
  console.log(`${filter.padEnd(20)} ${runs} requests (${seconds(started, configStarted)} s) and ${configs} configurations (${seconds(configStarted, Date.now())} s): no trap, every request decided, every rejected configuration logged once, max ${maxPages} pages, seed ${seed}`);
}

for (const filter of FILTERS) {
  if (only && filter !== only) continue;
  try {
    await fuzzFilter(filter);
  } catch (err) {
    console.error(`${filter}: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
