// `npm start` will run the local gateway (the e2e issue). Until then it says what is available.
console.log(`The local gateway is not built yet. Available now:
  npm run build   compile every filter and fixture to dist/
  npm test        build, AssemblyScript unit tests (as-pect), host conformance tests (vitest)
  npm run bench   cost per request against the no-op filter, hostcalls, memory, .wasm size`);
