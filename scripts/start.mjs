// npm start: bundles the local gateway (runtime/gateway, TypeScript) with esbuild and runs it.
// Arguments pass through: --envoy or --host (force real Envoy or the suite's host), --bootstrap <file>.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const outfile = join(root, "dist", "gateway.mjs");
await build({ entryPoints: [join(root, "runtime", "gateway", "cli.ts")], bundle: true, platform: "node", format: "esm", target: "node20", outfile, packages: "external", logLevel: "warning" });
process.argv.splice(2, 0, root);
await import(outfile);
