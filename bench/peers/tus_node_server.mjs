// @tus/server + @tus/file-store (or @tus/s3-store) on 127.0.0.1: the Node.js tus peer of the
// benchmarks. Usage: node tus_node_server.mjs PORT DIRECTORY [WORKERS]. WORKERS > 1 runs a
// cluster, like gunicorn's worker processes (the file store keeps its state on disk, the S3
// store in S3, so any worker can serve any upload; uploads are never PATCHed concurrently by
// the load generator). With TUS_S3_ENDPOINT and TUS_S3_BUCKET set, uploads go to that S3
// service with @tus/s3-store's defaults (8 MiB parts), path-style addressing.
import cluster from "node:cluster";
import http from "node:http";
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

async function makeStore(directory) {
  if (!process.env.TUS_S3_ENDPOINT) return new FileStore({ directory });
  const { S3Store } = await import("@tus/s3-store");
  return new S3Store({
    s3ClientConfig: {
      bucket: process.env.TUS_S3_BUCKET,
      region: "us-east-1",
      endpoint: process.env.TUS_S3_ENDPOINT,
      forcePathStyle: true,
      // As tuscam's boto3 client: checksums only where S3 requires them (S3-compatible
      // services differ in the newer checksum headers and aws-chunked bodies they accept).
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      credentials: {
        accessKeyId: process.env.AWS_ACCESS_KEY_ID,
        secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
      },
    },
  });
}

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
    datastore: await makeStore(directory),
    maxSize: 8 * 1024 ** 3,
  });
  http
    .createServer((req, res) => tus.handle(req, res))
    .listen(Number(port), "127.0.0.1");
  process.on("SIGTERM", () => process.exit(0));
}
