// Builds the browser code in frontend/ into app/static/dist/, with a manifest that
// app/assets.py reads to find the hashed file names (served by Flask under /static/dist/).
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

const here = (path) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  base: '/static/dist/',
  publicDir: false,
  build: {
    outDir: here('./app/static/dist'),
    emptyOutDir: true,
    manifest: true,
    sourcemap: true,
    // Phones from the last few years; Uppy 6 ships modern syntax anyway.
    target: 'es2022',
    rolldownOptions: {
      input: {
        camera: here('./frontend/camera.js'),
        logout: here('./frontend/logout.js'),
        review: here('./frontend/review.js'),
        // The service worker: served at /camera-sw.js by app/camera.py (scope /).
        sw: here('./frontend/sw.js'),
      },
    },
  },
})
