// Browser scenarios for tests/e2e/test_camera_browser.py. Usage:
//   node tests/e2e/scenarios.mjs <scenario> < config.json
// The config names the server, the operator, the session, the clip and the artifacts folder.
// The last line of stdout is a JSON result; the Python test checks the server side.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import {
  addFile,
  eventCount,
  launch,
  launchWithProfile,
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

// Tell the Python test something happened, then wait for its go (a file it creates).
async function handshake(cfg, name) {
  process.stdout.write(`${JSON.stringify({ signal: name })}\n`)
  const deadline = Date.now() + 120000
  while (!existsSync(cfg.goFile)) {
    if (Date.now() > deadline) throw new Error(`no go from the test after ${name}`)
    await sleep(100)
  }
}

async function waitForCount(page, type, n, timeout = 60000) {
  await page.waitForFunction(
    ([t, count]) =>
      window.tuscamEvents.filter((e) => e.type === t && (t !== 'upload-success' || e.status))
        .length >= count,
    [type, n],
    { timeout, polling: 100 },
  )
}

async function pageState(page) {
  return page.evaluate(() => ({
    title: document.title,
    waiting: document.getElementById('camera-app')?.dataset.waiting ?? null,
    banner: document.getElementById('net-status')?.hidden
      ? null
      : document.getElementById('net-status')?.textContent,
    rows: [...document.querySelectorAll('#captures-sent li')].map((li) => li.dataset.status),
    toasts: (window.tuscamUppy?.getState().info ?? []).map((i) => i.message),
    xhrBodies: window.tuscamXhrBodies ?? [],
  }))
}

// The photos this browser keeps for a user, read straight from IndexedDB.
async function storedPhotos(page, userId) {
  return page.evaluate(
    (user) =>
      new Promise((resolve, reject) => {
        const req = indexedDB.open('tuscam-photos', 1)
        req.onupgradeneeded = () => {
          const store = req.result.createObjectStore('photos', { keyPath: ['user', 'fileId'] })
          store.createIndex('user', 'user')
        }
        req.onerror = () => reject(req.error)
        req.onsuccess = () => {
          const tx = req.result.transaction('photos', 'readonly')
          const count = tx.objectStore('photos').index('user').count(String(user))
          count.onsuccess = () => {
            resolve(count.result)
            req.result.close()
          }
        }
      }),
    userId,
  )
}

