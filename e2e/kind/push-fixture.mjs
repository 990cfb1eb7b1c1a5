// The crash fixture (dist/fixtures/fixture.wasm: it traps on x-fixture-action: trap) as an OCI
// image like the filters' (dist/oci/fixture), pushed for the kind target's failure-policy cases:
// node e2e/kind/push-fixture.mjs <registry/repo-prefix>
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildImage, push, writeLayout } from "../../scripts/package.mjs";

const root = join(fileURLToPath(import.meta.url), "..", "..", "..");
const prefix = process.argv[2];
if (!prefix) throw new Error("usage: node e2e/kind/push-fixture.mjs <registry/repo-prefix>");
const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
const image = buildImage("fixture", readFileSync(join(root, "dist", "fixtures", "fixture.wasm")), version);
writeLayout(join(root, "dist", "oci", "fixture"), image, version);
console.log(`fixture pushed ${prefix}/fixture:${version}@${await push(image, `${prefix}/fixture:${version}`, { insecure: true })}`);
