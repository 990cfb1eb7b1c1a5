// Environment names, allow-patterns and fallback chains. Pure functions.

export const MAX_ENV_LENGTH: i32 = 63;

/** What a configuration error about an env name says the rule is. */
export const ENV_NAME_RULE = "dot-separated labels of a-z, 0-9 and '-'";

/**
 * An env name: dot-separated labels of [a-z0-9-], each 1-63 long, not starting or ending with
 * '-', at most MAX_ENV_LENGTH in all. The most specific label comes first
 * (`feature-x.team-a` lives inside `team-a`).
 */
export function validEnvName(s: string, maxLength: i32 = MAX_ENV_LENGTH): bool {
  const n = s.length;
  if (n == 0 || n > maxLength) return false;
  let labelStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 0x2e;
    if (c == 0x2e) {
      const len = i - labelStart;
      if (len == 0 || len > 63) return false;
      if (s.charCodeAt(labelStart) == 0x2d || s.charCodeAt(i - 1) == 0x2d) return false;
      labelStart = i + 1;
      continue;
    }
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d)) return false;
  }
  return true;
}

/** Glob match with `*` (any run, possibly empty) and `?` (one character). */
export function globMatch(pattern: string, s: string): bool {
  let p = 0, i = 0, starP = -1, starI = 0;
  while (i < s.length) {
    if (p < pattern.length && (pattern.charCodeAt(p) == 0x3f || pattern.charCodeAt(p) == s.charCodeAt(i))) { p++; i++; continue; }
    if (p < pattern.length && pattern.charCodeAt(p) == 0x2a) { starP = p++; starI = i; continue; }
    if (starP >= 0) { p = starP + 1; i = ++starI; continue; }
    return false;
  }
  while (p < pattern.length && pattern.charCodeAt(p) == 0x2a) p++;
  return p == pattern.length;
}

/** Whether `env` matches one of `allowed` (an empty list allows every valid name). */
export function envAllowed(env: string, allowed: Array<string>): bool {
  if (allowed.length == 0) return true;
  for (let i = 0; i < allowed.length; i++) if (globMatch(unchecked(allowed[i]), env)) return true;
  return false;
}

/**
 * The envs to try for a request tagged `env`, most specific first, ending with `defaultEnv`:
 * an explicit chain when configured, else the env's parents by dropping the leftmost label
 * (`feature-x.team-a` -> `team-a`), else straight to the default.
 */
export function fallbackChain(env: string, explicit: Map<string, Array<string>>, hierarchical: bool, defaultEnv: string): Array<string> {
  const chain = new Array<string>();
  chain.push(env);
  if (explicit.has(env)) {
    const steps = explicit.get(env);
    for (let i = 0; i < steps.length; i++) if (!chain.includes(unchecked(steps[i]))) chain.push(unchecked(steps[i]));
  } else if (hierarchical) {
    let rest = env;
    let dot = rest.indexOf(".");
    while (dot >= 0) {
      rest = rest.substring(dot + 1);
      chain.push(rest);
      dot = rest.indexOf(".");
    }
  }
  if (!chain.includes(defaultEnv)) chain.push(defaultEnv);
  return chain;
}
