// Reviewer pages: keyboard shortcuts, and live updates of a session's gallery. An ES module built
// by Vite (entry frontend/review.js), loaded by templates/review/{session,capture}.html.

const POLL_MS = 4000

function typing(event) {
  const t = event.target
  return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))
}

function modified(event) {
  return event.ctrlKey || event.metaKey || event.altKey
}

// --- one capture: a = approve, r = reject, n = note, j/→ next, k/← previous ---
function capturePage() {
  const form = document.getElementById('review-form')
  document.addEventListener('keydown', (event) => {
    if (typing(event) || modified(event)) return
    let link = null
    if (event.key === 'j' || event.key === 'ArrowRight')
      link = document.getElementById('next-capture')
    if (event.key === 'k' || event.key === 'ArrowLeft')
      link = document.getElementById('prev-capture')
    if (link) {
      event.preventDefault()
      window.location.assign(link.href)
      return
    }
    if (!form) return
    if (event.key === 'n') {
      event.preventDefault()
      form.querySelector('textarea').focus()
      return
    }
    const button = form.querySelector(`button[data-key="${event.key}"]`)
    if (button) {
      event.preventDefault()
      form.requestSubmit(button)
    }
  })
}

// --- gallery: j/k/arrows move between cards, Enter opens (the link has focus) ---
function galleryKeys(gallery) {
  document.addEventListener('keydown', (event) => {
    if (typing(event) || modified(event)) return
    const step = { j: 1, ArrowRight: 1, k: -1, ArrowLeft: -1 }[event.key]
    if (!step) return
    const links = [...gallery.querySelectorAll('.capture-card .filename')]
    if (!links.length) return
    const i = links.indexOf(document.activeElement)
    const next = i < 0 ? 0 : Math.min(links.length - 1, Math.max(0, i + step))
    event.preventDefault()
    links[next].focus()
    links[next].closest('.capture-card').scrollIntoView({ block: 'nearest' })
  })
}

// --- gallery: poll for captures that arrived since the page was rendered ---
function galleryPoll(gallery) {
  if (gallery.dataset.poll !== 'on') return
  const status = document.getElementById('live-status')
  let lastId = Number.parseInt(gallery.dataset.lastId, 10) || 0
  let waiting = 0 // arrivals not shown (not on the first page of the newest-first view)
  let busy = false

  function url() {
    const u = new URL(gallery.dataset.sinceUrl, window.location.href)
    u.searchParams.set('after_id', String(lastId))
    return u.toString()
  }

  function notice(text) {
    status.textContent = `${text} `
    const a = document.createElement('a')
    a.href = gallery.dataset.firstUrl
    a.textContent = 'Show newest'
    status.appendChild(a)
  }

  const plural = (n) => (n === 1 ? '' : 's')

  async function tick() {
    if (busy || document.hidden) return
    busy = true
    try {
      const r = await fetch(url(), {
        headers: { Accept: 'application/json' },
        credentials: 'same-origin',
      })
      if (!r.ok) return
      const data = await r.json()
      lastId = data.last_id
      gallery.dataset.lastId = String(lastId)
      if (!data.count) return
      if (gallery.dataset.mode === 'prepend' && !data.more) {
        // The server escaped every value of these cards (Jinja autoescape).
        const tpl = document.createElement('template')
        tpl.innerHTML = data.html
        for (const card of tpl.content.querySelectorAll('.capture-card')) {
          card.classList.add('is-new')
        }
        gallery.insertBefore(tpl.content, gallery.firstChild)
        document.querySelector('.empty')?.remove()
        status.textContent = `${data.count} new capture${plural(data.count)} arrived.`
      } else {
        waiting += data.count
        const more = data.more ? '+' : ''
        notice(`${waiting}${more} new capture${plural(waiting)} since this page loaded.`)
      }
    } catch {
      // a missed poll is retried on the next tick
    } finally {
      busy = false
    }
  }

  window.setInterval(tick, POLL_MS)
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) tick()
  })
}

const gallery = document.getElementById('gallery')
if (gallery) {
  galleryKeys(gallery)
  galleryPoll(gallery)
} else {
  capturePage()
}
