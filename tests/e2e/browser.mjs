// Shared steps for the camera-page browser scenarios: launch Debian's Chromium with a fake camera
// that plays a known clip, log in through the real form, open the camera page, take a photo.
import { chromium } from 'playwright-core'

export const FLAGS = [
  '--disable-gpu',
  '--disable-quic',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
]

export async function launch({ chromiumPath, clip }) {
  const args = [...FLAGS]
  if (clip) args.push(`--use-file-for-fake-video-capture=${clip}`)
  return chromium.launch({ executablePath: chromiumPath, headless: true, args })
}

export function contextOptions(phone) {
  if (phone === 'landscape') {
    return {
      viewport: { width: 844, height: 390 },
      deviceScaleFactor: 3,
      isMobile: true,
      hasTouch: true,
    }
  }
  return phone
    ? {
        viewport: { width: 390, height: 844 },
        deviceScaleFactor: 3,
        isMobile: true,
        hasTouch: true,
      }
    : { viewport: { width: 1280, height: 900 } }
}

// Every body the page hands to XMLHttpRequest.send for /files/ (Safari 26 freezes Blob bodies).
const RECORD_XHR_BODIES = () => {
  window.tuscamXhrBodies = []
  const open = XMLHttpRequest.prototype.open
  const send = XMLHttpRequest.prototype.send
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.tuscamRequest = { method, url: String(url) }
    return open.call(this, method, url, ...rest)
  }
  XMLHttpRequest.prototype.send = function (body) {
    if (this.tuscamRequest?.url.includes('/files/')) {
      const kind = body == null ? 'none' : Object.prototype.toString.call(body).slice(8, -1)
      window.tuscamXhrBodies.push({ ...this.tuscamRequest, kind })
    }
    return send.call(this, body)
  }
}

export async function preparePage(context, page) {
  await context.grantPermissions(['camera'])
  await page.addInitScript(RECORD_XHR_BODIES)
  page.consoleLines = []
  page.on('console', (msg) => page.consoleLines.push(`${msg.type()}: ${msg.text()}`))
  page.on('pageerror', (err) => page.consoleLines.push(`pageerror: ${err.message}`))
  return page
}

// A browser profile kept on disk: IndexedDB, the service worker and its caches survive a restart.
export async function launchWithProfile({ chromiumPath, clip, profile, phone = false }) {
  const args = [...FLAGS]
  if (clip) args.push(`--use-file-for-fake-video-capture=${clip}`)
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args,
    ...contextOptions(phone),
  })
  const page = await preparePage(context, context.pages()[0] ?? (await context.newPage()))
  return { context, page }
}

export async function newPage(browser, { phone = false } = {}) {
  const context = await browser.newContext(contextOptions(phone))
  const page = await preparePage(context, await context.newPage())
  return { context, page }
}

export async function login(page, base, username, password) {
  await page.goto(`${base}/auth/login`)
  await page.fill('#username', username)
  await page.fill('#password', password)
  await Promise.all([
    page.waitForURL((url) => !url.pathname.startsWith('/auth/login')),
    page.click('button[type="submit"]'),
  ])
}

export async function openCameraPage(page, base, sessionId) {
  const response = await page.goto(`${base}/sessions/${sessionId}/camera`)
  if (!response.ok()) throw new Error(`camera page answered ${response.status()}`)
  await page.waitForSelector('#camera-app[data-ready="true"]', { timeout: 20000 })
}

export async function startCamera(page) {
  await page.click('#open-camera')
  await page.waitForFunction(
    () => {
      const v = document.querySelector('video.uppy-Webcam-video')
      return v && v.videoWidth > 0 && v.readyState >= 2
    },
    null,
    { timeout: 20000 },
  )
}

// Shutter, then confirm: Uppy 6 adds the photo only after the confirm.
export async function takePhoto(page) {
  const before = await eventCount(page, 'file-added')
  await page.click('.uppy-Webcam-button--picture')
  await page.click('.uppy-Webcam-button--submit', { timeout: 10000 })
  await page.waitForFunction(
    (n) => window.tuscamEvents.filter((e) => e.type === 'file-added').length > n,
    before,
  )
  const events = await page.evaluate(() => window.tuscamEvents)
  return events.filter((e) => e.type === 'file-added').at(-1).fileId
}

export async function addFile(page, file) {
  // Dashboard's own file input ("browse files"): what a user picking a file does.
  await page.setInputFiles('#uppy-dashboard input.uppy-Dashboard-input[type="file"] >> nth=0', file)
}

export async function eventCount(page, type) {
  return page.evaluate((t) => window.tuscamEvents.filter((e) => e.type === t).length, type)
}

export async function waitForEvent(page, type, { fileId = null, timeout = 60000 } = {}) {
  const handle = await page.waitForFunction(
    ([t, id]) => window.tuscamEvents.find((e) => e.type === t && (id === null || e.fileId === id)),
    [type, fileId],
    { timeout, polling: 100 },
  )
  return handle.jsonValue()
}

export async function shot(page, path) {
  await page.screenshot({ path, fullPage: true })
  return path
}

// The server's final word on a file: an upload-success, or a refusal before upload.
export async function waitForOutcome(page, { fileId = null, timeout = 60000 } = {}) {
  const handle = await page.waitForFunction(
    (id) =>
      window.tuscamEvents.find(
        (e) =>
          (id === null || e.fileId === id) &&
          (e.type === 'upload-success' || (e.type === 'upload-error' && e.status === 'refused')),
      ),
    fileId,
    { timeout, polling: 100 },
  )
  return handle.jsonValue()
}
