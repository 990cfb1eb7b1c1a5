// Generators for the fuzzer: hostile HTTP traffic, and plugin configurations derived from each
// filter's JSON Schema plus mutations of valid ones.
import fc from "fast-check";

const tokenChars = "abcdefghijklmnopqrstuvwxyz0123456789-_".split("");
const nasty = ["", " ", "\r\n", "\0", "\t", ",", ",,", "\"", "a\"b,c", "\\", "%00", "%2e%2e", "../", "😀", "\u00ff", "é", "\ud800"];

/** A header name: usually lowercase token, sometimes mixed case or a name the filters care about. */
export const headerName = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.constantFrom(...tokenChars), { minLength: 1, maxLength: 12 }).map((a) => "x-" + a.join("")) },
  { weight: 4, arbitrary: fc.constantFrom("content-type", "Content-Type", "content-length", "host", "authorization", "transfer-encoding", "set-cookie",
    "x-env", "baggage", "cookie", "traceparent", "x-b3-traceid", "x-request-id", "x-priority", "x-envoy-original-dst-host", "x-podip-session",
    "x-podip-router-pin", "x-env-route", "x-ops-authenticated", "accept", "etag", "date", "location") },
);

/** A header value: plausible, hostile, huge, or raw invalid UTF-8 bytes. */
export const headerValue: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 3, arbitrary: fc.constantFrom("application/json", "application/json,application/json", "text/plain; charset=utf-8", "multipart/form-data; boundary=\"a,b\"",
    "feature-x", "feature-x.team-a", "default", "env=feature-x", "env=feature-x,userId=1", "session=1; env=feature-x", "chunked", "chunked, chunked",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "critical", "sheddable", "10.8.3.17:8080", "MTAuOC4zLjE3OjgwODA=") },
  { weight: 2, arbitrary: fc.constantFrom(...nasty) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("a", ",", "\"", "x"), fc.integer({ min: 1000, max: 70000 })).map(([c, n]) => c.repeat(n)) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 30 }).map((b) => b.map((x) => (x === 0 ? 1 : x))) },
);

export const path = fc.oneof(
  fc.constantFrom("/", "/api/items", "/api/orders?id=1", "/checkout/cart", "/_pod/10.8.3.17:8080/x", "/_pod/127.0.0.1:18102/hello?x=1", "/_pod/010.8.3.17/",
    "/_pod/[fd00:10::5]:8080/", "/_pod//", "/_pod/10.8.3.17:8080/../admin", "/_pod/169.254.169.254:80/", "/_pod/", "/health"),
  fc.string({ maxLength: 60 }).map((s) => "/" + s.replace(/[\r\n\0]/g, "")),
);

export const authority = fc.oneof(
  fc.constantFrom("example.com", "reviews", "reviews.default.svc.cluster.local:9080", "10-8-3-17.pods.example.com", "fd00-10--5.pods.example.com", ".pods.example.com", "a:b:c", ""),
  fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n\0]/g, "") || "x"),
);

export interface FuzzRequest {
  method: string;
  path: string;
  authority: string;
  headers: Array<[string, string | Uint8Array]>;
  body?: string[];
  trailers?: Array<[string, string]>;
  response: { status: number; headers: Array<[string, string]>; body?: string; reset: boolean };
  worker: number;
  /** Virtual milliseconds to advance before this request (ticks fire). */
  waitMs: number;
}

export function request(workers: number): fc.Arbitrary<FuzzRequest> {
  return fc.record({
    method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT"),
    path,
    authority,
    headers: fc.oneof(
      { weight: 8, arbitrary: fc.array(fc.tuple(headerName, headerValue), { maxLength: 16 }) },
      { weight: 1, arbitrary: fc.integer({ min: 200, max: 1000 }).map((n) => Array.from({ length: n }, (_, i): [string, string] => [i % 3 ? `x-h${i}` : "content-type", `v${i}`])) },
    ),
    body: fc.option(fc.array(fc.string({ maxLength: 200 }), { minLength: 1, maxLength: 4 }), { nil: undefined }),
    trailers: fc.option(fc.array(fc.tuple(headerName, fc.string({ maxLength: 20 })), { maxLength: 3 }), { nil: undefined }),
    response: fc.record({
      status: fc.constantFrom(200, 201, 204, 301, 400, 404, 429, 500, 502, 503, 504),
      headers: fc.array(fc.tuple(headerName, fc.string({ maxLength: 30 })), { maxLength: 8 }),
      body: fc.option(fc.string({ maxLength: 200 }), { nil: undefined }),
      reset: fc.integer({ min: 0, max: 9 }).map((n) => n === 0), // 10%; drawn by fast-check so a seed replays it
    }),
    worker: fc.integer({ min: 0, max: workers - 1 }),
    waitMs: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }) }),
  });
}

// ---------------------------------------------------------------- configurations from a schema

type Schema = Record<string, any>;

function resolve(schema: Schema, root: Schema): Schema {
  if (schema.$ref) return resolve(root.$defs[schema.$ref.replace("#/$defs/", "")], root);
  return schema;
}

/** Values a JSON Schema (the subset the suite's schemas use) accepts, approximately. */
export function fromSchema(schema: Schema, root: Schema = schema, depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(schema, root);
  if (s.enum) return fc.constantFrom(...s.enum);
  if (s.oneOf) return fc.oneof(...s.oneOf.map((x: Schema) => fromSchema(x, root, depth + 1)));
  switch (s.type) {
    case "boolean": return fc.boolean();
    case "integer": return fc.integer({ min: s.minimum ?? -1000, max: Math.min(s.maximum ?? 100000, 2 ** 31 - 1) });
    case "number": return fc.double({ min: s.minimum ?? -1000, max: s.maximum ?? 100000, noNaN: true, noDefaultInfinity: true });
    case "string":
      if (s.pattern) return fc.stringMatching(new RegExp(s.pattern)).filter((x) => x.length <= (s.maxLength ?? 200));
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 20, 20) });
    case "array":
      return fc.array(depth > 4 ? fc.constant(null) : fromSchema(s.items ?? {}, root, depth + 1), { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 4, 4) });
    case "object": {
      const props = Object.entries(s.properties ?? {});
      if (props.length === 0 && s.additionalProperties && typeof s.additionalProperties === "object") {
        return fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), fromSchema(s.additionalProperties, root, depth + 1), { maxKeys: 3 });
      }
      const required = new Set<string>(s.required ?? []);
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of props) record[k] = fromSchema(v as Schema, root, depth + 1);
      return fc.record(record, { requiredKeys: [...required] as never[] });
    }
  }
  return fc.constantFrom(null, 1, "x", true, [], {});
}

/** A valid configuration, mutated: a field dropped, retyped, stretched, or an unknown key added. */
export function mutated(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.integer({ min: 0, max: 5 }), fc.string({ maxLength: 8 }), fc.constantFrom<unknown>(-1, 1e12, "", "x", null, [], {}, true, 1.5)).map(([v, kind, key, junk]) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return junk;
    const o: Record<string, unknown> = JSON.parse(JSON.stringify(v));
    const keys = Object.keys(o);
    const k = keys.length > 0 ? keys[key.length % keys.length] : "x";
    switch (kind) {
      case 0: delete o[k]; break;
      case 1: o[k] = junk; break;
      case 2: o[key || "unknown"] = junk; break;
      case 3: return JSON.stringify(o).slice(0, Math.max(1, JSON.stringify(o).length - 2)); // truncated text
      case 4: return [o];
      default: o[k] = typeof o[k] === "number" ? -(o[k] as number) - 1 : o[k];
    }
    return o;
  });
}
