// Renders the kind target's YAML (bundled by run.sh):
//   node kind-render.mjs operator <out-dir>                     -> operator.yaml (istioctl install -f),
//                                                                 gateways.txt (per gateway: deployment, local port, role)
//   node kind-render.mjs resources <root> <registry> <out-dir>  -> apps.yaml, istio.yaml
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { ALL_GATEWAYS, imageDigest, istioOperator, istioResources, kubernetesResources } from "./resources.js";

const [mode, ...args] = process.argv.slice(2);
if (mode === "operator") {
  const [out] = args;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "operator.yaml"), stringify(istioOperator()));
  const lines = ALL_GATEWAYS.map((g) => `${g.deployment} ${g.port} ${g.role}`);
  writeFileSync(join(out, "gateways.txt"), lines.join("\n") + "\n");
  console.log(`wrote ${out}/operator.yaml and ${out}/gateways.txt`);
} else if (mode === "resources") {
  const [root, registry, out] = args;
  mkdirSync(out, { recursive: true });
  const digests = Object.fromEntries(["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router", "fixture"].map((f) => [f, imageDigest(root, f)]));
  const echo = readFileSync(join(out, "echo.mjs"), "utf8");
  writeFileSync(join(out, "apps.yaml"), kubernetesResources(echo).map((d) => stringify(d)).join("---\n"));
  writeFileSync(join(out, "istio.yaml"), istioResources(digests, registry).map((d) => stringify(d)).join("---\n"));
  console.log(`wrote ${out}/apps.yaml and ${out}/istio.yaml`);
} else {
  throw new Error("usage: kind-render.mjs operator <out-dir> | resources <root> <registry> <out-dir>");
}
