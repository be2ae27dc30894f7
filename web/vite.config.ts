import { defineConfig } from 'vite'

// Built files go to web/dist; the designer router serves them at "/".
export default defineConfig({
  build: { outDir: 'dist', emptyOutDir: true },
  server: { proxy: { '/api': { target: 'http://127.0.0.1:8000', ws: true } } }
})
