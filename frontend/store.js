// Photos not yet sent, in IndexedDB: written before their upload starts, removed once the server
// has given its final word. Every record belongs to one user (key [user, fileId]): another user
// on the same browser never sees, sends or counts it, and logout clears only that user's photos.

const DB_NAME = 'tuscam-photos'
const STORE = 'photos'

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

function openDatabase() {
  const req = indexedDB.open(DB_NAME, 1)
  req.onupgradeneeded = () => {
    const store = req.result.createObjectStore(STORE, { keyPath: ['user', 'fileId'] })
    store.createIndex('user', 'user')
  }
  return request(req)
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
  })
}

export class PhotoStore {
  constructor(db, user) {
    this.db = db
    this.user = String(user)
  }

  static async open(user) {
    if (!user) throw new Error('PhotoStore needs the id of the signed-in user')
    return new PhotoStore(await openDatabase(), user)
  }

  // record: {fileId, sessionId, name, type, blob, meta, uploadUrl, addedAt}
  async put(record) {
    const tx = this.db.transaction(STORE, 'readwrite')
    tx.objectStore(STORE).put({ ...record, user: this.user })
    await done(tx)
  }

  async update(fileId, patch) {
    const tx = this.db.transaction(STORE, 'readwrite')
    const store = tx.objectStore(STORE)
    const current = await request(store.get([this.user, fileId]))
    if (current) store.put({ ...current, ...patch, user: this.user, fileId })
    await done(tx)
  }

  async remove(fileId) {
    const tx = this.db.transaction(STORE, 'readwrite')
    tx.objectStore(STORE).delete([this.user, fileId])
    await done(tx)
  }

  // This user's photos, oldest first; of one capture session when sessionId is given.
  async list(sessionId = null) {
    const tx = this.db.transaction(STORE, 'readonly')
    const all = await request(tx.objectStore(STORE).index('user').getAll(this.user))
    return all
      .filter((r) => sessionId === null || String(r.sessionId) === String(sessionId))
      .sort((a, b) => a.addedAt - b.addedAt)
  }

  async count() {
    const tx = this.db.transaction(STORE, 'readonly')
    return request(tx.objectStore(STORE).index('user').count(this.user))
  }

  async clear() {
    const tx = this.db.transaction(STORE, 'readwrite')
    const store = tx.objectStore(STORE)
    const keys = await request(store.index('user').getAllKeys(this.user))
    for (const key of keys) store.delete(key)
    await done(tx)
  }
}
