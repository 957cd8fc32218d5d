// The camera page: Uppy Dashboard (inline) + Webcam (photos) + tus uploads to /files/. Every photo
// is written to this user's IndexedDB store (store.js) before its upload starts and removed when
// the server has given its final word, so it survives a reload, a closed tab, a browser restart
// and an offline start (the service worker, offline.js + sw.js, serves the page without a server).
// The server's verdict comes back in the Tuscam-Capture-* headers of the completing response.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import Tus from '@uppy/tus'
import Webcam from '@uppy/webcam'

import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import '@uppy/webcam/css/style.min.css'
import './camera.css'

import { watchNetwork } from './network.js'
import { prepareOffline } from './offline.js'
import { SentList } from './sent.js'
import { cameraSettingsSnapshot, liveVideoTrack, videoInputCount } from './settings.js'
import { STALL_MS, WatchedHttpStack } from './stack.js'
import { PhotoStore } from './store.js'

const META_FIELDS = [
  'filename',
  'filetype',
  'session_id',
  'assessment_id',
  'capture_trigger',
  'capture_type',
  'camera_settings',
]
// tus-js-client's own retries for a short outage; after them the page retries every
// RETRY_EVERY_MS for as long as it is open (and at once when the browser comes back online).
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000]
const RETRY_EVERY_MS = 10000
// 8 MiB: a phone photo (JPEG or HEIC, 1-6 MB) goes in one request, the POST that creates the
// upload (creation-with-upload): every extra request costs a round trip, 300 ms on a 4G link, and
// 1 MiB chunks made a 3 MB photo take 1.3x the link's limit. Small chunks are not needed to resume:
// the server keeps the bytes of a cut request and the client asks for the offset with HEAD.
// The bound stays because each chunk is read into memory (an ArrayBuffer, see stack.js).
const CHUNK_SIZE = 8 * 1024 * 1024

const root = document.getElementById('camera-app')
const page = {
  userId: root.dataset.userId,
  sessionId: root.dataset.sessionId,
  assessmentId: root.dataset.assessmentId,
  csrfToken: root.dataset.csrfToken,
  trigger: root.dataset.trigger || 'manual',
  endpoint: root.dataset.endpoint || '/files/',
}

// Test and debugging hook: what happened to each file, in order.
window.tuscamEvents = []
function record(event) {
  window.tuscamEvents.push({ at: Date.now(), ...event })
}

const choices = { facingMode: 'environment', timerSeconds: 0, keepCameraOpen: true }
let pendingSnapshot = null // {trigger, settings} of the photo being taken, read by file-added

const uppy = new Uppy({
  id: `tuscam-u${page.userId}-s${page.sessionId}`,
  autoProceed: true,
  restrictions: {
    allowedFileTypes: ['image/*', '.jpg', '.jpeg', '.png', '.webp', '.heic', '.heif'],
  },
})

