// The availability map (which envs run an instance of which service) and the routing
// decision it drives. Pure functions.
import { ConfigReader, fieldPath } from "../../../runtime/assembly/config";
import { JsonKind, JsonObject } from "../../../runtime/assembly/json";
import { ENV_NAME_RULE, validEnvName } from "./names";

export const MAX_SERVICES: i32 = 4096;
export const MAX_ENVS_PER_SERVICE: i32 = 256;

export class Availability {
  private byHost: Map<string, Array<string>> = new Map<string, Array<string>>();

  get size(): i32 { return this.byHost.size; }

  set(host: string, envs: Array<string>): void { this.byHost.set(host, envs); }

  /**
   * The envs of a service named by an :authority: the exact host (port dropped), else its
   * first DNS label (`reviews.default.svc.cluster.local` -> `reviews`). Null when unknown.
   */
  envsFor(authority: string): Array<string> | null {
    let host = authority;
    const colon = host.lastIndexOf(":");
    if (colon > 0 && host.indexOf("]") < 0) host = host.substring(0, colon);
    if (this.byHost.has(host)) return this.byHost.get(host);
    const dot = host.indexOf(".");
    if (dot > 0) {
      const short = host.substring(0, dot);
      if (this.byHost.has(short)) return this.byHost.get(short);
    }
    return null;
  }
}

/** Decodes `{"<service>": ["env", ...], ...}` at `path`; records the first problem in `r`. */
export function parseAvailability(r: ConfigReader, obj: JsonObject, path: string): Availability {
  const out = new Availability();
  if (obj.keys.length > MAX_SERVICES) { r.fail(path, "more than " + MAX_SERVICES.toString() + " services"); return out; }
  for (let i = 0; i < obj.keys.length; i++) {
    const host = unchecked(obj.keys[i]);
    const p = fieldPath(path, host);
    // Lowercase DNS name: a key any other way could never match an authority (silently unused).
    if (!validEnvName(host, 253)) { r.fail(p, "not a service name (a lowercase host or DNS label, as in the authority)"); return out; }
    const v = obj.values.get(host);
    if (v.kind != JsonKind.Array) { r.fail(p, "must be an array of env names, got " + v.typeName()); return out; }
    const list = r.strings(obj, path, host, MAX_ENVS_PER_SERVICE, new Array<string>());
    if (!r.ok) return out;
    for (let k = 0; k < list.length; k++) {
      if (!validEnvName(unchecked(list[k]))) { r.fail(p + "[" + k.toString() + "]", "not a valid env name: \"" + unchecked(list[k]) + "\" (" + ENV_NAME_RULE + ")"); return out; }
    }
    out.set(host, list);
  }
  return out;
}

export enum Outcome { Hit, Fallback, Default, UnknownService, ProductionPinned }

export class Decision {
  constructor(public served: string, public outcome: Outcome, public step: i32) {}
}

/**
 * Which env serves `authority` for a request whose chain is `chain` (origin env first,
 * default last). The first env in the chain that has the service wins; a production-only
 * service is always served by the default env.
 */
export function decide(avail: Availability, authority: string, chain: Array<string>, defaultEnv: string, productionOnly: bool): Decision {
  const origin = unchecked(chain[0]);
  if (productionOnly) return new Decision(defaultEnv, origin == defaultEnv ? Outcome.Hit : Outcome.ProductionPinned, chain.length - 1);
  const envs = avail.envsFor(authority);
  if (envs === null) return new Decision(defaultEnv, Outcome.UnknownService, chain.length - 1);
  for (let i = 0; i < chain.length; i++) {
    const env = unchecked(chain[i]);
    if (envs.includes(env)) return new Decision(env, i == 0 ? Outcome.Hit : env == defaultEnv ? Outcome.Default : Outcome.Fallback, i);
  }
  return new Decision(defaultEnv, Outcome.Default, chain.length - 1);
}
