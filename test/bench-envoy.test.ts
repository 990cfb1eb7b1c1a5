// `npm run bench:envoy -- --smoke` end to end on real Envoy: the load generators are fetched,
// the Go peer is built, every variant of header-normalizer's clean path answers 200 under load,
// and both tables are printed. A guard against the benchmark rotting, not a judge of its numbers.
import { execFile } from "node:child_process";
import { expect, test } from "vitest";

const root = new URL("..", import.meta.url).pathname;

test("bench:envoy --smoke measures every variant and prints the cost and memory tables", async () => {
  const { stdout } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    execFile(process.execPath, ["scripts/bench.mjs", "--entry", "bench/envoy.ts", "--smoke"], { cwd: root, timeout: 400_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr.slice(-4000)}`));
      else resolve({ stdout, stderr });
    });
  });
  for (const variant of ["no filter", "no-op module", "header-normalizer", "Lua", "Go module"]) {
    // A row with a positive throughput and no non-2xx share.
    expect(stdout).toMatch(new RegExp(`^\\| header-normalizer \\(clean\\) \\| ${variant} \\| [1-9]\\d* \\|`, "m"));
  }
  expect(stdout).toMatch(/header-normalizer \(clean\) added CPU [-\d.]+ µs; [-\d.]+x the no-op module's/);
  expect(stdout).toMatch(/header-normalizer \(clean\) added p50 latency [-\d.]+ µs/);
  expect(stdout).toMatch(/^\| header-normalizer \| \d+\.\d\d \(\+?-?\d+\.\d\d\) \|/m);
}, 420_000);
