// The camera page's service worker (served at /camera-sw.js, scope /). It answers only:
// - navigations to /sessions/<id>/camera: network first; the cached copy when the network or the
//   server is down (or answers 5xx), so the page opens offline after one visit;
// - /static/ files the camera page cached (frontend/offline.js puts them there): hashed files in
//   /static/dist/ from the cache, the others network first.
// Everything else (other pages, the API, tus uploads) goes to the network untouched.
// Self-contained on purpose (no imports): the cache names are repeated in frontend/offline.js.

const PAGES = 'tuscam-camera-pages'
const ASSETS = 'tuscam-camera-assets'
const CAMERA_PAGE = /^\/sessions\/\d+\/camera\/?$/
const PAGE_TIMEOUT_MS = 8000 // a server that accepts but does not answer counts as down

self.addEventListener('install', () => self.skipWaiting())
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()))

self.addEventListener('fetch', (event) => {
  const { request } = event
  if (request.method !== 'GET') return
  const url = new URL(request.url)
  if (url.origin !== self.location.origin) return
  if (request.mode === 'navigate' && CAMERA_PAGE.test(url.pathname)) {
    event.respondWith(cameraPage(request, url))
  } else if (url.pathname.startsWith('/static/dist/')) {
    event.respondWith(cacheFirst(request))
  } else if (url.pathname.startsWith('/static/')) {
    event.respondWith(networkFirst(request))
  }
})

function fetchWithTimeout(request, ms) {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), ms)
  return fetch(request, { signal: controller.signal }).finally(() => clearTimeout(timer))
}

async function cameraPage(request, url) {
  const cache = await caches.open(PAGES)
  const key = url.origin + url.pathname
  try {
    const response = await fetchWithTimeout(request, PAGE_TIMEOUT_MS)
    if (response.ok && response.type === 'basic' && !response.redirected) {
      await cache.put(key, response.clone())
      return response
    }
    if (response.status >= 500) return (await cache.match(key)) ?? response
    return response // a login redirect, a 403, a 404: the server's answer stands
  } catch {
    const cached = await cache.match(key)
    if (cached) return cached
    return new Response(
      '<!doctype html><meta charset="utf-8"><title>Offline · tuscam</title>' +
        '<p>The server cannot be reached and this camera page was not opened on this device ' +
        'before. Open it once while online; after that it also opens offline.</p>',
      { status: 503, headers: { 'Content-Type': 'text/html; charset=utf-8' } },
    )
  }
}

async function cacheFirst(request) {
  const cached = await caches.match(request, { cacheName: ASSETS })
  return cached ?? fetch(request)
}

async function networkFirst(request) {
  try {
    const response = await fetch(request)
    if (response.ok) return response
    return (await caches.match(request, { cacheName: ASSETS })) ?? response
  } catch (error) {
    const cached = await caches.match(request, { cacheName: ASSETS })
    if (cached) return cached
    throw error
  }
}
