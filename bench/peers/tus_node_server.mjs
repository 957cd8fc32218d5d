// @tus/server + @tus/file-store on 127.0.0.1: the Node.js tus peer of the benchmarks.
// Usage: node tus_node_server.mjs PORT DIRECTORY [WORKERS]. WORKERS > 1 runs a cluster, like
// gunicorn's worker processes (the file store keeps its state on disk, so any worker can serve
// any upload; uploads are never PATCHed concurrently by the load generator).
import cluster from "node:cluster";
import http from "node:http";
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [port, directory, workersArg] = process.argv.slice(2);
const workers = Number(workersArg || "1");

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on("SIGTERM", () => {
    for (const w of Object.values(cluster.workers)) w.kill("SIGTERM");
    process.exit(0);
  });
} else {
  const tus = new Server({
    path: "/files",
    datastore: new FileStore({ directory }),
    maxSize: 8 * 1024 ** 3,
  });
  http
    .createServer((req, res) => tus.handle(req, res))
    .listen(Number(port), "127.0.0.1");
  process.on("SIGTERM", () => process.exit(0));
}
