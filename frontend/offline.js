// Makes the camera page open offline: registers the service worker (frontend/sw.js, served at
// /camera-sw.js) and puts this page and the files it loaded into the caches the worker answers
// from. The cache names are repeated in sw.js (the worker imports nothing).

export const PAGES = 'tuscam-camera-pages'
export const ASSETS = 'tuscam-camera-assets'

function loadedStaticFiles() {
  const urls = new Set()
  for (const entry of performance.getEntriesByType('resource')) {
    const url = new URL(entry.name)
    if (url.origin === location.origin && url.pathname.startsWith('/static/')) {
      urls.add(url.pathname)
    }
  }
  for (const el of document.querySelectorAll(
    'script[src], link[rel="stylesheet"], link[rel="modulepreload"], link[rel="icon"]',
  )) {
    const url = new URL(el.src || el.href, location.href)
    if (url.origin === location.origin && url.pathname.startsWith('/static/')) {
      urls.add(url.pathname)
    }
  }
  return [...urls]
}

export async function prepareOffline() {
  if (!('serviceWorker' in navigator) || !('caches' in window)) return false
  await navigator.serviceWorker.register('/camera-sw.js', { scope: '/' })
  const files = loadedStaticFiles()
  const assets = await caches.open(ASSETS)
  await assets.addAll(files)
  // Files of older builds are no longer needed by any page.
  const keep = new Set(files.map((path) => new URL(path, location.href).href))
  for (const request of await assets.keys()) {
    if (!keep.has(request.url)) await assets.delete(request)
  }
  // This page was loaded before the worker controlled it: fetch it once more into the cache.
  const page = location.origin + location.pathname
  const response = await fetch(page, { credentials: 'same-origin', cache: 'no-store' })
  if (response.ok && !response.redirected) await (await caches.open(PAGES)).put(page, response)
  return true
}

// Logout: the cached camera pages carry the signed-in user's session data; none may outlive it.
export async function forgetCameraPages() {
  if ('caches' in window) await caches.delete(PAGES)
}
