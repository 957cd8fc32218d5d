// What the camera was doing when a photo was taken: MediaStreamTrack.getSettings() of the live
// video track (read from the Webcam plugin's <video> element) plus the operator's choices.

const TRACK_KEYS = [
  'width',
  'height',
  'frameRate',
  'aspectRatio',
  'facingMode',
  'resizeMode',
  'deviceId',
  'groupId',
]

export function liveVideoTrack(root, webcam) {
  const video = root.querySelector('video.uppy-Webcam-video')
  const stream = video?.srcObject ?? webcam?.stream ?? null
  return stream?.getVideoTracks?.()[0] ?? null
}

export function cameraSettingsSnapshot(track, choices) {
  const snapshot = { source: 'webcam' }
  if (track) {
    const settings = track.getSettings()
    for (const key of TRACK_KEYS) {
      if (settings[key] !== undefined && settings[key] !== '') snapshot[key] = settings[key]
    }
    snapshot.label = track.label
  }
  snapshot.operator = { ...choices }
  return snapshot
}

// Front/back choice is worth offering only on a device with more than one camera.
export async function videoInputCount() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices()
    return devices.filter((d) => d.kind === 'videoinput').length
  } catch {
    return 0
  }
}
