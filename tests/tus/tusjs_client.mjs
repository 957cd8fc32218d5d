// Uploads a file to tuscam with tus-js-client (node), as scripts and the browser do.
// Usage: node tusjs_client.mjs ENDPOINT TOKEN FILE SESSION_ID MODE
//   MODE plain:     one upload in 256 KiB chunks
//   MODE resume:    abort after the first chunks, then a new Upload resumes from uploadUrl
//   MODE parallel:  parallelUploads 3 (concatenation of partial uploads)
//   MODE creation:  uploadDataDuringCreation (the first chunk rides on the POST)
//   MODE deferred:  uploadLengthDeferred (a Buffer source: with a node stream source 4.3.1
//                   announces a full chunk's Content-Length for the short last chunk and then
//                   waits, so the server's idle timeout ends it — a client bug, not ours)
// Prints one JSON line: {"url": ..., "headers": {...capture headers...}, "aborted_at": n}.
import fs from 'node:fs'
import { Upload } from 'tus-js-client'

const [endpoint, token, file, sessionId, mode] = process.argv.slice(2)
const data = fs.readFileSync(file)
const captureHeaders = {}

function options(extra) {
  return {
    endpoint,
    headers: { Authorization: `Bearer ${token}` },
    chunkSize: 256 * 1024,
    retryDelays: [0, 200, 500, 1000],
    metadata: { filename: 'tusjs.bin', session_id: sessionId, capture_trigger: 'manual' },
    onAfterResponse(_req, res) {
      for (const name of ['Tuscam-Capture-Id', 'Tuscam-Capture-Status']) {
        const value = res.getHeader(name)
        if (value) captureHeaders[name] = value
      }
    },
    ...extra,
  }
}

function run(upload) {
  return new Promise((resolve, reject) => {
    upload.options.onSuccess = () => resolve(upload.url)
    upload.options.onError = reject
    upload.start()
  })
}

let abortedAt = null
let url
if (mode === 'resume') {
  url = await new Promise((resolve, reject) => {
    const first = new Upload(data, options({
      onChunkComplete(_size, sent) {
        if (sent >= 512 * 1024 && abortedAt === null) {
          abortedAt = sent
          first.abort().then(() => resolve(first.url))
        }
      },
      onError: reject,
    }))
    first.start()
  })
  url = await run(new Upload(data, options({ uploadUrl: url })))
} else if (mode === 'parallel') {
  url = await run(new Upload(data, options({ parallelUploads: 3 })))
} else if (mode === 'creation') {
  url = await run(new Upload(data, options({ uploadDataDuringCreation: true })))
} else if (mode === 'deferred') {
  url = await run(new Upload(data, options({ uploadLengthDeferred: true })))
} else {
  url = await run(new Upload(data, options({})))
}
console.log(JSON.stringify({ url, headers: captureHeaders, aborted_at: abortedAt }))
