// npm run fuzz: bundles fuzz/cli.ts (TypeScript, importing the host) with esbuild and runs it.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const outfile = join(root, "dist", "fuzz.mjs");
await build({ entryPoints: [join(root, "fuzz", "cli.ts")], bundle: true, platform: "node", format: "esm", target: "node20", outfile, logLevel: "warning" });
await import(outfile);