uppy.use(Dashboard, {
  inline: true,
  target: '#uppy-dashboard',
  width: '100%',
  height: 460,
  proudlyDisplayPoweredByUppy: false,
  hideUploadButton: true, // autoProceed: a photo is sent as soon as it is confirmed
  showProgressDetails: true,
  singleFileFullScreen: false, // a phone screen is better spent on the list of photos
  doneButtonHandler: null,
  note: 'Photos are sent as soon as you confirm them.',
})
uppy.use(Webcam, {
  target: Dashboard,
  modes: ['picture'],
  mirror: false,
  showVideoSourceDropdown: true, // choice of camera device
  mobileNativeCamera: false, // keep the live track: its settings go with every photo
  preferredImageMimeType: 'image/jpeg',
  videoConstraints: videoConstraints(),
  onBeforeSnapshot: async () => {
    const track = liveVideoTrack(root, webcam)
    pendingSnapshot = {
      trigger: pendingSnapshot?.trigger ?? 'manual',
      settings: cameraSettingsSnapshot(track, choices),
    }
  },
})
uppy.use(Tus, {
  endpoint: page.endpoint,
  chunkSize: CHUNK_SIZE,
  uploadDataDuringCreation: true,
  httpStack: new WatchedHttpStack({
    stallMs: STALL_MS,
    onStall: (req) => record({ type: 'stalled', method: req.getMethod(), url: req.getURL() }),
  }),
  retryDelays: RETRY_DELAYS,
  limit: 2,
  removeFingerprintOnSuccess: true,
  allowedMetaFields: META_FIELDS,
  headers: { 'X-Requested-With': 'tuscam', 'X-CSRFToken': page.csrfToken },
  onShouldRetry(error, _attempt, _options, next) {
    // A refused creation (4xx, e.g. 409 "session closed") gets the same answer next time; tus
    // retries 409 by default because on PATCH it means "offset mismatch: ask HEAD and resume".
    const status = error?.originalResponse?.getStatus?.()
    const method = error?.originalRequest?.getMethod?.()
    if (method === 'POST' && status >= 400 && status < 500 && status !== 429) return false
    return next(error)
  },
})
const webcam = uppy.getPlugin('Webcam')
const dashboard = uppy.getPlugin('Dashboard')
window.tuscamUppy = uppy

const sent = new SentList(
  document.getElementById('captures-sent'),
  document.getElementById('captures-empty'),
  `tuscam:sent:u${page.userId}:s${page.sessionId}`,
)

// ---- the photos kept on this device ---------------------------------------------------------
const storeReady = PhotoStore.open(page.userId).catch((error) => {
  uppy.info(
    'This browser cannot keep photos (no IndexedDB): keep the page open until they are sent.',
    'error',
    10000,
  )
  record({ type: 'store-error', message: String(error) })
  return null
})
const writes = new Map() // fileId -> promise of its record being written
const storedUrls = new Map() // fileId -> upload URL saved with its record
let restoring = null // the record being re-added: its meta is already set

// A photo is in IndexedDB before its first byte goes out.
uppy.addPreProcessor(async (fileIDs) => {
  await Promise.all(fileIDs.map((id) => writes.get(id)))
})

async function keep(file) {
  const store = await storeReady
  if (!store) return
  const current = uppy.getFile(file.id) ?? file
  const meta = Object.fromEntries(META_FIELDS.map((k) => [k, current.meta[k]]))
  try {
    await store.put({
      fileId: file.id,
      sessionId: String(page.sessionId),
      name: file.name,
      type: file.type,
      blob: file.data,
      meta,
      uploadUrl: null,
      addedAt: Date.now(),
    })
    record({ type: 'stored', fileId: file.id })
  } catch (error) {
    uppy.info(`${file.name} could not be kept on this device: ${error}`, 'error', 10000)
  }
}

async function forget(fileId) {
  writes.delete(fileId)
  storedUrls.delete(fileId)
  const store = await storeReady
  await store?.remove(fileId)
  record({ type: 'forgotten', fileId })
}

// Photos of this user and session still on the device: back into Uppy, sent without asking.
async function restore() {
  const store = await storeReady
  if (!store) return
  for (const saved of await store.list(page.sessionId)) {
    restoring = saved
    let id
    try {
      id = uppy.addFile({
        name: saved.name,
        type: saved.type,
        data: saved.blob,
        meta: saved.meta,
        source: 'Restored',
      })
    } catch (error) {
      record({ type: 'restore-error', fileId: saved.fileId, message: String(error) })
      continue
    } finally {
      restoring = null
    }
    if (id !== saved.fileId) {
      await store.remove(saved.fileId)
      await store.put({ ...saved, fileId: id })
    }
    if (saved.uploadUrl) {
      // An upload begun earlier resumes from the server's offset (HEAD), never starts over.
      uppy.setFileState(id, { tus: { uploadUrl: saved.uploadUrl } })
      storedUrls.set(id, saved.uploadUrl)
    }
    sent.update(id, { name: saved.name, status: navigator.onLine ? 'queued' : 'waiting' })
    record({ type: 'restored', fileId: id, ghost: false, uploadUrl: saved.uploadUrl ?? null })
  }
  record({ type: 'restore-done' })
}

