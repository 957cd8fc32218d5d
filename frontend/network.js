// The offline banner: navigator.onLine plus the online/offline events. Uploads wait while offline;
// the caller resumes them when the network returns.

export function watchNetwork(banner, { onOnline, onOffline }) {
  let hideTimer = null

  function show(text, state) {
    clearTimeout(hideTimer)
    banner.textContent = text
    banner.dataset.state = state
    banner.hidden = false
  }

  function offline() {
    show(
      'You are offline. Photos stay on this device and are sent when the network returns.',
      'offline',
    )
    onOffline?.()
  }

  function online() {
    show('Back online: sending the photos that were waiting.', 'online')
    hideTimer = setTimeout(() => {
      banner.hidden = true
    }, 4000)
    onOnline?.()
  }

  window.addEventListener('offline', offline)
  window.addEventListener('online', online)
  if (!navigator.onLine) offline()
}
