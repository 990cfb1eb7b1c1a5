// npm start: the suite on one machine. Example upstreams, then the local gateway (or real Envoy
// with --envoy) on manifests/envoy/envoy.yaml; prints curl commands; Ctrl-C stops everything.
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { join } from "node:path";
import { loadBootstrap } from "./bootstrap.js";
import { echoInstances, startEcho } from "./echo.js";
import { startGateway } from "./gateway.js";

const root = process.argv[2];
const args = process.argv.slice(3);
const bootstrapFile = args.includes("--bootstrap") ? args[args.indexOf("--bootstrap") + 1] : join(root, "manifests/envoy/envoy.yaml");
const useEnvoy = args.includes("--envoy");

async function main(): Promise<void> {
  const cfg = loadBootstrap(bootstrapFile);
  let port = cfg.listener.port;
  const stopEcho = await startEcho(echoInstances(cfg.clusters.values()), () => port);
  let stopFront: () => Promise<void>;
  if (useEnvoy) {
    if (spawnSync("envoy", ["--version"]).error) {
      console.error("--envoy: no `envoy` binary on PATH. Install Envoy 1.28-1.36, or run without --envoy for the local gateway.");
      await stopEcho();
      process.exit(2);
    }
    const child: ChildProcess = spawn("envoy", ["-c", bootstrapFile, "--base-id", String(process.pid % 1000), "--log-level", "warn"], { cwd: root, stdio: "inherit" });
    stopFront = async () => { child.kill("SIGTERM"); };
  } else {
    const gw = await startGateway({ bootstrap: cfg, root, logLevel: "warn", onLog: (l) => console.error(l) });
    port = gw.port;
    stopFront = gw.stop;
  }
  const url = `http://127.0.0.1:${port}`;
  console.log(`The suite is serving on ${url} (${useEnvoy ? "real Envoy" : "local gateway over the suite's proxy-wasm host"}), bootstrap ${bootstrapFile}.

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