function videoConstraints() {
  return {
    facingMode: { ideal: choices.facingMode },
    // Without these a phone hands out 640x480; the camera gives its best up to 1080p.
    width: { ideal: 1920 },
    height: { ideal: 1080 },
  }
}

// ---- metadata of each capture -------------------------------------------------------------
uppy.on('file-added', (file) => {
  if (restoring) return // meta and queue row come from the saved record
  const fromCamera = file.source === 'Webcam'
  const snapshot = fromCamera ? pendingSnapshot : null
  pendingSnapshot = null
  uppy.setFileMeta(file.id, {
    filename: file.name,
    filetype: file.type || 'application/octet-stream',
    session_id: String(page.sessionId),
    assessment_id: page.assessmentId ? String(page.assessmentId) : '',
    capture_trigger: snapshot?.trigger ?? page.trigger,
    capture_type: 'photo',
    camera_settings: JSON.stringify(
      snapshot?.settings ?? { source: fromCamera ? 'webcam' : 'file', operator: { ...choices } },
    ),
  })
  writes.set(file.id, keep(file))
  sent.update(file.id, { name: file.name, status: navigator.onLine ? 'queued' : 'waiting' })
  record({ type: 'file-added', fileId: file.id, source: file.source ?? null })
  if (fromCamera && choices.keepCameraOpen) reopenCamera()
})

// The Dashboard closes the camera after each photo; an operator taking a series wants it back.
function reopenCamera() {
  setTimeout(() => dashboard.showPanel('Webcam'), 50)
}

uppy.on('thumbnail:generated', (file, preview) => {
  if (sent.get(file.id)) sent.update(file.id, { preview })
})

// ---- progress and outcome -----------------------------------------------------------------
uppy.on('upload-progress', (file, progress) => {
  if (!file || !progress.bytesTotal) return
  const percent = Math.floor((100 * progress.bytesUploaded) / progress.bytesTotal)
  // Progress may go backwards after a resume; show what the client knows now. A request that
  // has not sent a byte (the server is unreachable) leaves the row "waiting".
  if (progress.bytesUploaded > 0) sent.update(file.id, { status: 'sending', progress: percent })
  const uploadUrl = uppy.getFile(file.id)?.tus?.uploadUrl
  if (uploadUrl && storedUrls.get(file.id) !== uploadUrl) {
    storedUrls.set(file.id, uploadUrl)
    storeReady.then((store) => store?.update(file.id, { uploadUrl }))
  }
})

uppy.on('upload-success', async (file, response) => {
  const uploadURL = response?.uploadURL ?? null
  const xhr = response?.body?.xhr
  let verdict = {
    status: xhr?.getResponseHeader?.('Tuscam-Capture-Status') ?? null,
    reason: xhr?.getResponseHeader?.('Tuscam-Capture-Reason') ?? null,
    captureId: xhr?.getResponseHeader?.('Tuscam-Capture-Id') ?? null,
  }
  if (!verdict.status && uploadURL) verdict = await askServer(uploadURL)
  network.reachable()
  showVerdict(file, verdict, uploadURL)
  // The server has every byte: whatever its verdict, the copy on this device is done with.
  await forget(file.id)
})

// The completing response was lost (or came from a HEAD without the headers): ask the API.
async function askServer(uploadURL) {
  const uploadId = new URL(uploadURL, location.href).pathname.split('/').filter(Boolean).pop()
  for (const delay of [0, 500, 1500, 3000]) {
    await new Promise((resolve) => setTimeout(resolve, delay))
    try {
      const r = await fetch(`/api/uploads/${encodeURIComponent(uploadId)}`, {
        headers: { Accept: 'application/json' },
      })
      if (r.ok) {
        const body = await r.json()
        return { status: body.status, reason: body.reason, captureId: String(body.capture_id) }
      }
    } catch {
      // network again; try the next delay
    }
  }
  return { status: null, reason: null, captureId: null }
}

