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

// ---------------------------------------------------------------------------------------------
// The name section stays (Envoy's stack traces name the functions), with the long path prefixes
// the compiler writes shortened: "filters/<filter>/assembly/settings/parseSettings" becomes
// "settings/parseSettings", "~lib/@solo-io/proxy-runtime/assembly/runtime/RootContext#onConfigure"
// "sdk:runtime/RootContext#onConfigure" and "runtime/assembly/json/JsonParser#value"
// "suite:json/JsonParser#value". About a third of the section goes.

function readLeb(bytes, at) {
  let value = 0;
  let shift = 0;
  let b;
  do {
    b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return [value, at];
}

function leb(value) {
  const out = [];
  do {
    let b = value & 0x7f;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
  return Buffer.from(out);
}

export function shortName(name) {
  return name
    .replace(/filters\/[a-z0-9-]+\/assembly\//g, "")
    .replace(/runtime\/host\/test\/[a-z0-9-]+\/assembly\//g, "")
    .replace(/bench\/[a-z0-9-]+\/assembly\//g, "")
    .replace(/~lib\/@solo-io\/proxy-runtime\/assembly\//g, "sdk:")
    .replace(/runtime\/assembly\//g, "suite:");
}

/** Rewrites the function (1) and global (7) names of the "name" custom section with shortName. */
export function shortenNames(wasm) {
  const parts = [wasm.subarray(0, 8)];
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = readLeb(wasm, at + 1);
    const end = body + size;
    let replaced = false;
    if (id === 0) {
      const [nameLen, nameAt] = readLeb(wasm, body);
      if (wasm.subarray(nameAt, nameAt + nameLen).toString() === "name") {
        const subs = [wasm.subarray(body, nameAt + nameLen)];
        let p = nameAt + nameLen;
        while (p < end) {
          const sid = wasm[p];
          const [ssize, sbody] = readLeb(wasm, p + 1);
          if (sid === 1 || sid === 7) {
            const out = [];
            let [count, q] = readLeb(wasm, sbody);
            out.push(leb(count));
            for (let i = 0; i < count; i++) {
              const [index, q1] = readLeb(wasm, q);
              const [len, q2] = readLeb(wasm, q1);
              const name = Buffer.from(shortName(wasm.subarray(q2, q2 + len).toString("utf8")), "utf8");
              out.push(leb(index), leb(name.length), name);
              q = q2 + len;
            }
            const content = Buffer.concat(out);
            subs.push(Buffer.from([sid]), leb(content.length), content);
          } else {
            subs.push(wasm.subarray(p, sbody + ssize));
          }
          p = sbody + ssize;
        }
        const content = Buffer.concat(subs);
        parts.push(Buffer.from([0]), leb(content.length), content);
        replaced = true;
      }
    }
    if (!replaced) parts.push(wasm.subarray(at, end));
    at = end;
  }
  return Buffer.concat(parts);
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
    join(root, "scripts", "build.mjs"),
    join(root, "node_modules", "assemblyscript", "package.json"),
  ];
  for (const file of inputs) {
    hash.update(relative(root, file));
    hash.update(readFileSync(file));
  }
  return hash.digest("hex");
}

/** Size budget of a shipped filter (issue: modules under 64 KiB, name section kept). */
export const SIZE_BUDGET = 64 * 1024;

/** Bytes per part of a module: code, data, the name section, and the rest (types, imports, exports...). */
export function sections(wasm) {
  const out = { code: 0, data: 0, names: 0, other: 8 };
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = readLeb(wasm, at + 1);
    const whole = body + size - at;
    if (id === 10) out.code += whole;
    else if (id === 11) out.data += whole;
    else if (id === 0) {
      const [len, nameAt] = readLeb(wasm, body);
      if (wasm.subarray(nameAt, nameAt + len).toString() === "name") out.names += whole;
      else out.other += whole;
    } else out.other += whole;
    at = body + size;
  }
  return out;
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
      writeFileSync(mod.out, shortenNames(readFileSync(mod.out)));
      writeFileSync(stamp, digest);
    }
    const size = statSync(mod.out).size;
    const parts = sections(readFileSync(mod.out));
    results.push({ ...mod, size, parts, rebuilt: !fresh });
    if (!quiet) {
      const k = (n) => (n / 1024).toFixed(1).padStart(6);
      const budget = mod.kind === "filter" ? (size <= SIZE_BUDGET ? "  within 64 KiB" : `  ${k(size - SIZE_BUDGET).trim()} KiB over 64 KiB`) : "";
      if (results.length === 1) console.log(`${"".padEnd(28)}  total   code   data  names  other (KiB)`);
      console.log(`${mod.kind === "filter" ? "filter " : "fixture"} ${mod.name.padEnd(20)} ${k(size)} ${k(parts.code)} ${k(parts.data)} ${k(parts.names)} ${k(parts.other)}  ${relative(root, mod.out)}${fresh ? " (unchanged)" : ""}${budget}`);
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
