// Reviewer pages in Debian's Chromium (playwright-core): the gallery shows the uploaded captures,
// a capture uploaded while the gallery is open appears without a reload, and a reviewer approves
// one with a note using the keyboard. Driven by tests/review/test_gallery_browser.py:
//   config JSON on the first line of stdin; "go" on a later line once the Python side uploaded
//   the live capture. Progress and the result are JSON lines on stdout.
import { createInterface } from 'node:readline'
import { chromium } from 'playwright-core'

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const next = async () => (await lines.next()).value
const say = (obj) => console.log(JSON.stringify(obj))

const config = JSON.parse(await next())
const { base, username, password, sessionId, chromiumPath, artifacts } = config
const result = { dialogs: [], console: [], steps: [] }
let browser

try {
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--disable-gpu', '--disable-quic'],
  })
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  // Markup in a filename must never run: any dialog is a failure the test reports.
  page.on('dialog', async (d) => { result.dialogs.push(d.message()); await d.dismiss() })
  page.on('console', (m) => result.console.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => result.console.push(`pageerror: ${e.message}`))

  await page.goto(`${base}/auth/login`)
  await page.fill('#username', username)
  await page.fill('#password', password)
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith('/auth/login')),
    page.click('button[type="submit"]'),
  ])

  const gallery = `${base}/review/sessions/${sessionId}`
  const galleryResponse = await page.goto(gallery)
  // The pages run under their Content-Security-Policy: a violation is a console error.
  result.csp = galleryResponse.headers()['content-security-policy'] ?? null
  await page.waitForSelector('#gallery .capture-card')
  // Thumbnails are lazy: scroll through so every one loads, then wait for them.
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight))
  await page.waitForFunction(() => [...document.querySelectorAll('#gallery img')]
    .every((img) => img.complete && img.naturalWidth > 0), null, { timeout: 15000 })
  await page.evaluate(() => window.scrollTo(0, 0))
  result.initialCards = await page.$$eval('#gallery .capture-card', (cs) => cs.map((c) => Number(c.dataset.captureId)))
  result.filenames = await page.$$eval('#gallery .filename', (as) => as.map((a) => a.textContent))
  result.lazy = await page.$$eval('#gallery img', (imgs) => imgs.map((i) => i.getAttribute('loading')))

  // Live: the Python side uploads one more capture now; it must appear without a reload.
  const navigations = []
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()) })
  say({ step: 'ready', cards: result.initialCards })
  if ((await next()) !== 'go') throw new Error('expected "go" on stdin')
  const t0 = Date.now()
  await page.waitForFunction((n) => document.querySelectorAll('#gallery .capture-card').length > n,
    result.initialCards.length, { timeout: 20000, polling: 200 })
  result.liveSeconds = (Date.now() - t0) / 1000
  result.liveReloads = navigations.length
  result.liveCard = await page.$eval('#gallery .capture-card', (c) => Number(c.dataset.captureId))
  result.liveStatus = await page.textContent('#live-status')
  await page.waitForFunction(() => [...document.querySelectorAll('#gallery img')]
    .every((img) => img.complete && img.naturalWidth > 0), null, { timeout: 15000 })
  await page.waitForTimeout(1600) // let the arrival highlight fade before the screenshot
  await page.screenshot({ path: `${artifacts}/gallery.png`, fullPage: true })

  // Keyboard in the gallery: j focuses the first card, Enter opens it.
  await page.keyboard.press('j')
  await Promise.all([page.waitForURL(/\/review\/captures\/\d+$/), page.keyboard.press('Enter')])
  result.opened = Number(page.url().split('/').pop())

  // A capture page: k goes to the previous capture, j comes back.
  const start = page.url()
  await Promise.all([page.waitForURL((u) => u.href !== start), page.keyboard.press('k')])
  result.afterK = Number(page.url().split('/').pop())
  await Promise.all([page.waitForURL(start), page.keyboard.press('j')])

  await page.waitForSelector('.preview-img')
  await page.waitForFunction(() => document.querySelector('.preview-img').naturalWidth > 0)
  await page.screenshot({ path: `${artifacts}/capture.png`, fullPage: true })

  // n focuses the note, the note is typed, Escape leaves the field, a approves.
  const approved = result.opened
  await page.keyboard.press('n')
  await page.keyboard.type(config.note)
  await page.evaluate(() => document.activeElement.blur())
  await Promise.all([page.waitForURL((u) => u.href !== start), page.keyboard.press('a')])
  await page.waitForSelector('.flash')
  result.approved = approved
  result.flash = await page.textContent('.flash')
  result.afterApprove = page.url()
  await page.screenshot({ path: `${artifacts}/after-approve.png`, fullPage: true })
  await page.goto(`${base}/review/`)
  await page.screenshot({ path: `${artifacts}/assessments.png`, fullPage: true })
  await page.click('table.list a >> nth=0')
  await page.waitForSelector('table.list')
  await page.screenshot({ path: `${artifacts}/assessment.png`, fullPage: true })
  say({ step: 'done', ...result })
} catch (err) {
  result.error = String(err && err.stack ? err.stack : err)
  say({ step: 'done', ...result })
} finally {
  if (browser) await browser.close()
}
process.exit(0)