function showVerdict(file, { status, reason, captureId }, uploadURL) {
  const shown = status ?? 'unknown'
  sent.update(file.id, { status: shown, reason: reason || null, captureId, progress: 100 })
  record({ type: 'upload-success', fileId: file.id, status: shown, reason, captureId, uploadURL })
  if (status === 'rejected') {
    uppy.info(`${file.name} was rejected: ${reason || 'no reason given'}`, 'error', 8000)
  }
}

// A refusal before any byte is stored comes as JSON {"error", "message"}; show its message
// instead of tus-js-client's long technical text.
function serverMessage(error, response) {
  const res = error?.originalResponse
  const status = res?.getStatus?.() ?? response?.status ?? null
  const body = res?.getBody?.() ?? response?.body?.xhr?.responseText ?? ''
  let message = null
  try {
    message = JSON.parse(body)?.message ?? null
  } catch {
    message = null
  }
  return { status, message }
}

const refused = new Set() // 4xx: retrying would get the same answer
uppy.on('upload-error', (file, error, response) => {
  if (!file) return
  const { status, message } = serverMessage(error, response)
  // 401: signed out (session expired): the photo waits on the device for the next sign-in.
  const signedOut = status === 401
  const isRefusal = status != null && status >= 400 && status < 500 && !signedOut && status !== 429
  const reason =
    message ??
    (status
      ? `The server answered ${status}.`
      : 'The server cannot be reached; the photo is saved on this device and will be sent.')
  if (isRefusal) {
    refused.add(file.id)
    forget(file.id)
  } else {
    if (status == null && navigator.onLine) network.unreachable()
    // Not a failure the operator must act on: the photo is safe and will be sent; the banner
    // and its row say so. Drop Uppy's "Failed to upload" toast for it.
    const toast = uppy.i18n('failedToUpload', { file: file.name })
    uppy.setState({ info: uppy.getState().info.filter((i) => i.message !== toast) })
  }
  sent.update(file.id, { status: isRefusal ? 'refused' : 'waiting', reason })
  uppy.setFileState(file.id, { error: reason })
  record({
    type: 'upload-error',
    fileId: file.id,
    status: isRefusal ? 'refused' : 'failed',
    httpStatus: status,
    reason,
    uploadURL: uppy.getFile(file.id)?.tus?.uploadUrl ?? null,
  })
})

uppy.on('upload-retry', (file) => {
  if (file) sent.update(file.id, { status: 'queued', reason: null })
})

// ---- network ------------------------------------------------------------------------------
function retryNetworkFailures() {
  for (const file of uppy.getFiles()) {
    if (file.error && !refused.has(file.id) && !file.progress.uploadComplete) {
      uppy.retryUpload(file.id).catch(() => {})
    }
  }
}

setInterval(retryNetworkFailures, RETRY_EVERY_MS)

const network = watchNetwork(document.getElementById('net-status'), {
  onOnline() {
    record({ type: 'online' })
    retryNetworkFailures()
  },
  onOffline() {
    record({ type: 'offline' })
    for (const file of uppy.getFiles()) {
      if (!file.progress.uploadComplete) sent.update(file.id, { status: 'waiting' })
    }
  },
})

// ---- the title: "(3) Camera · …" while 3 photos wait, no count when none do ----------------
const baseTitle = document.title
let shownWaiting = -1
function updateTitle() {
  const waiting = uppy
    .getFiles()
    .filter((f) => !f.progress.uploadComplete && !refused.has(f.id)).length
  if (waiting === shownWaiting) return
  shownWaiting = waiting
  document.title = waiting ? `(${waiting}) ${baseTitle}` : baseTitle
  root.dataset.waiting = String(waiting)
}
uppy.on('state-update', updateTitle)
updateTitle()

// ---- operator controls --------------------------------------------------------------------
const openButton = document.getElementById('open-camera')
openButton.addEventListener('click', () => dashboard.showPanel('Webcam'))

