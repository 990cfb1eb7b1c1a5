// Linking a module the way Envoy does before it runs anything (reference sections 1.1-1.2):
// exactly one ABI marker, every import provided by this Envoy for that ABI with the same
// signature, callbacks with the signatures the ABI defines, a memory and an allocator.
import { ABI_EXPORTS, AbiVersion, CALLBACK_SIGNATURES, providedImports, sameSignature } from "../abi/abi.js";
import { ModuleInfo, signature } from "../abi/wasm-binary.js";

export class PluginLoadError extends Error {}

/** Checks a module the way Envoy links it; returns the ABI version or throws with Envoy's reason. */
export function checkModule(info: ModuleInfo, minor: number): AbiVersion {
  const markers = info.exports.filter((e) => e.name in ABI_EXPORTS);
  if (markers.length !== 1) {
    throw new PluginLoadError(markers.length === 0
      ? "Missing or unknown Proxy-Wasm ABI version"
      : `More than one Proxy-Wasm ABI version exported: ${markers.map((m) => m.name).join(", ")}`);
  }
  const abi = ABI_EXPORTS[markers[0].name];
  if (abi === "0.1.0") throw new PluginLoadError("Proxy-Wasm ABI 0.1.0 is not emulated by this host (Envoy supports it; the suite targets 0.2.x)");
  const provided = providedImports(abi, minor);
  for (const imp of info.imports) {
    const full = `${imp.module}.${imp.name}`;
    if (imp.kind !== "function") throw new PluginLoadError(`Failed to load Wasm module due to a missing import: ${full} (${imp.kind} imports are not provided)`);
    const want = provided.get(full);
    if (!want) throw new PluginLoadError(`Failed to load Wasm module due to a missing import: ${full}`);
    if (!sameSignature(imp.type, want)) {
      throw new PluginLoadError(`Failed to load Wasm module due to an import type mismatch: ${full}, want: ${signature(want)}, but host exports: ${signature(imp.type)}`);
    }
  }
  for (const exp of info.exports) {
    const want = CALLBACK_SIGNATURES[exp.name];
    if (exp.kind === "function" && want && !sameSignature(exp.type, want)) {
      throw new PluginLoadError(`Bad function signature for: ${exp.name}`);
    }
  }
  if (!info.exports.some((e) => e.name === "memory" && e.kind === "memory")) {
    throw new PluginLoadError("Wasm module is missing its memory export");
  }
  if (!info.exports.some((e) => (e.name === "malloc" || e.name === "proxy_on_memory_allocate") && e.kind === "function")) {
    throw new PluginLoadError("Wasm module is missing malloc function.");
  }
  return abi;
}
