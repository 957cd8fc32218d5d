// On every page with the logout form: before the form is sent, ask if this user still has photos
// waiting on this device (they would be lost), then clear this user's photos and the cached camera
// pages. The server ends the session on the POST itself.
import { forgetCameraPages } from './offline.js'
import { PhotoStore } from './store.js'

const form = document.querySelector('form.logout[data-user-id]')

async function confirmAndClear(event) {
  event.preventDefault()
  const user = form.dataset.userId
  let store = null
  try {
    store = await PhotoStore.open(user)
    const waiting = await store.count()
    if (waiting > 0) {
      const photos = waiting === 1 ? '1 photo has' : `${waiting} photos have`
      const ok = window.confirm(
        `${photos} not been sent yet. Logging out deletes them from this device. Log out anyway?`,
      )
      if (!ok) return
    }
    await store.clear()
    await forgetCameraPages()
  } catch (error) {
    // No IndexedDB (private mode, old browser): nothing was kept here; log out all the same.
    console.warn('tuscam: could not clear the photos kept on this device', error)
  } finally {
    store?.db.close()
  }
  form.removeEventListener('submit', confirmAndClear)
  form.submit()
}

form?.addEventListener('submit', confirmAndClear)
