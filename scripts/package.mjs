// npm run package: for each built filter, an OCI image layout in the format Istio's agent
// accepts (one gzip tar layer holding plugin.wasm, reproducible bytes), SHA256SUMS of the
// modules, and a WasmPlugin pinned to the image digest. --push <registry/repo:tag> uploads each
// image over the OCI distribution API (--push-prefix <registry/repo-prefix> for all filters;
// credentials from OCI_USERNAME / OCI_PASSWORD, or a bearer token in OCI_TOKEN).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { parseAllDocuments, stringify } from "yaml";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const sha256 = (b) => createHash("sha256").update(b).digest("hex");

export const MEDIA = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};

function octal(n, width) {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** A ustar archive with one regular file, fixed metadata (mode 0644, uid/gid 0, mtime 0). */
export function tarOneFile(name, data) {
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, "utf8");
  header.write(octal(0o644, 8), 100);
  header.write(octal(0, 8), 108);
  header.write(octal(0, 8), 116);
  header.write(octal(data.length, 12), 124);
  header.write(octal(0, 12), 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\0" + "00", 257, "binary");
  let sum = 0;
  for (const b of header) sum += b;
  header.write(octal(sum, 7) + " ", 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512, 0);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024, 0)]);
}

/** Builds the image of one module: blobs by digest, the manifest bytes and its digest. */
export function buildImage(name, wasm, version) {
  if (wasm.subarray(0, 4).toString("binary") !== "\0asm") throw new Error(`${name}: not a wasm module`);
  const tar = tarOneFile("plugin.wasm", wasm);
  const layer = gzipSync(tar, { level: 9 }); // Node writes mtime 0 and no file name: reproducible
  const config = Buffer.from(JSON.stringify({
    architecture: "amd64", os: "linux",
    config: { Labels: { "org.opencontainers.image.title": name, "org.opencontainers.image.version": version } },
    rootfs: { type: "layers", diff_ids: [`sha256:${sha256(tar)}`] },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: `sha256:${sha256(config)}`, size: config.length },
    layers: [{ mediaType: MEDIA.layer, digest: `sha256:${sha256(layer)}`, size: layer.length, annotations: { "org.opencontainers.image.title": "plugin.wasm" } }],
    annotations: { "module.wasm.image/variant": "compat", "org.opencontainers.image.title": name, "org.opencontainers.image.version": version },
  }));
  return { blobs: new Map([[sha256(layer), layer], [sha256(config), config], [sha256(manifest), manifest]]), manifest, digest: sha256(manifest), wasmDigest: sha256(wasm) };
}

/** Writes an OCI image layout directory. */
export function writeLayout(dir, image, refName) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  for (const [hex, bytes] of image.blobs) writeFileSync(join(dir, "blobs", "sha256", hex), bytes);
  writeFileSync(join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: MEDIA.manifest, digest: `sha256:${image.digest}`, size: image.manifest.length, annotations: { "org.opencontainers.image.ref.name": refName } }],
  }));
}

/** Splits "host[:port]/repo/path:tag" into its parts. */
export function parseRef(ref) {
  const slash = ref.indexOf("/");
  if (slash < 0) throw new Error(`image reference needs a registry: ${ref}`);
  const registry = ref.slice(0, slash);
  let repo = ref.slice(slash + 1), tag = "latest";
  const colon = repo.lastIndexOf(":");
  if (colon > 0) { tag = repo.slice(colon + 1); repo = repo.slice(0, colon); }
  return { registry, repo, tag };
}

