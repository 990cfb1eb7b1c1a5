// Bundles a benchmark (TypeScript, importing the host) with esbuild and runs it:
// bench/run.ts by default, or the file given with --entry (e.g. bench/ratelimit.ts).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const entryAt = process.argv.indexOf("--entry");
const entry = entryAt > 0 ? process.argv.splice(entryAt, 2)[1] : "bench/run.ts";
const outfile = join(root, "dist", entry.replace(/\//g, "-").replace(/\.ts$/, ".mjs"));
await build({
  entryPoints: [join(root, entry)],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile,
  logLevel: "warning",
  // Dependencies load from node_modules at run time (some are CommonJS and cannot be bundled as ESM).
  packages: "external",
});
await import(outfile);
