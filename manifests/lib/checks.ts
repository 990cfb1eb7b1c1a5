// Every check a shipped manifest must pass, for any filter: Istio's schema, Envoy's protos (no
// unknown fields), the suite's placement rules (workloadSelector, proxyVersion, root_id), the
// filter's own JSON Schema for its configuration, and the built filter's on_configure.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { Envoy, PluginLoadError } from "../../runtime/host/src/index.js";
import { validateMessage } from "./envoy-proto.js";
import { validateIstio } from "./istio.js";
import { LEGACY_PRESERVE_CASE_PROXY_VERSION, PROXY_VERSION_REGEX, UNPINNED_DIGEST } from "../src/wasm.js";

const root = new URL("../../", import.meta.url).pathname;
const WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const ajv = new Ajv2020({ strict: true, allErrors: true });
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

/** The suite's filters: folders under filters/ with a schema. */
export function knownFilter(name: string): boolean {
  return existsSync(join(root, "filters", name, "config.schema.json"));
}

/** Problems with a filter configuration: its JSON Schema, then the built module's on_configure. */
export function checkFilterConfig(filter: string, config: unknown, where: string, wasmFile?: string): string[] {
  if (!knownFilter(filter)) return [`${where}: root_id/pluginName "${filter}" is not a filter of the suite`];
  let validate = validators.get(filter);
  if (!validate) {
    validate = ajv.compile(JSON.parse(readFileSync(join(root, "filters", filter, "config.schema.json"), "utf8")));
    validators.set(filter, validate);
  }
  if (!validate(config)) return (validate.errors ?? []).map((e) => `${where}: config.schema.json: ${e.instancePath || "/"} ${e.message}`);
  const wasm = wasmFile ?? join(root, "dist", `${filter}.wasm`);
  if (!existsSync(wasm)) return [`${where}: ${wasm} is not built (npm run build)`];
  const envoy = new Envoy({ workers: 1, logLevel: "critical" });
  try {
    envoy.addPlugin({ name: filter, rootId: filter, wasm, configuration: JSON.stringify(config) });
  } catch (err) {
    if (!(err instanceof PluginLoadError)) throw err;
    return [`${where}: the filter refuses this configuration: ${envoy.logsAt("critical")[0] ?? err.message}`];
  }
  return [];
}

/** Checks an envoy.extensions.filters.http.wasm.v3.Wasm typed_config carrying one of our filters. */
function checkWasmTypedConfig(tc: any, where: string): string[] {
  const cfg = tc?.config;
  if (!cfg) return [`${where}: no config`];
  const problems: string[] = [];
  if (cfg.configuration?.["@type"] !== "type.googleapis.com/google.protobuf.StringValue") problems.push(`${where}: configuration must be a StringValue (JSON text)`);
  if (typeof cfg.fail_open !== "boolean" && cfg.failure_policy === undefined) problems.push(`${where}: no deliberate failure policy (fail_open or failure_policy)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(cfg.configuration?.value ?? "");
  } catch {
    return [...problems, `${where}: configuration value is not JSON`];
  }
  return [...problems, ...checkFilterConfig(cfg.root_id, parsed, where)];
}

/** All wasm HTTP filters of a bootstrap's listeners. */
function bootstrapWasmFilters(doc: any): Array<{ tc: any; where: string }> {
  const out: Array<{ tc: any; where: string }> = [];
  for (const [li, l] of (doc.static_resources?.listeners ?? []).entries()) {
    for (const [ci, chain] of (l.filter_chains ?? []).entries()) {
      for (const f of chain.filters ?? []) {
        for (const [hi, h] of (f.typed_config?.http_filters ?? []).entries()) {
          if (h.typed_config?.["@type"] === WASM_TYPE) out.push({ tc: h.typed_config, where: `listeners[${li}].filter_chains[${ci}].http_filters[${hi}]` });
        }
      }
    }
  }
  return out;
}

const PATCH_TYPES: Record<string, string> = {
  HTTP_FILTER: "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
  NETWORK_FILTER: "envoy.config.listener.v3.Filter",
  CLUSTER: "envoy.config.cluster.v3.Cluster",
  HTTP_ROUTE: "envoy.config.route.v3.Route",
};

/** Every problem with one YAML document (an Istio resource, or a standalone Envoy bootstrap). */
/**
 * A committed WasmPlugin carries the unpinned placeholder (refused by Istio's schema on
 * purpose, see UNPINNED_DIGEST): the rest of it is checked as if it were pinned.
 */
export function asPinned(doc: any): any {
  return doc?.kind === "WasmPlugin" && doc.spec?.sha256 === UNPINNED_DIGEST ? { ...doc, spec: { ...doc.spec, sha256: "0".repeat(64) } } : doc;
}

export function checkDocument(doc: any, where: string): string[] {
  if (doc?.static_resources) {
    const problems = validateMessage("envoy.config.bootstrap.v3.Bootstrap", doc, where);
    for (const f of bootstrapWasmFilters(doc)) problems.push(...checkWasmTypedConfig(f.tc, `${where}: ${f.where}`));
    return problems;
  }
  const problems: string[] = [];
  try {
    validateIstio(asPinned(doc));
  } catch (err) {
    problems.push(`${where}: Istio schema: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc?.kind === "EnvoyFilter") {
    if (!doc.spec?.workloadSelector?.labels || Object.keys(doc.spec.workloadSelector.labels).length === 0) {
      problems.push(`${where}: EnvoyFilter without workloadSelector (istiod would push it to every proxy)`);
    }
    for (const [i, p] of (doc.spec?.configPatches ?? []).entries()) {
      const at = `${where}: configPatches[${i}]`;
      // The preserve-case EnvoyFilters are for Istio before 1.25 only (LEGACY_PRESERVE_CASE_PROXY_VERSION).
      const guard = String(doc.metadata?.name ?? "").startsWith("header-normalizer-preserve-case") ? LEGACY_PRESERVE_CASE_PROXY_VERSION : PROXY_VERSION_REGEX;
      if (p.match?.proxy?.proxyVersion !== guard) problems.push(`${at}: proxyVersion must be ${guard}`);
      const type = PATCH_TYPES[p.applyTo];
      if (!type) { problems.push(`${at}: no Envoy type known for applyTo ${p.applyTo}`); continue; }
      problems.push(...validateMessage(type, p.patch?.value, `${at}.patch.value`, { partial: p.patch?.operation === "MERGE" }));
      if (p.applyTo === "HTTP_FILTER" && p.patch?.value?.typed_config?.["@type"] === WASM_TYPE) problems.push(...checkWasmTypedConfig(p.patch.value.typed_config, at));
    }
  }
  if (doc?.kind === "WasmPlugin") {
    const spec = doc.spec ?? {};
    if (!spec.selector?.matchLabels && !spec.targetRefs) problems.push(`${where}: WasmPlugin without selector or targetRefs (it would apply to every workload in the namespace)`);
    if (!spec.failStrategy) problems.push(`${where}: no deliberate failStrategy`);
    if (spec.phase === undefined || spec.priority === undefined) problems.push(`${where}: phase and priority must be explicit`);
    problems.push(...checkFilterConfig(spec.pluginName, spec.pluginConfig, `${where}: pluginConfig`));
  }
  return problems;
}
