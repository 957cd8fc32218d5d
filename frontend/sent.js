// "Captures sent": one row per photo with what happened to it (sending, waiting for the
// network, accepted, rejected with the server's reason, refused before upload). Rows survive a
// reload of the page (sessionStorage); the unsent photos themselves are in IndexedDB (store.js).

const LABELS = {
  queued: 'Saved on this device, waiting to send',
  sending: 'Sending',
  waiting: 'Saved on this device, will send when back online',
  accepted: 'Accepted',
  duplicate: 'Already received (duplicate)',
  rejected: 'Rejected',
  refused: 'Refused',
  failed: 'Failed',
  unknown: 'Sent (no answer from the server yet)',
}
const FINAL = new Set(['accepted', 'duplicate', 'rejected', 'refused'])
const KEEP = 50

export class SentList {
  constructor(list, emptyNote, storageKey) {
    this.list = list
    this.emptyNote = emptyNote
    this.storageKey = storageKey
    this.rows = new Map() // fileId -> {name, status, reason, captureId, progress, at}
    for (const [id, row] of this.#load()) this.rows.set(id, row)
    for (const id of this.rows.keys()) this.#render(id)
    this.#updateEmpty()
  }

  update(fileId, patch) {
    const row = { ...(this.rows.get(fileId) ?? { at: Date.now() }), ...patch }
    // A late progress event must not undo the final word of the server.
    if (FINAL.has(this.rows.get(fileId)?.status) && !FINAL.has(patch.status ?? '')) return
    this.rows.set(fileId, row)
    this.#render(fileId)
    this.#updateEmpty()
    if (patch.status !== 'sending') this.#save()
  }

  get(fileId) {
    return this.rows.get(fileId)
  }

  #render(fileId) {
    const row = this.rows.get(fileId)
    let li = this.list.querySelector(`li[data-file-id="${CSS.escape(fileId)}"]`)
    if (!li) {
      li = document.createElement('li')
      li.className = 'capture'
      li.dataset.fileId = fileId
      li.innerHTML =
        '<img class="capture-thumb" alt="" hidden>' +
        '<div class="capture-body"><span class="capture-name"></span>' +
        '<span class="capture-state"></span>' +
        '<progress class="capture-progress" max="100"></progress>' +
        '<span class="capture-reason"></span></div>'
      this.list.prepend(li)
    }
    li.dataset.status = row.status
    li.querySelector('.capture-name').textContent = row.name ?? fileId
    const label = LABELS[row.status] ?? row.status
    const number = row.captureId ? ` (capture #${row.captureId})` : ''
    const percent = row.status === 'sending' && row.progress != null ? ` ${row.progress}%` : ''
    li.querySelector('.capture-state').textContent = label + number + percent
    const progress = li.querySelector('.capture-progress')
    progress.hidden = row.status !== 'sending'
    progress.value = row.progress ?? 0
    progress.setAttribute('aria-label', `Upload progress of ${row.name ?? 'the photo'}`)
    li.querySelector('.capture-reason').textContent = row.reason ?? ''
    const thumb = li.querySelector('.capture-thumb')
    if (row.preview && thumb.getAttribute('src') !== row.preview) {
      thumb.src = row.preview
      thumb.hidden = false
    }
  }

  #updateEmpty() {
    this.emptyNote.hidden = this.rows.size > 0
  }

  #load() {
    try {
      return Object.entries(JSON.parse(sessionStorage.getItem(this.storageKey) ?? '{}'))
    } catch {
      return []
    }
  }

  #save() {
    const entries = [...this.rows.entries()]
      .slice(-KEEP)
      .map(([id, { preview, progress, ...row }]) => [id, row]) // object URLs die with the page
    try {
      sessionStorage.setItem(this.storageKey, JSON.stringify(Object.fromEntries(entries)))
    } catch {
      // Storage full or disabled: the list is a convenience, the server has the truth.
    }
  }
}
