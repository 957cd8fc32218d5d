// Browser scenarios for tests/e2e/test_camera_browser.py. Usage:
//   node tests/e2e/scenarios.mjs <scenario> < config.json
// The config names the server, the operator, the session, the clip and the artifacts folder.
// The last line of stdout is a JSON result; the Python test checks the server side.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import {
  addFile,
  launch,
  login,
  newPage,
  openCameraPage,
  shot,
  startCamera,
  takePhoto,
  waitForEvent,
  waitForOutcome,
} from './browser.mjs'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const scenarios = {
  // Log in, open the camera, take a photo; it is sent on confirm.
  async photo({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-page.png')))
    await startCamera(page)
    result.track = await page.evaluate(() => {
      const v = document.querySelector('video.uppy-Webcam-video')
      const s = v.srcObject.getVideoTracks()[0].getSettings()
      return { width: s.width, height: s.height, videoWidth: v.videoWidth, videoHeight: v.videoHeight }
    })
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-open.png')))
    result.buttonNames = await page.$$eval('#uppy-dashboard button', (buttons) =>
      buttons.map((b) => b.getAttribute('aria-label') || b.textContent.trim()),
    )
    const fileId = await takePhoto(page)
    result.outcome = await waitForOutcome(page, { fileId })
    await page.waitForSelector(`li.capture[data-status="${result.outcome.status}"]`)
    result.listText = await page.textContent('#captures-sent')
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-sent.png')))
  },

  // A file picked through the Dashboard, through a proxy that cuts PATCHes mid-body.
  async proxy_upload({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await addFile(page, cfg.file)
    result.outcome = await waitForOutcome(page, { timeout: 180000 })
    result.errors = await page.evaluate(() =>
      window.tuscamEvents.filter((e) => e.type === 'upload-error'),
    )
  },

  // The network goes away after the first PATCH and comes back: the upload resumes.
  async offline_resume({ context, page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    let patches = 0
    await page.route('**/files/**', async (route) => {
      if (route.request().method() === 'PATCH' && ++patches === 2) {
        await context.setOffline(true)
        await route.abort('internetdisconnected')
        return
      }
      await route.continue()
    })
    await addFile(page, cfg.file)
    await waitForEvent(page, 'offline', { timeout: 30000 })
    await sleep(2500) // offline for a while: nothing may complete
    result.completedWhileOffline = await page.evaluate(() =>
      window.tuscamEvents.some((e) => e.type === 'upload-success'),
    )
    result.banner = await page.evaluate(() => {
      const b = document.getElementById('net-status')
      return { hidden: b.hidden, text: b.textContent, role: b.getAttribute('role') }
    })
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-offline.png')))
    await context.setOffline(false)
    result.outcome = await waitForOutcome(page, { timeout: 120000 })
    result.patches = patches
  },

  // A photo taken offline survives a reload, then uploads once.
  async reload_restore({ context, page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await startCamera(page)
    await context.setOffline(true)
    await waitForEvent(page, 'offline')
    const fileId = await takePhoto(page)
    result.fileId = fileId
    await sleep(2000) // GoldenRetriever stores state throttled (500 ms) and the blob in IndexedDB
    // The reload needs the network; keep /files/ unreachable so nothing is sent before it.
    await page.route('**/files/**', (route) => route.abort('internetdisconnected'))
    await context.setOffline(false)
    await page.reload()
    await page.waitForSelector('#camera-app[data-ready="true"]')
    const restored = await waitForEvent(page, 'restored', { timeout: 20000 })
    result.restored = restored
    result.sentBeforeReload = await page.evaluate(
      (id) =>
        window.tuscamEvents.some((e) => e.type === 'upload-success' && e.fileId === id),
      fileId,
    )
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-restored.png')))
    await page.unroute('**/files/**')
    result.outcome = await waitForOutcome(page, { fileId, timeout: 90000 })
  },

  // A text file named .jpg: the upload completes, the server rejects the capture and says why.
  async rejected({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await addFile(page, {
      name: 'not-a-photo.jpg',
      mimeType: 'image/jpeg',
      buffer: Buffer.from('This is a text file, not a JPEG.\n'.repeat(40)),
    })
    result.outcome = await waitForOutcome(page)
    const row = await page.waitForSelector('li.capture[data-status="rejected"]')
    result.rowState = await row.$eval('.capture-state', (el) => el.textContent)
    result.rowReason = await row.$eval('.capture-reason', (el) => el.textContent)
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-rejected-phone.png')))
    await startCamera(page)
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-open-phone.png')))
  },

  // Timer mode: with the camera open, photos are taken without touching the shutter.
  async timer({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await startCamera(page)
    await page.selectOption('#timer', '5')
    result.outcome = await waitForOutcome(page, { timeout: 30000 })
    await page.selectOption('#timer', '0')
  },

  // The session was closed after the page loaded: the server refuses before any byte is stored.
  async refused({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await page.evaluate(
      async ([token, id]) => {
        await fetch(`/api/sessions/${id}`, {
          method: 'PATCH',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ ended: true }),
        })
      },
      [cfg.token, cfg.sessionId],
    )
    await startCamera(page)
    await takePhoto(page)
    result.outcome = await waitForOutcome(page)
    const row = await page.waitForSelector('li.capture[data-status="refused"]')
    result.rowReason = await row.$eval('.capture-reason', (el) => el.textContent)
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-refused.png')))
  },
}

async function main() {
  const name = process.argv[2]
  const cfg = JSON.parse(readFileSync(0, 'utf8'))
  const scenario = scenarios[name]
  if (!scenario) throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios)}`)
  const started = Date.now()
  const browser = await launch(cfg)
  const result = { scenario: name, screenshots: [] }
  let pageRef = null
  try {
    const { context, page } = await newPage(browser, { phone: Boolean(cfg.phone) })
    pageRef = page
    await scenario({ context, page }, cfg, result)
    result.events = await page.evaluate(() => window.tuscamEvents)
  } catch (err) {
    result.error = String(err?.stack ?? err)
    if (pageRef) {
      result.events = await pageRef.evaluate(() => window.tuscamEvents).catch(() => null)
      await shot(pageRef, join(cfg.artifacts, `${name}-failure.png`)).catch(() => {})
    }
  } finally {
    result.console = pageRef?.consoleLines.slice(-40) ?? []
    result.seconds = (Date.now() - started) / 1000
    await browser.close()
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exitCode = result.error ? 1 : 0
}

await main()