const facingField = document.getElementById('facing-field')
for (const input of facingField.querySelectorAll('input[name="facing"]')) {
  input.addEventListener('change', () => {
    if (!input.checked) return
    choices.facingMode = input.value
    webcam.setOptions({ videoConstraints: videoConstraints() })
    if (webcam.webcamActive) {
      // A new stream with the other camera; a chosen deviceId would override facingMode.
      webcam.stop().then(() => webcam.start())
    }
  })
}

// Offer front/back only when the device has more than one camera (phones, tablets).
let cameraWasReady = false
uppy.on('state-update', () => {
  const ready = Boolean(webcam.getPluginState().cameraReady)
  if (ready === cameraWasReady) return
  cameraWasReady = ready
  if (ready) {
    videoInputCount().then((count) => {
      facingField.hidden = count < 2
    })
  }
})

// On a phone the open camera takes the whole screen, so the shutter is always in reach.
let cameraShown = false
uppy.on('state-update', () => {
  const shown = dashboard.getPluginState().activePickerPanel?.id === 'Webcam'
  if (shown === cameraShown) return
  cameraShown = shown
  root.classList.toggle('camera-open', shown)
  document.documentElement.classList.toggle('camera-open', shown)
})

const keepOpen = document.getElementById('keep-open')
keepOpen.addEventListener('change', () => {
  choices.keepCameraOpen = keepOpen.checked
})

// Timer mode: one photo every N seconds while the camera is open and idle.
const timerSelect = document.getElementById('timer')
const timerNote = document.getElementById('timer-note')
let timer = null
timerSelect.addEventListener('change', () => {
  clearInterval(timer)
  timer = null
  choices.timerSeconds = Number(timerSelect.value)
  timerNote.textContent = choices.timerSeconds
    ? `A photo is taken every ${choices.timerSeconds} seconds while the camera is open.`
    : ''
  if (choices.timerSeconds) timer = setInterval(timedPhoto, choices.timerSeconds * 1000)
})

async function timedPhoto() {
  const state = webcam.getPluginState()
  if (!webcam.webcamActive || !state.cameraReady || state.capturedSnapshot) return
  pendingSnapshot = { trigger: 'timer' }
  try {
    await webcam.takeSnapshot()
    webcam.submit()
  } finally {
    webcam.discardRecordedMedia()
    pendingSnapshot = null
  }
}

// Uppy labels its Webcam buttons but not the camera-device <select>; name it for screen readers.
const observer = new MutationObserver(() => {
  for (const select of root.querySelectorAll('.uppy-Webcam-videoSource-select')) {
    if (!select.hasAttribute('aria-label')) select.setAttribute('aria-label', 'Camera device')
  }
})
observer.observe(root, { childList: true, subtree: true })

// One tab per user and session restores the saved photos (a Web Lock held while the page
// lives): two tabs restoring the same photos would send each twice.
function restoreInOneTab() {
  if (!navigator.locks) return restore()
  return new Promise((resolve, reject) => {
    navigator.locks
      .request(
        `tuscam-camera-u${page.userId}-s${page.sessionId}`,
        { ifAvailable: true },
        (lock) => {
          if (!lock) {
            record({ type: 'restore-skipped' })
            uppy.info(
              'This session is open in another tab: photos saved earlier are sent there.',
              'info',
              8000,
            )
            record({ type: 'restore-done' })
            resolve()
            return null
          }
          restore().then(resolve, reject)
          return new Promise(() => {}) // held until the page goes away
        },
      )
      .catch(reject)
  })
}

restoreInOneTab()
  .catch((error) => record({ type: 'restore-error', message: String(error) }))
  .finally(() => {
    record({ type: 'ready' })
    root.dataset.ready = 'true'
  })

prepareOffline()
  .then((ok) => {
    root.dataset.offlineReady = String(ok)
    record({ type: 'offline-ready', ok })
  })
  .catch((error) => {
    // Offline start is a convenience on top of the store; the page works without it.
    root.dataset.offlineReady = 'false'
    record({ type: 'offline-ready', ok: false, message: String(error) })
  })
