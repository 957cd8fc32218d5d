// The camera page: Uppy Dashboard (inline) + Webcam (photos) + tus uploads to /files/, with
// GoldenRetriever so photos not yet sent survive a reload. Each photo uploads as soon as it is
// confirmed (autoProceed). The server's verdict on a finished upload comes back in the
// Tuscam-Capture-* headers of the response that completed it.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import GoldenRetriever from '@uppy/golden-retriever'
import Tus from '@uppy/tus'
import Webcam from '@uppy/webcam'

import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import '@uppy/webcam/css/style.min.css'
import './camera.css'

import { watchNetwork } from './network.js'
import { SentList } from './sent.js'
import { cameraSettingsSnapshot, facingModesOf, liveVideoTrack } from './settings.js'

const META_FIELDS = [
  'filename',
  'filetype',
  'session_id',
  'assessment_id',
  'capture_trigger',
  'capture_type',
  'camera_settings',
]
// Long enough to ride out a phone switching networks or a tunnel; attempts that made progress
// do not use these up (tus-js-client resets its counter), so they bound only dead time.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000]
const CHUNK_SIZE = 1024 * 1024 // small PATCHes: a cut costs at most 1 MiB on a phone link

const root = document.getElementById('camera-app')
const page = {
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
  id: `tuscam-session-${page.sessionId}`, // also GoldenRetriever's store: one per session
  autoProceed: true,
  restrictions: { allowedFileTypes: ['image/*', '.jpg', '.jpeg', '.png', '.webp', '.heic'] },
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
  retryDelays: RETRY_DELAYS,
  limit: 2,
  removeFingerprintOnSuccess: true,
  allowedMetaFields: META_FIELDS,
  headers: { 'X-Requested-With': 'tuscam', 'X-CSRFToken': page.csrfToken },
  onShouldRetry(error, attempt, options, next) {
    // A refused creation (4xx, e.g. 409 "session closed") gets the same answer next time; tus
    // retries 409 by default because on PATCH it means "offset mismatch: ask HEAD and resume".
    const status = error?.originalResponse?.getStatus?.()
    const method = error?.originalRequest?.getMethod?.()
    if (method === 'POST' && status >= 400 && status < 500 && status !== 429) return false
    return next(error)
  },
})
uppy.use(GoldenRetriever)
const webcam = uppy.getPlugin('Webcam')
const dashboard = uppy.getPlugin('Dashboard')
window.tuscamUppy = uppy

const sent = new SentList(
  document.getElementById('captures-sent'),
  document.getElementById('captures-empty'),
  `tuscam:sent:${page.sessionId}`,
)

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
  // Progress may go backwards after a resume; show what the client knows now.
  sent.update(file.id, { status: 'sending', progress: percent })
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
  showVerdict(file, verdict, uploadURL)
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
  const isRefusal = status != null && status >= 400 && status < 500
  const reason =
    message ??
    (status ? `The server answered ${status}.` : 'The connection was lost; it will be retried.')
  if (isRefusal) refused.add(file.id)
  sent.update(file.id, { status: isRefusal ? 'refused' : navigator.onLine ? 'failed' : 'waiting', reason })
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

watchNetwork(document.getElementById('net-status'), {
  onOnline() {
    record({ type: 'online' })
    if (uppy.getState().recoveredState) uppy.emit('restore-confirmed')
    retryNetworkFailures()
  },
  onOffline() {
    record({ type: 'offline' })
    for (const file of uppy.getFiles()) {
      if (!file.progress.uploadComplete) sent.update(file.id, { status: 'waiting' })
    }
  },
})

// ---- photos restored after a reload: send them without a second confirmation ---------------
uppy.on('restored', () => {
  for (const file of uppy.getFiles()) {
    if (file.progress.uploadComplete) continue
    sent.update(file.id, { name: file.name, status: navigator.onLine ? 'queued' : 'waiting' })
    record({ type: 'restored', fileId: file.id, ghost: Boolean(file.isGhost) })
  }
  if (navigator.onLine && uppy.getState().recoveredState) uppy.emit('restore-confirmed')
})

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

// Offer front/back only when the running camera reports facing modes (phones, tablets).
let cameraWasReady = false
uppy.on('state-update', () => {
  const ready = Boolean(webcam.getPluginState().cameraReady)
  if (ready === cameraWasReady) return
  cameraWasReady = ready
  if (ready) facingField.hidden = facingModesOf(liveVideoTrack(root, webcam)).length === 0
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

record({ type: 'ready' })
root.dataset.ready = 'true'
