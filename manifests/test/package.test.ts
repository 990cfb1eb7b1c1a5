// npm run package: the OCI image layout Istio's agent accepts, reproducible, and the push.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, test } from "vitest";
import { parseAllDocuments } from "yaml";
import { MEDIA, buildImage, pinnedWasmPlugins, push, writeLayout } from "../../scripts/package.mjs";
import { wasmPath } from "../../runtime/host/test/helpers.js";
import { validateIstio } from "../lib/istio.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const wasm = readFileSync(wasmPath("env-router"));

/** Reads an OCI layout back: index -> manifest -> config and layer blobs. */
function readLayout(dir: string) {
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  const blob = (digest: string) => readFileSync(join(dir, "blobs", "sha256", digest.replace("sha256:", "")));
  const manifestBytes = blob(index.manifests[0].digest);
  const manifest = JSON.parse(manifestBytes.toString("utf8"));
  return { index, manifestBytes, manifest, blob };
}

/** Entries of a ustar archive: name and data (checking each header's checksum). */
function untar(tar: Buffer): Array<{ name: string; data: Buffer }> {
  const out = [];
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString("utf8").replace(/\0.*$/, "");
    const size = parseInt(header.subarray(124, 136).toString("ascii").replace(/\0.*$/, ""), 8);
    const stored = parseInt(header.subarray(148, 156).toString("ascii").replace(/[\0 ].*$/, ""), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
    expect(sum).toBe(stored);
    out.push({ name, data: tar.subarray(off + 512, off + 512 + size) });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe("the image layout", () => {
  const dir = mkdtempSync(join(tmpdir(), "oci-"));
  const image = buildImage("env-router", wasm, "0.1.0");
  writeLayout(dir, image, "0.1.0");
  const { index, manifestBytes, manifest, blob } = readLayout(dir);

  test("is an OCI layout whose index names the manifest by its digest", () => {
    expect(JSON.parse(readFileSync(join(dir, "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
    expect(index.manifests[0].digest).toBe(`sha256:${sha(manifestBytes)}`);
    expect(index.manifests[0].mediaType).toBe(MEDIA.manifest);
    expect(manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
  });

  test("has exactly one layer, gzip tar, holding plugin.wasm with the module's bytes", () => {
    expect(manifest.layers).toHaveLength(1);
    expect(manifest.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
    const layer = blob(manifest.layers[0].digest);
    expect(manifest.layers[0].digest).toBe(`sha256:${sha(layer)}`);
    const entries = untar(gunzipSync(layer));
    expect(entries.map((e) => e.name)).toEqual(["plugin.wasm"]);
    expect(entries[0].data.equals(wasm)).toBe(true);
    expect(manifest.annotations["module.wasm.image/variant"]).toBe("compat");
  });

  test("its config records the layer's uncompressed digest", () => {
    const config = JSON.parse(blob(manifest.config.digest).toString("utf8"));
    expect(config.rootfs.diff_ids).toEqual([`sha256:${sha(gunzipSync(blob(manifest.layers[0].digest)))}`]);
    expect(config.os).toBe("linux");
  });

  test("is reproducible: the same module gives the same digest", () => {
    expect(buildImage("env-router", wasm, "0.1.0").digest).toBe(image.digest);
  });

  test("the pinned WasmPlugins carry the manifest digest in url and sha256", () => {
    const all = parseAllDocuments(pinnedWasmPlugins("env-router", image, "registry.example.com/suite/env-router")).map((d) => d.toJS());
    const docs = all.filter((d) => d.kind === "WasmPlugin");
    expect(docs.length).toBeGreaterThan(0);
    // The EnvoyFilters shipped beside them (the trust guard) pass through as they are.
    for (const d of all.filter((x) => x.kind === "EnvoyFilter")) expect(d.spec.url).toBeUndefined();
    for (const d of docs) {
      expect(d.spec.sha256).toBe(image.digest);
      expect(d.spec.url).toBe(`oci://registry.example.com/suite/env-router@sha256:${image.digest}`);
    }
  });
});

test("push: blobs then manifest over the OCI distribution API, with a bearer-token challenge", async () => {
  const blobs = new Map<string, Buffer>();
  let manifest: Buffer | undefined;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url!, "http://x");
      if (url.pathname === "/token") { res.end(JSON.stringify({ token: "t0k" })); return; }
      if (req.headers.authorization !== "Bearer t0k") {
        res.writeHead(401, { "www-authenticate": `Bearer realm="http://127.0.0.1:${port}/token",service="test",scope="repository:suite/env-router:push,pull"` });
        res.end();
        return;
      }
      const blobMatch = /^\/v2\/suite\/env-router\/blobs\/sha256:([0-9a-f]+)$/.exec(url.pathname);
      if (req.method === "HEAD" && blobMatch) { res.writeHead(blobs.has(blobMatch[1]) ? 200 : 404); res.end(); return; }
      if (req.method === "POST" && url.pathname === "/v2/suite/env-router/blobs/uploads/") { res.writeHead(202, { location: "/v2/suite/env-router/blobs/uploads/u1?state=x" }); res.end(); return; }
      if (req.method === "PUT" && url.pathname === "/v2/suite/env-router/blobs/uploads/u1") {
        const body = Buffer.concat(chunks);
        const digest = url.searchParams.get("digest")!.replace("sha256:", "");
        if (sha(body) !== digest) { res.writeHead(400); res.end(); return; }
        blobs.set(digest, body);
        res.writeHead(201); res.end(); return;
      }
      if (req.method === "PUT" && url.pathname === "/v2/suite/env-router/manifests/0.1.0") {
        manifest = Buffer.concat(chunks);
        res.writeHead(201, { "docker-content-digest": `sha256:${sha(manifest)}` }); res.end(); return;
      }
      res.writeHead(404); res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  try {
    const image = buildImage("env-router", wasm, "0.1.0");
    const digest = await push(image, `127.0.0.1:${port}/suite/env-router:0.1.0`, { insecure: true, env: {} });
    expect(digest).toBe(`sha256:${image.digest}`);
    expect(manifest!.equals(image.manifest)).toBe(true);
    expect(blobs.size).toBe(2);
  } finally {
    server.close();
  }
});

describe("committed WasmPlugins cannot be applied by mistake", () => {
  const root = new URL("../..", import.meta.url).pathname;
  const image = buildImage("podip-router", readFileSync(wasmPath("podip-router")), "0.1.0");
  const committed = ["adaptive-ratelimit", "env-router", "header-normalizer", "podip-router"].flatMap((f) =>
    parseAllDocuments(readFileSync(join(root, "manifests", f, "wasmplugin.yaml"), "utf8")).map((d) => d.toJS()).filter((d) => d.kind === "WasmPlugin"));
  test.each(committed.map((d) => [d.metadata.name, d]))("%s: Istio's schema (so the API server) refuses its placeholder digest", (_n, d) => {
    expect(() => validateIstio(d)).toThrow(/sha256/);
  });
  test("the copies npm run package pins are valid", () => {
    const pinned = parseAllDocuments(pinnedWasmPlugins("podip-router", image, "registry.example.com/suite/podip-router")).map((d) => d.toJS()).filter((d) => d.kind === "WasmPlugin");
    expect(pinned.length).toBe(1);
    for (const d of pinned) expect(() => validateIstio(d)).not.toThrow();
  });
});
