// `npm run manifests`: writes every rendered manifest under manifests/.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { renderAll } from "./render.js";

const root = process.argv[2];
for (const [rel, text] of renderAll()) {
  const path = join(root, "manifests", rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote manifests/${rel}`);
}
