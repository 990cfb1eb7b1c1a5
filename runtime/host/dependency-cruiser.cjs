// The host's layers (see README.md): abi/ -> vm/ -> envoy/ -> index.ts, imports one way only,
// type-only imports included. `npm test` runs this check (npm run check:layers).
module.exports = {
  forbidden: [
    { name: "no-circular", comment: "no import cycle anywhere under runtime/host", severity: "error", from: {}, to: { circular: true } },
    { name: "abi-is-the-bottom", comment: "abi/ reads the binary and holds the ABI's tables: it imports nothing of the host", severity: "error",
      from: { path: "^runtime/host/src/abi/" }, to: { path: "^runtime/host/src/(vm|envoy)/|^runtime/host/src/[^/]+\\.ts$" } },
    { name: "vm-knows-no-envoy", comment: "vm/ is the ABI layer: it calls VmHost and never the Envoy model", severity: "error",
      from: { path: "^runtime/host/src/vm/" }, to: { path: "^runtime/host/src/envoy/|^runtime/host/src/[^/]+\\.ts$" } },
    { name: "envoy-below-the-api", comment: "the Envoy model does not import the public entry points", severity: "error",
      from: { path: "^runtime/host/src/envoy/" }, to: { path: "^runtime/host/src/[^/]+\\.ts$" } },
  ],
  options: {
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
  },
};
