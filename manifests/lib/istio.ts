// Validates Istio resources against the CustomResourceDefinitions Istio itself ships
// (manifests/charts/base/files/crd-all.gen.yaml in the istio.io/istio module that e2e/istio
// pins): the served version's openAPIV3Schema for `spec`, strict like `kubectl apply`'s
// server-side field validation (an unknown field is refused unless the schema preserves unknown
// fields). The module comes from Go's module cache, fetched through the Go module proxy when it
// is not there yet (`go mod download`). The CRDs' CEL rules (x-kubernetes-validations) are not
// evaluated here; Istio's own validation of every resource runs in e2e/istio.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { parseAllDocuments } from "yaml";

const root = new URL("../..", import.meta.url).pathname;
const CRD_FILE = "manifests/charts/base/files/crd-all.gen.yaml";

/** The istio.io/istio version e2e/istio/go.mod pins. */
export function pinnedIstioModule(): string {
  const gomod = readFileSync(join(root, "e2e/istio/go.mod"), "utf8");
  const m = /^\s*istio\.io\/istio (v\S+)/m.exec(gomod);
  if (!m) throw new Error("e2e/istio/go.mod does not require istio.io/istio");
  return m[1];
}

/** Istio's CRD file from the pinned module (downloaded into Go's module cache if missing). */
export function istioCrdFile(): string {
  const version = pinnedIstioModule();
  const cache = execFileSync("go", ["env", "GOMODCACHE"], { encoding: "utf8" }).trim();
  const file = join(cache, `istio.io/istio@${version}`, CRD_FILE);
  if (!existsSync(file)) execFileSync("go", ["mod", "download", `istio.io/istio@${version}`], { cwd: join(root, "e2e/istio"), stdio: ["ignore", "ignore", "inherit"] });
  if (!existsSync(file)) throw new Error(`${file}: not in the istio.io/istio module`);
  return file;
}

/** Kubernetes structural schema -> JSON Schema that refuses unknown fields, as the API server's strict validation does. */
function strict(schema: any): any {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== "object") return schema;
  const out: any = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k.startsWith("x-kubernetes-")) continue;
    out[k] = k === "properties" ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strict(s)])) : strict(v);
  }
  if (schema.properties && schema.additionalProperties === undefined && schema["x-kubernetes-preserve-unknown-fields"] !== true) out.additionalProperties = false;
  // int-or-string fields carry no type of their own.
  if (schema["x-kubernetes-int-or-string"] === true && out.type === undefined && out.anyOf === undefined) out.anyOf = [{ type: "integer" }, { type: "string" }];
  return out;
}

let validators: Map<string, ValidateFunction> | undefined;

function load(): Map<string, ValidateFunction> {
  if (validators) return validators;
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  validators = new Map();
  for (const d of parseAllDocuments(readFileSync(istioCrdFile(), "utf8"))) {
    const crd = d.toJS() as any;
    if (crd?.kind !== "CustomResourceDefinition") continue;
    for (const v of crd.spec.versions ?? []) {
      const spec = v.schema?.openAPIV3Schema?.properties?.spec;
      if (!v.served || !spec) continue;
      validators.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, ajv.compile(strict(spec)));
    }
  }
  return validators;
}

/** Throws with the schema's reasons when `doc` is not a valid resource of a version Istio serves. */
export function validateIstio(doc: { apiVersion?: string; kind?: string; metadata?: { name?: string }; spec?: unknown }): void {
  const validate = load().get(`${doc.apiVersion}/${doc.kind}`);
  if (!validate) throw new Error(`no schema for ${doc.apiVersion}/${doc.kind} among Istio's served CRD versions`);
  if (typeof doc.metadata?.name !== "string" || doc.metadata.name.length === 0) throw new Error(`${doc.kind}: metadata.name is required`);
  if (!validate(doc.spec ?? {})) {
    const reasons = (validate.errors ?? []).map((e) => `spec${e.instancePath.replace(/\//g, ".")}: ${e.message}${e.params && "additionalProperty" in e.params ? ` (${(e.params as any).additionalProperty})` : ""}${e.params && "pattern" in e.params ? ` ${(e.params as any).pattern}` : ""}`);
    throw new Error(`${doc.kind} ${doc.metadata.name}: ${reasons.join("; ")}`);
  }
}
