// The echo upstream as a pod of the kind target: ECHO_SERVICE, ECHO_ENV, ECHO_PORT (default
// 8080), REPLICA. Onward calls (x-e2e-next) go to http://<service>:<port>, through the pod's
// sidecar, where env-router (outbound) routes them.
import { startEcho } from "../../runtime/gateway/echo.js";

const port = Number(process.env.ECHO_PORT ?? 8080);
await startEcho(
  [{ service: process.env.ECHO_SERVICE ?? "echo", env: process.env.ECHO_ENV ?? "default", replica: 0, port, host: process.env.ECHO_POD_IP }],
  () => port,
  { mode: "direct", port },
);
console.log(`echo ${process.env.ECHO_SERVICE}@${process.env.ECHO_ENV} listening on ${port}`);
