// tus-js-client's HTTP stack, wrapped: (1) a request that makes no progress for STALL_MS is
// aborted and fails like a lost connection, so tus retries and resumes from the server's offset
// (half-open connections on phone networks never end by themselves); (2) request bodies go out as
// ArrayBuffers, never Blobs (Safari 26 freezes Blob bodies after the first chunk over HTTP).
import { DefaultHttpStack } from 'tus-js-client'

export const STALL_MS = 20000

export class StallError extends Error {
  constructor(seconds) {
    super(`No progress for ${seconds} s: the connection was dropped and the upload resumes.`)
    this.name = 'StallError'
  }
}

class WatchedRequest {
  constructor(inner, stallMs, onStall) {
    this.inner = inner
    this.stallMs = stallMs
    this.onStall = onStall
    this.progressHandler = null
  }

  getMethod() {
    return this.inner.getMethod()
  }
  getURL() {
    return this.inner.getURL()
  }
  setHeader(name, value) {
    this.inner.setHeader(name, value)
  }
  getHeader(name) {
    return this.inner.getHeader(name)
  }
  setProgressHandler(handler) {
    this.progressHandler = handler
  }
  abort() {
    return this.inner.abort()
  }
  getUnderlyingObject() {
    return this.inner.getUnderlyingObject()
  }

  async send(body = null) {
    // A chunk is at most the chunk size; reading it into memory is bounded by that.
    const payload = body instanceof Blob ? await body.arrayBuffer() : body
    let timer = null
    let fail = null
    const stalled = new Promise((_, reject) => {
      fail = reject
    })
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => {
        this.onStall?.(this)
        this.inner.abort()
        fail(new StallError(this.stallMs / 1000))
      }, this.stallMs)
    }
    this.inner.setProgressHandler((bytes) => {
      arm()
      this.progressHandler?.(bytes)
    })
    arm()
    try {
      return await Promise.race([this.inner.send(payload), stalled])
    } finally {
      clearTimeout(timer)
    }
  }
}

export class WatchedHttpStack {
  constructor({ stallMs = STALL_MS, onStall = null } = {}) {
    this.inner = new DefaultHttpStack()
    this.stallMs = stallMs
    this.onStall = onStall
  }

  createRequest(method, url) {
    return new WatchedRequest(this.inner.createRequest(method, url), this.stallMs, this.onStall)
  }

  getName() {
    return 'WatchedHttpStack'
  }
}
