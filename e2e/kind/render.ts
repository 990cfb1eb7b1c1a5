// Renders the kind target's YAML: node e2e/kind/render (bundled by run.sh) <root> <registry> <out-dir>.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { imageDigest, istioResources, kubernetesResources } from "./resources.js";

const [root, registry, out] = process.argv.slice(2);
mkdirSync(out, { recursive: true });
const digests = Object.fromEntries(["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router"].map((f) => [f, imageDigest(root, f)]));
const echo = readFileSync(join(out, "echo.mjs"), "utf8");
writeFileSync(join(out, "apps.yaml"), kubernetesResources(echo).map((d) => stringify(d)).join("---\n"));
writeFileSync(join(out, "istio.yaml"), istioResources(digests, registry).map((d) => stringify(d)).join("---\n"));
console.log(`wrote ${out}/apps.yaml and ${out}/istio.yaml`);
