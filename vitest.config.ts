import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["runtime/host/test/**/*.test.ts", "filters/*/test/**/*.test.ts", "manifests/test/**/*.test.ts", "test/**/*.test.ts", "e2e/**/*.test.ts", "fuzz/**/*.test.ts"],
    testTimeout: 20000,
    pool: "forks",
    globalSetup: ["test/envoy.global.ts"],
  },
});
