// The offline banner: navigator.onLine plus the online/offline events, and a server that cannot be
// reached although the device is online. Photos wait on the device meanwhile; the caller resumes
// them when the network returns.

const OFFLINE_TEXT =
  'You are offline. Photos are saved on this device and will be sent when you are back online.'
const UNREACHABLE_TEXT =
  'The server cannot be reached. Photos are saved on this device and will be sent when it is back.'

export function watchNetwork(banner, { onOnline, onOffline }) {
  let hideTimer = null

  function show(text, state) {
    clearTimeout(hideTimer)
    banner.textContent = text
    banner.dataset.state = state
    banner.hidden = false
  }

  function hideSoon() {
    hideTimer = setTimeout(() => {
      banner.hidden = true
    }, 4000)
  }

  function offline() {
    show(OFFLINE_TEXT, 'offline')
    onOffline?.()
  }

  function online() {
    show('Back online: sending the photos that were waiting.', 'online')
    hideSoon()
    onOnline?.()
  }

  window.addEventListener('offline', offline)
  window.addEventListener('online', online)
  if (!navigator.onLine) offline()

  return {
    unreachable() {
      if (navigator.onLine) show(UNREACHABLE_TEXT, 'offline')
    },
    reachable() {
      if (banner.dataset.state === 'offline' && navigator.onLine && !banner.hidden) {
        show('The server is back: sending the photos that were waiting.', 'online')
        hideSoon()
      }
    },
  }
}
