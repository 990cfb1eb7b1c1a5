// as-pect runs the AssemblyScript unit tests of the pure guest code (no hostcalls).
export default {
  entries: ["runtime/assembly/__tests__/**/*.spec.ts", "filters/*/assembly/__tests__/**/*.spec.ts"],
  include: ["runtime/assembly/__tests__/**/*.include.ts"],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory } }));
  },
  outputBinary: false,
};
