// Compiles every filter (filters/*/assembly/index.ts) and the test/bench fixtures to
// dist/<name>.wasm with the shared options in asconfig.json. A module is rebuilt only
// when one of its inputs changed (its own assembly folder, runtime/assembly, the patched
// SDK, asconfig.json, the compiler version).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");

/** Every module the suite builds: shipped filters first, then fixtures. */
export function modules() {
  const list = [];
  const filtersDir = join(root, "filters");
  if (existsSync(filtersDir)) {
    for (const name of readdirSync(filtersDir).sort()) {
      const entry = join(filtersDir, name, "assembly", "index.ts");
      if (existsSync(entry)) list.push({ name, entry, out: join(dist, `${name}.wasm`), kind: "filter" });
    }
  }
  const fixtures = [
    ["noop", "bench/noop/assembly/index.ts"],
    ["fixture", "runtime/host/test/fixture/assembly/index.ts"],
    ["sdk-readme", "runtime/host/test/sdk-readme/assembly/index.ts"],
  ];
  for (const [name, rel] of fixtures) {
    const entry = join(root, rel);
    if (existsSync(entry)) list.push({ name, entry, out: join(dist, "fixtures", `${name}.wasm`), kind: "fixture" });
  }
  return list;
}

function filesUnder(dir, acc = []) {
  if (!existsSync(dir)) return acc;
  for (const name of readdirSync(dir).sort()) {
    if (name === "__tests__" || name === "node_modules") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) filesUnder(path, acc);
    else if (name.endsWith(".ts") || name.endsWith(".json")) acc.push(path);
  }
  return acc;
}

function inputHash(mod) {
  const hash = createHash("sha256");
  const inputs = [
    ...filesUnder(dirname(mod.entry)),
    ...filesUnder(join(root, "runtime", "assembly")),
    ...filesUnder(join(root, "node_modules", "@solo-io", "proxy-runtime", "assembly")),
    join(root, "asconfig.json"),
    join(root, "node_modules", "assemblyscript", "package.json"),
  ];
  for (const file of inputs) {
    hash.update(relative(root, file));
    hash.update(readFileSync(file));
  }
  return hash.digest("hex");
}

export async function build({ force = false, quiet = false } = {}) {
  const results = [];
  for (const mod of modules()) {
    const stamp = `${mod.out}.inputs`;
    const digest = inputHash(mod);
    const fresh = !force && existsSync(mod.out) && existsSync(stamp) && readFileSync(stamp, "utf8") === digest;
    if (!fresh) {
      mkdirSync(dirname(mod.out), { recursive: true });
      let errors = "";
      const { error } = await asc.main(
        [relative(root, mod.entry), "--config", "asconfig.json", "--target", "release", "--outFile", relative(root, mod.out)],
        { stdout: process.stdout, stderr: { write: (s) => { errors += s; return true; } } },
      );
      if (error) {
        process.stderr.write(errors);
        throw new Error(`build failed for ${mod.name}: ${error.message}`);
      }
      writeFileSync(stamp, digest);
    }
    const size = statSync(mod.out).size;
    results.push({ ...mod, size, rebuilt: !fresh });
    if (!quiet) {
      const kb = (size / 1024).toFixed(1).padStart(7);
      console.log(`${mod.kind === "filter" ? "filter " : "fixture"} ${mod.name.padEnd(20)} ${kb} KiB  ${relative(root, mod.out)}${fresh ? "  (unchanged)" : ""}`);
    }
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes("--force");
  build({ force }).catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
}
