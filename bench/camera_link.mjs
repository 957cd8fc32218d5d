// The camera page over an emulated phone link (Chromium network emulation through CDP): the time
// from a photo added on the page to the server's "accepted", one line of JSON per run on stdout.
// Usage: node bench/camera_link.mjs < config.json   (written by bench/camera_link.py)
import { readFileSync } from 'node:fs'

import { launch, login, newPage } from '../tests/e2e/browser.mjs'

const cfg = JSON.parse(readFileSync(0, 'utf8'))
const browser = await launch({ chromiumPath: cfg.chromiumPath })
try {
  const { context, page } = await newPage(browser)
  await login(page, cfg.base, cfg.username, cfg.password)
  for (const run of cfg.runs) {
    const url = `${cfg.base}/sessions/${run.sessionId}/camera`
    await page.goto(url)
    await page.waitForSelector('#camera-app[data-ready="true"]', { timeout: 30000 })
    const cdp = await context.newCDPSession(page)
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: run.rttMs,
      uploadThroughput: run.bitsPerSecond / 8,
      downloadThroughput: run.bitsPerSecond / 8,
    })
    await page.setInputFiles(
      '#uppy-dashboard input.uppy-Dashboard-input[type="file"] >> nth=0',
      run.file,
    )
    const handle = await page.waitForFunction(
      () => {
        const events = window.tuscamEvents
        const added = events.find((e) => e.type === 'file-added')
        const done = events.find((e) => e.type === 'upload-success' || e.type === 'upload-error')
        return added && done ? { added: added.at, done: done.at, status: done.status } : null
      },
      null,
      { timeout: 300000, polling: 20 },
    )
    const { added, done, status } = await handle.jsonValue()
    // Where the time went: the photo in IndexedDB (new code only), the last progress event.
    const stages = await page.evaluate((t0) => {
      const at = (type) => window.tuscamEvents.find((e) => e.type === type)?.at ?? null
      const stored = at('stored')
      return { storedMs: stored && stored - t0 }
    }, added)
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      uploadThroughput: -1,
      downloadThroughput: -1,
    })
    await cdp.detach()
    process.stdout.write(
      `${JSON.stringify({ ...run, seconds: (done - added) / 1000, status, ...stages })}\n`,
    )
  }
} finally {
  await browser.close()
}