async function logoutClick(page) {
  await Promise.all([
    page.waitForURL((url) => url.pathname.startsWith('/auth/login'), { timeout: 20000 }),
    page.click('form.logout button[type="submit"]'),
  ])
}

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
      return {
        width: s.width,
        height: s.height,
        videoWidth: v.videoWidth,
        videoHeight: v.videoHeight,
      }
    })
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-open.png')))
    result.buttonNames = await page.$$eval('#uppy-dashboard button', (buttons) =>
      buttons.map((b) => b.getAttribute('aria-label') || b.textContent.trim()),
    )
    const fileId = await takePhoto(page)
    result.outcome = await waitForOutcome(page, { fileId })
    await page.waitForSelector(`li.capture[data-status="${result.outcome.status}"]`)
    result.listText = await page.textContent('#captures-sent')
    result.state = await pageState(page)
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
    result.state = await pageState(page)
  },

  // The network goes away during the first PATCH and comes back: the upload resumes.
  async offline_resume({ context, page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    let patches = 0
    await page.route('**/files/**', async (route) => {
      if (route.request().method() === 'PATCH' && ++patches === 1) {
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
    await waitForEvent(page, 'stored', { fileId }) // in IndexedDB before anything is sent
    // The reload needs the network; keep /files/ unreachable so nothing is sent before it.
    await page.route('**/files/**', (route) => route.abort('internetdisconnected'))
    await context.setOffline(false)
    await page.reload()
    await page.waitForSelector('#camera-app[data-ready="true"]')
    const restored = await waitForEvent(page, 'restored', { timeout: 20000 })
    result.restored = restored
    result.sentBeforeReload = await page.evaluate(
      (id) => window.tuscamEvents.some((e) => e.type === 'upload-success' && e.fileId === id),
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

  // First visit online: the page and its files are cached for an offline start.
  async visit({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await page.waitForSelector('#camera-app[data-offline-ready="true"]', { timeout: 30000 })
    result.userId = await page.getAttribute('#camera-app', 'data-user-id')
  },

  // The server is gone: the page still opens (service worker) and takes 3 photos.
  async offline_photos({ page }, cfg, result) {
    const response = await page.goto(`${cfg.base}/sessions/${cfg.sessionId}/camera`)
    result.pageStatus = response?.status() ?? null
    result.fromServiceWorker = response?.fromServiceWorker() ?? null
    await page.waitForSelector('#camera-app[data-ready="true"]', { timeout: 20000 })
    await startCamera(page)
    for (let i = 0; i < 3; i++) await takePhoto(page)
    await waitForCount(page, 'stored', 3)
    await page.waitForFunction(() => document.getElementById('camera-app').dataset.waiting === '3')
    await page.waitForFunction(() => !document.getElementById('net-status').hidden, null, {
      timeout: 30000,
    })
    await page.click('.uppy-Dashboard-close, .uppy-DashboardContent-back').catch(() => {})
    result.state = await pageState(page)
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-offline-3-waiting.png')))
  },

  // A new start of the browser, same profile, no server: 3 waiting; then the server comes back.
  async restart_and_send({ page }, cfg, result) {
    const response = await page.goto(`${cfg.base}/sessions/${cfg.sessionId}/camera`)
    result.fromServiceWorker = response?.fromServiceWorker() ?? null
    await page.waitForSelector('#camera-app[data-ready="true"]', { timeout: 20000 })
    await waitForEvent(page, 'restore-done', { timeout: 20000 })
    result.before = await pageState(page)
    await handshake(cfg, 'waiting')
    await waitForCount(page, 'upload-success', 3, 120000)
    await page.waitForFunction(() => document.getElementById('camera-app').dataset.waiting === '0')
    result.after = await pageState(page)
    result.screenshots.push(await shot(page, join(cfg.artifacts, 'camera-back-online.png')))
  },

  // A's photos stay A's: B on the same browser sends none; logout asks first, then clears.
  async other_user({ context, page }, cfg, result) {
    const dialogs = []
    let answer = false
    page.on('dialog', async (dialog) => {
      dialogs.push(dialog.message())
      if (answer) await dialog.accept()
      else await dialog.dismiss()
    })
    await login(page, cfg.base, cfg.username, cfg.password)
    await page.route('**/files/**', (route) => route.abort('internetdisconnected'))
    await openCameraPage(page, cfg.base, cfg.sessionId)
    const userA = await page.getAttribute('#camera-app', 'data-user-id')
    await startCamera(page)
    for (let i = 0; i < 3; i++) await takePhoto(page)
    await waitForCount(page, 'stored', 3)
    result.storedA = await storedPhotos(page, userA)
    // A's sign-in ends without a logout (an expired session); B signs in on the same browser.
    // The cookies go first: A's page may retry as soon as /files/ answers again, and what it
    // sends then is refused (401) and kept, not uploaded as A.
    await context.clearCookies()
    await page.unroute('**/files/**')
    await login(page, cfg.base, cfg.otherUsername, cfg.otherPassword)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await waitForEvent(page, 'restore-done')
    await sleep(3000) // time for anything that would be sent
    result.asB = await pageState(page)
    result.asB.restored = await eventCount(page, 'restored')
    await logoutClick(page) // B has nothing waiting: no question
    result.dialogsAfterB = dialogs.length
    // A again, on a page without the camera: logout asks; "Cancel" keeps the photos.
    await login(page, cfg.base, cfg.username, cfg.password)
    await page.click('form.logout button[type="submit"]')
    await sleep(1000)
    result.afterCancel = {
      url: new URL(page.url()).pathname,
      stored: await storedPhotos(page, userA),
    }
    answer = true
    await logoutClick(page)
    result.dialogs = dialogs
    result.storedAfterLogout = await storedPhotos(page, userA)
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await waitForEvent(page, 'restore-done')
    await sleep(2000)
    result.asAAgain = await pageState(page)
    result.asAAgain.restored = await eventCount(page, 'restored')
  },

  // A PATCH that stops moving (the proxy forwards nothing more) is dropped after 20 s.
  async stall({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await addFile(page, cfg.file)
    result.outcome = await waitForOutcome(page, { timeout: 180000 })
    result.stalls = await page.evaluate(() =>
      window.tuscamEvents.filter((e) => e.type === 'stalled'),
    )
    result.state = await pageState(page)
  },

  // A phone, portrait or landscape: no sideways scrolling, the shutter on screen once open.
  async phone_layout({ page }, cfg, result) {
    const name = cfg.phone
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    const layout = () =>
      page.evaluate(() => {
        const shutter = document.querySelector('.uppy-Webcam-button--picture')
        const r = shutter?.getBoundingClientRect()
        return {
          innerWidth: window.innerWidth,
          innerHeight: window.innerHeight,
          scrollWidth: document.documentElement.scrollWidth,
          shutter: r ? { top: r.top, bottom: r.bottom, left: r.left, right: r.right } : null,
          scrollY: window.scrollY,
        }
      })
    result.closed = await layout()
    result.screenshots.push(await shot(page, join(cfg.artifacts, `phone-${name}-page.png`)))
    await startCamera(page)
    await sleep(500)
    result.open = await layout()
    await page.screenshot({ path: join(cfg.artifacts, `phone-${name}-camera.png`) })
    result.screenshots.push(join(cfg.artifacts, `phone-${name}-camera.png`))
    result.facingMode = await page.evaluate(
      () =>
        document
          .querySelector('video.uppy-Webcam-video')
          .srcObject.getVideoTracks()[0]
          .getSettings().facingMode ?? null,
    )
    await page.tap('.uppy-Webcam-button--picture')
    await page.tap('.uppy-Webcam-button--submit', { timeout: 10000 })
    result.outcome = await waitForOutcome(page)
    await sleep(500)
    await page.screenshot({ path: join(cfg.artifacts, `phone-${name}-after-photo.png`) })
    result.screenshots.push(join(cfg.artifacts, `phone-${name}-after-photo.png`))
    result.state = await pageState(page)
  },

  // An iPhone photo picked from the device: the page takes .heic files (the server decides).
  async heic_pick({ page }, cfg, result) {
    await login(page, cfg.base, cfg.username, cfg.password)
    await openCameraPage(page, cfg.base, cfg.sessionId)
    await addFile(page, {
      name: 'IMG_0001.HEIC',
      mimeType: 'image/heic',
      buffer: Buffer.from('not really a HEIC file, only its name and type\n'.repeat(20)),
    })
    result.added = await waitForEvent(page, 'file-added', { timeout: 10000 })
    result.outcome = await waitForOutcome(page)
    result.state = await pageState(page)
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
  const browser = cfg.profile ? null : await launch(cfg)
  const result = { scenario: name, screenshots: [] }
  let pageRef = null
  let persistent = null
  try {
    const { context, page } = cfg.profile
      ? await launchWithProfile(cfg)
      : await newPage(browser, { phone: cfg.phone ?? false })
    persistent = cfg.profile ? context : null
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
    await (persistent ?? browser)?.close()
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exitCode = result.error ? 1 : 0
}

await main()
