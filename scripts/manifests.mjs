// Bundles the manifest generator (manifests/src, TypeScript) with esbuild and runs it.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const outfile = join(root, "dist", "manifests.mjs");
await build({
  entryPoints: [join(root, "manifests", "src", "cli.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile,
  packages: "external",
  logLevel: "warning",
});
const run = spawnSync(process.execPath, [outfile, root], { stdio: "inherit" });
process.exit(run.status ?? 1);
