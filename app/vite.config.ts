// Builds the calendar app into dist/, which the server embeds and serves at /app/.
//
// Relative asset URLs (base "./"), so the app works under whatever path serves it; content-hashed
// names under assets/ (the server caches those for a year); and a service worker, sw.js, that
// keeps every built file for offline use. Its file list is written into it at build time, so a
// new build is a new worker and replaces the old files.
import { createHash } from "node:crypto"
import { defineConfig, type Plugin } from "vite"
import wasm from "vite-plugin-wasm"

const SERVICE_WORKER = "sw"
const FILE_LIST_MARKER = "__APP_FILES__"
const VERSION_MARKER = "__APP_VERSION__"

/** Writes the names of the built files, and a version derived from them, into the worker. */
function serviceWorkerFileList(): Plugin {
  return {
    name: "service-worker-file-list",
    apply: "build",
    generateBundle(_options, bundle) {
      const worker = Object.values(bundle).find(
        out => out.type === "chunk" && out.name === SERVICE_WORKER
      )
      if (!worker || worker.type !== "chunk") throw new Error("the service worker was not built")
      const files = Object.keys(bundle)
        .filter(name => name !== worker.fileName)
        .sort()
      const version = createHash("sha256").update(files.join("\n")).digest("hex").slice(0, 12)
      worker.code = worker.code
        .replace(FILE_LIST_MARKER, JSON.stringify(["./", ...files]))
        .replace(VERSION_MARKER, JSON.stringify(version))
    },
  }
}

export default defineConfig({
  base: "./",
  plugins: [wasm(), serviceWorkerFileList()],
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    rollupOptions: {
      input: { main: "index.html", [SERVICE_WORKER]: "src/sw.ts" },
      output: {
        entryFileNames: chunk =>
          chunk.name === SERVICE_WORKER ? "sw.js" : "assets/[name]-[hash].js",
      },
    },
  },
})
