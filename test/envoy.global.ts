// Vitest global setup: makes sure an Envoy binary of every supported version is there before any
// test file starts (fetched once into .envoy/, not by each file in parallel) and hands the paths
// to the files that run Envoy (inject("envoys")). A version that cannot be had fails the run:
// the Envoy targets are never skipped. E2E_TARGET=local or kind needs no Envoy.
import type { TestProject } from "vitest/node";
import { resolveEnvoy, supportedVersions } from "../scripts/envoy.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    envoys: Array<{ version: string; bin: string }>;
  }
}

export default function setup(project: TestProject): void {
  const target = process.env.E2E_TARGET;
  const need = target !== "local" && target !== "kind";
  const envoys: Array<{ version: string; bin: string }> = [];
  if (need) {
    for (const v of supportedVersions()) {
      let found: { bin: string; version: string };
      try {
        found = resolveEnvoy(v, { log: (l) => console.log(l) });
      } catch (err) {
        throw new Error(`Envoy ${v} is needed by the e2e suite and the validation tests and could not be had: ${(err as Error).message}\n(Set ENVOY_BIN to an Envoy binary, or run E2E_TARGET=local for the host only.)`);
      }
      // With ENVOY_BIN every requested version is that one binary: run it once, under its own version.
      if (!envoys.some((e) => e.bin === found.bin)) envoys.push(found);
    }
  }
  project.provide("envoys", envoys);
}
