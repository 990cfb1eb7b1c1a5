// The closed loop's upstream for real Envoy (bench/envoy-loop.ts): an HTTP server on 127.0.0.1
// with a fixed number of servers and a service time, like the simulated plant. Requests wait in
// one FIFO queue for a free server, which holds each for serviceMs x [0.8, 1.2]. Run as a child
// process: argv servers serviceMs; it sends {port} when listening, and takes {servers: n} to
// change the number of servers (a capacity drop; requests being served finish).
import { createServer } from "node:http";

let servers = Number(process.argv[2]);
const serviceMs = Number(process.argv[3]);
if (!(servers >= 1) || !(serviceMs > 0)) {
  console.error("usage: upstream.mjs <servers> <serviceMs>");
  process.exit(2);
}
let busy = 0;
const queue = [];

function dispatch() {
  while (busy < servers && queue.length > 0) {
    const res = queue.shift();
    busy++;
    setTimeout(() => {
      busy--;
      res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
      res.end("ok");
      dispatch();
    }, serviceMs * (0.8 + 0.4 * Math.random()));
  }
}

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    queue.push(res);
    dispatch();
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 61_000;
server.listen(0, "127.0.0.1", () => process.send?.({ port: server.address().port }));
process.on("message", (m) => {
  if (m && typeof m.servers === "number" && m.servers >= 1) {
    servers = m.servers;
    dispatch();
  }
});
process.on("disconnect", () => process.exit(0));