/** Pushes an image with the OCI distribution API (blobs, then the manifest by tag); returns the digest the registry reports. */
export async function push(image, ref, { insecure = false, env = process.env } = {}) {
  const { registry, repo, tag } = parseRef(ref);
  const base = `${insecure ? "http" : "https"}://${registry}/v2/${repo}`;
  let auth = env.OCI_TOKEN ? `Bearer ${env.OCI_TOKEN}` : env.OCI_USERNAME ? `Basic ${Buffer.from(`${env.OCI_USERNAME}:${env.OCI_PASSWORD ?? ""}`).toString("base64")}` : undefined;
  const call = async (method, url, body, headers = {}) => {
    let res = await fetch(url, { method, body, headers: { ...headers, ...(auth ? { authorization: auth } : {}) }, redirect: "manual" });
    const challenge = res.headers.get("www-authenticate");
    if (res.status === 401 && challenge?.startsWith("Bearer ")) {
      const params = Object.fromEntries([...challenge.slice(7).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      const tokenUrl = `${params.realm}?service=${encodeURIComponent(params.service ?? "")}&scope=${encodeURIComponent(params.scope ?? `repository:${repo}:push,pull`)}`;
      const basic = env.OCI_USERNAME ? { authorization: `Basic ${Buffer.from(`${env.OCI_USERNAME}:${env.OCI_PASSWORD ?? ""}`).toString("base64")}` } : {};
      const t = await (await fetch(tokenUrl, { headers: basic })).json();
      auth = `Bearer ${t.token ?? t.access_token}`;
      res = await fetch(url, { method, body, headers: { ...headers, authorization: auth }, redirect: "manual" });
    }
    return res;
  };
  for (const [hex, bytes] of image.blobs) {
    if (hex === image.digest) continue;
    if ((await call("HEAD", `${base}/blobs/sha256:${hex}`)).status === 200) continue;
    const started = await call("POST", `${base}/blobs/uploads/`);
    if (started.status !== 202) throw new Error(`upload start failed: ${started.status}`);
    const location = new URL(started.headers.get("location"), base).toString();
    const put = await call("PUT", `${location}${location.includes("?") ? "&" : "?"}digest=sha256:${hex}`, bytes, { "content-type": "application/octet-stream" });
    if (put.status !== 201) throw new Error(`blob upload failed: ${put.status}`);
  }
  const res = await call("PUT", `${base}/manifests/${tag}`, image.manifest, { "content-type": MEDIA.manifest });
  if (res.status !== 201) throw new Error(`manifest upload failed: ${res.status}`);
  const reported = res.headers.get("docker-content-digest");
  if (reported && reported !== `sha256:${image.digest}`) throw new Error(`registry reports digest ${reported}, expected sha256:${image.digest}`);
  return `sha256:${image.digest}`;
}

/**
 * The filter's committed WasmPlugins (manifests/<filter>/wasmplugin.yaml) pinned to this image:
 * url `oci://<repository>@sha256:<digest>` and sha256 = the manifest digest (what Istio checks).
 */
export function pinnedWasmPlugins(name, image, repository) {
  const file = join(root, "manifests", name, "wasmplugin.yaml");
  if (!existsSync(file)) return "";
  const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS());
  for (const d of docs) {
    if (d.kind !== "WasmPlugin") continue;
    d.spec.url = `oci://${repository}@sha256:${image.digest}`;
    d.spec.sha256 = image.digest;
  }
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
}

/** Packages every built filter into dist/oci/<filter>, writes dist/SHA256SUMS; returns what was built. */
export function packageAll(version, repository) {
  const dist = join(root, "dist");
  const out = [];
  const sums = [];
  for (const file of readdirSync(dist).filter((f) => f.endsWith(".wasm")).sort()) {
    const name = file.replace(/\.wasm$/, "");
    if (!existsSync(join(root, "filters", name))) continue;
    const wasm = readFileSync(join(dist, file));
    const image = buildImage(name, wasm, version);
    writeLayout(join(dist, "oci", name), image, version);
    const plugins = pinnedWasmPlugins(name, image, repository ? `${repository}/${name}` : `registry.example.com/filter-suite/${name}`);
    if (plugins) writeFileSync(join(dist, "oci", `${name}.wasmplugin.yaml`), plugins);
    sums.push(`${image.wasmDigest}  ${file}`);
    out.push({ name, image });
  }
  writeFileSync(join(dist, "SHA256SUMS"), sums.join("\n") + "\n");
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
  const args = process.argv.slice(2);
  const prefix = args.includes("--push-prefix") ? args[args.indexOf("--push-prefix") + 1] : undefined;
  const built = packageAll(version, prefix);
  const single = args.includes("--push") ? args[args.indexOf("--push") + 1] : undefined;
  const insecure = args.includes("--insecure");
  for (const { name, image } of built) {
    console.log(`${name.padEnd(20)} plugin.wasm sha256:${image.wasmDigest.slice(0, 16)}...  image sha256:${image.digest}  dist/oci/${name}`);
    const ref = prefix ? `${prefix}/${name}:${version}` : single && built.length === 1 ? single : undefined;
    if (ref) console.log(`  pushed ${ref}@${await push(image, ref, { insecure })}`);
  }
  if (single && built.length > 1) console.log("--push takes one image; use --push-prefix <registry/repo-prefix> to push every filter");
  console.log("wrote dist/SHA256SUMS and dist/oci/<filter>.wasmplugin.yaml (WasmPlugins pinned to each image digest)");
}
