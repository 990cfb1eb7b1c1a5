// Validates Envoy configuration (as JSON/YAML objects) against Envoy's own API protos, as
// shipped by @grpc/grpc-js-xds. Strict where Envoy is strict: unknown fields, wrong types,
// unknown enum names, unresolvable Any type URLs, two members of one oneof, and the
// protoc-gen-validate rules Envoy enforces on load (required messages, min lengths, ...).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
const xdsDeps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const protobufjsDir = dirname(require.resolve("protobufjs/package.json"));
const SEARCH = [...["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(xdsDeps, d)), protobufjsDir];

const ENTRY_FILES = [
  "envoy/config/bootstrap/v3/bootstrap.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/http/header_formatters/preserve_case/v3/preserve_case.proto",
  "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
  "envoy/extensions/filters/http/wasm/v3/wasm.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/filters/http/stateful_session/v3/stateful_session.proto",
  "envoy/extensions/http/stateful_session/header/v3/header.proto",
  "envoy/extensions/http/stateful_session/cookie/v3/cookie.proto",
  "envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto",
  "envoy/extensions/transport_sockets/tls/v3/tls.proto",
  "envoy/extensions/clusters/aggregate/v3/cluster.proto",
];

let cached: protobuf.Root | undefined;

/** Envoy's API as protobufjs types (loaded once). */
export function envoyApi(): protobuf.Root {
  if (cached) return cached;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of SEARCH) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync(ENTRY_FILES, { keepCase: true });
  addNewerFields(root);
  root.resolveAll();
  cached = root;
  return root;
}

/**
 * Fields Envoy gained after the API snapshot these protos come from (the one bundled with
 * @grpc/grpc-js-xds), as Envoy 1.33+ defines them: PluginConfig.failure_policy (field 7, enum
 * FailurePolicy: UNSPECIFIED 0, FAIL_RELOAD 1, FAIL_CLOSED 2, FAIL_OPEN 3). Real Envoy's
 * `--mode validate` checks the same manifests too.
 */
function addNewerFields(root: protobuf.Root): void {
  const wasm = root.lookup("envoy.extensions.wasm.v3") as protobuf.Namespace | null;
  const plugin = root.lookup("envoy.extensions.wasm.v3.PluginConfig") as protobuf.Type | null;
  if (!wasm || !plugin || plugin.fields.failure_policy) return;
  if (!wasm.get("FailurePolicy")) wasm.add(new protobuf.Enum("FailurePolicy", { UNSPECIFIED: 0, FAIL_RELOAD: 1, FAIL_CLOSED: 2, FAIL_OPEN: 3 }));
  const field = new protobuf.Field("failure_policy", 7, "FailurePolicy");
  plugin.add(field);
  field.resolve();
}

const TYPE_PREFIX = "type.googleapis.com/";
const INT_TYPES = new Set(["int32", "sint32", "sfixed32", "uint32", "fixed32"]);
const LONG_TYPES = new Set(["int64", "sint64", "sfixed64", "uint64", "fixed64"]);
const WRAPPERS: Record<string, string> = {
  "google.protobuf.BoolValue": "bool", "google.protobuf.StringValue": "string", "google.protobuf.BytesValue": "bytes",
  "google.protobuf.UInt32Value": "uint32", "google.protobuf.Int32Value": "int32", "google.protobuf.UInt64Value": "uint64",
  "google.protobuf.Int64Value": "int64", "google.protobuf.DoubleValue": "double", "google.protobuf.FloatValue": "float",
};

export class ProtoValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

export interface ValidateOptions {
  /**
   * The value is a fragment merged into an existing message (an EnvoyFilter MERGE patch):
   * fields Envoy requires may come from the message it merges into, so they are not required.
   */
  partial?: boolean;
}

/** Problems found validating `value` as message `typeName` ("" path = the message itself). */
export function validateMessage(typeName: string, value: unknown, path = "", opts: ValidateOptions = {}): string[] {
  const problems: string[] = [];
  const type = envoyApi().lookupType(typeName);
  new Checker(problems, opts.partial === true).message(type, value, path || typeName);
  return problems;
}

/** Throws ProtoValidationError listing every problem. */
export function assertMessage(typeName: string, value: unknown, path = "", opts: ValidateOptions = {}): void {
  const problems = validateMessage(typeName, value, path, opts);
  if (problems.length > 0) throw new ProtoValidationError(problems);
}

/** Resolves an Any type URL to the message type; undefined when Envoy's API has no such type. */
export function typeForUrl(url: string): protobuf.Type | undefined {
  if (!url.startsWith(TYPE_PREFIX)) return undefined;
  try {
    return envoyApi().lookupType(url.slice(TYPE_PREFIX.length));
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function rule(field: protobuf.Field | protobuf.OneOf, key: string): unknown {
  return field.options?.[`(validate.rules).${key}`];
}

class Checker {
  constructor(readonly problems: string[], readonly partial: boolean) {}

  message(type: protobuf.Type, value: unknown, path: string): void {
    const problems = this.problems;
    const full = type.fullName.replace(/^\./, "");
    if (full in WRAPPERS) return this.scalar(WRAPPERS[full], value, path);
    switch (full) {
      case "google.protobuf.Any": return this.any(value, path);
      case "google.protobuf.Duration":
        if (typeof value !== "string" || !/^-?\d+(\.\d{1,9})?s$/.test(value)) problems.push(`${path}: must be a duration like "1.5s", got ${JSON.stringify(value)}`);
        return;
      case "google.protobuf.Timestamp":
        if (typeof value !== "string" || Number.isNaN(Date.parse(value))) problems.push(`${path}: must be an RFC 3339 timestamp`);
        return;
      case "google.protobuf.Struct":
        if (!isObject(value)) problems.push(`${path}: must be an object`);
        return;
      case "google.protobuf.Value":
      case "google.protobuf.ListValue":
        return;
      case "google.protobuf.Empty":
        if (!isObject(value) || Object.keys(value).length > 0) problems.push(`${path}: must be {}`);
        return;
    }
    if (!isObject(value)) {
      problems.push(`${path}: must be an object (${full}), got ${Array.isArray(value) ? "array" : typeof value}`);
      return;
    }
    const byJsonName = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      byJsonName.set(f.name, f);
      byJsonName.set(f.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), f);
    }
    const seenOneofs = new Map<string, string>();
    for (const [key, v] of Object.entries(value)) {
      const f = byJsonName.get(key);
      const p = `${path}.${key}`;
      if (!f) {
        problems.push(`${p}: unknown field of ${full}`);
        continue;
      }
      if (f.partOf) {
        const other = seenOneofs.get(f.partOf.name);
        if (other) problems.push(`${p}: only one of oneof '${f.partOf.name}' may be set (also ${other})`);
        seenOneofs.set(f.partOf.name, key);
      }
      if (v === null) continue;
      this.field(f, v, p);
    }
    if (this.partial) return;
    for (const f of type.fieldsArray) {
      // A required rule on a oneof member applies only when that member is the one set.
      if (f.partOf) continue;
      const present = f.name in value || f.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) in value;
      if (!present && (rule(f, "message.required") || rule(f, "duration.required") || rule(f, "any.required") || rule(f, "timestamp.required"))) {
        problems.push(`${path}.${f.name}: is required by ${full}`);
      }
    }
    for (const o of type.oneofsArray) {
      if (o.options?.["(validate.required)"] && !seenOneofs.has(o.name)) problems.push(`${path}: one of oneof '${o.name}' (${o.oneof.join(", ")}) is required by ${full}`);
    }
  }

  field(f: protobuf.Field, v: unknown, path: string): void {
    const problems = this.problems;
    if (f.map) {
      if (!isObject(v)) { problems.push(`${path}: must be a map (object)`); return; }
      for (const [k, item] of Object.entries(v)) this.single(f, item, `${path}["${k}"]`);
      return;
    }
    if (f.repeated) {
      if (!Array.isArray(v)) { problems.push(`${path}: must be a list`); return; }
      const min = rule(f, "repeated.min_items");
      if (typeof min === "number" && v.length < min) problems.push(`${path}: needs at least ${min} item(s)`);
      v.forEach((item, i) => this.single(f, item, `${path}[${i}]`));
      return;
    }
    this.single(f, v, path);
  }

  single(f: protobuf.Field, v: unknown, path: string): void {
    const problems = this.problems;
    const rt = f.resolvedType;
    if (rt instanceof protobuf.Enum) {
      if (typeof v === "string" ? !(v in rt.values) : !(typeof v === "number" && Object.values(rt.values).includes(v))) {
        problems.push(`${path}: ${JSON.stringify(v)} is not a value of ${rt.name} (${Object.keys(rt.values).join(", ")})`);
      }
      return;
    }
    if (rt instanceof protobuf.Type) return this.message(rt, v, path);
    this.scalar(f.type, v, path);
    const minLen = rule(f, "string.min_len");
    if (typeof minLen === "number" && typeof v === "string" && v.length < minLen) problems.push(`${path}: must have at least ${minLen} character(s)`);
  }

  scalar(type: string, v: unknown, path: string): void {
    const problems = this.problems;
    const bad = (what: string): void => { problems.push(`${path}: must be ${what}, got ${JSON.stringify(v)}`); };
    if (type === "string") { if (typeof v !== "string") bad("a string"); return; }
    if (type === "bytes") { if (typeof v !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) bad("base64 bytes"); return; }
    if (type === "bool") { if (typeof v !== "boolean") bad("a boolean"); return; }
    if (type === "double" || type === "float") { if (typeof v !== "number" && !(typeof v === "string" && v !== "" && !Number.isNaN(Number(v)))) bad("a number"); return; }
    if (INT_TYPES.has(type) || LONG_TYPES.has(type)) {
      const n = typeof v === "number" ? v : typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : NaN;
      if (!Number.isInteger(n)) return bad("an integer");
      if (type.startsWith("u") || type.startsWith("fixed")) { if (n < 0) bad("non-negative"); }
      if ((type === "uint32" || type === "fixed32") && n > 0xffffffff) bad("a uint32");
      if ((type === "int32" || type === "sint32" || type === "sfixed32") && (n < -(2 ** 31) || n >= 2 ** 31)) bad("an int32");
      return;
    }
    problems.push(`${path}: unsupported scalar type ${type}`);
  }

  any(v: unknown, path: string): void {
    const problems = this.problems;
    if (!isObject(v) || typeof v["@type"] !== "string") {
      problems.push(`${path}: an Any needs "@type"`);
      return;
    }
    const url = v["@type"];
    const type = typeForUrl(url);
    if (!type) {
      problems.push(`${path}: unknown type URL ${url}`);
      return;
    }
    const { "@type": _t, ...rest } = v;
    const full = type.fullName.replace(/^\./, "");
    // Well-known types with a non-object JSON form keep it under "value".
    if (full in WRAPPERS || ["google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.Struct", "google.protobuf.Value"].includes(full)) {
      const keys = Object.keys(rest);
      if (keys.length !== 1 || keys[0] !== "value") problems.push(`${path}: an Any of ${full} holds exactly one field, "value"`);
      else this.message(type, rest.value, `${path}.value`);
      return;
    }
    this.message(type, rest, path);
  }
}
