// Bundles bench/run.ts (TypeScript, importing the host) with esbuild and runs it.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const outfile = join(root, "dist", "bench.mjs");
await build({
  entryPoints: [join(root, "bench", "run.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile,
  logLevel: "warning",
});
process.argv.splice(2, 0); // arguments pass through to the bundle
await import(outfile);
