// Test helper: start and stop the reference sync server from npm,
// @automerge/automerge-repo-sync-server (a server we did not write), to check that the native
// client speaks the protocol as the JavaScript implementation does.
//
// The reference server listens on every interface (`app.listen(PORT)`); force-loopback.cjs,
// preloaded with `node -r`, keeps it on 127.0.0.1. It reads PORT and DATA_DIR from the
// environment and prints `Listening on port PORT` once it accepts connections. It serves
// `./public` relative to its working directory, so it runs in its own empty temporary directory.
//
// Every wait here is bounded; the process is stopped by its pid (SIGTERM, then SIGKILL), and the
// process "exit" hook kills it if a test run ends early.
import { spawn } from "node:child_process"
import fs from "node:fs"
import { createRequire } from "node:module"
import net from "node:net"
import path from "node:path"
import readline from "node:readline"
import { fileURLToPath } from "node:url"
import { withTimeout } from "./server.mjs"

const HERE = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const PACKAGE = "@automerge/automerge-repo-sync-server"
const FORCE_LOOPBACK = path.join(HERE, "force-loopback.cjs")

const READY_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 5_000

const live = new Map() // pid -> child

process.on("exit", () => {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
})

/** The reference server's entry point: its package.json `bin` (the same file as `main`). */
function entryPoint() {
  const manifestPath = require.resolve(`${PACKAGE}/package.json`)
  const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"))
  const bin = typeof manifest.bin === "string" ? manifest.bin : Object.values(manifest.bin ?? {})[0]
  return { script: path.resolve(path.dirname(manifestPath), bin ?? manifest.main), version: manifest.version }
}

/** A TCP port that was free a moment ago: listen on 127.0.0.1:0, note the port, close. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/** Resolves once a TCP connection to host:port succeeds; rejects on the first error. */
export function tcpConnect(host, port, ms = 2_000) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect({ host, port })
      socket.once("connect", () => {
        socket.destroy()
        resolve()
      })
      socket.once("error", reject)
    }),
    ms,
    `TCP connect to ${host}:${port}`
  )
}

/**
 * Starts the reference server on a free loopback port with a fresh DATA_DIR under `dir` (which
 * the caller removes), and resolves once it accepts connections.
 * Returns {url, port, pid, version, dataDir, output(), isRunning(), stop()}.
 */
export async function startReferenceServer({ dir }) {
  if (!dir) throw new Error("startReferenceServer: dir is required")
  const { script, version } = entryPoint()
  const port = await freePort()
  const dataDir = path.join(dir, "data")
  const cwd = fs.mkdtempSync(path.join(dir, "cwd-"))
  const env = { ...process.env, PORT: String(port), DATA_DIR: dataDir }
  const child = spawn(process.execPath, ["-r", FORCE_LOOPBACK, script], { cwd, env, stdio: ["ignore", "pipe", "pipe"] })

  // Its log lines (including "error receiving message" reports, which go to stdout) in order.
  let output = ""
  child.stderr.setEncoding("utf8").on("data", chunk => (output += chunk))
  const lines = readline.createInterface({ input: child.stdout })
  const exited = new Promise(resolve => child.on("exit", (code, signal) => resolve({ code, signal })))
  const spawnError = new Promise((_, reject) => child.on("error", reject))
  if (child.pid !== undefined) live.set(child.pid, child)
  exited.then(() => live.delete(child.pid))

  const listening = new Promise(resolve => {
    lines.on("line", line => {
      output += `${line}\n`
      if (line === `Listening on port ${port}`) resolve()
    })
  })
  const exitedEarly = exited.then(({ code, signal }) => {
    throw new Error(`the reference server exited before it was ready (code ${code}, signal ${signal})`)
  })

  const isRunning = () => child.exitCode === null && child.signalCode === null
  const server = {
    url: `ws://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    version,
    dataDir,
    output: () => output,
    isRunning,

    /** SIGTERM, then SIGKILL if it has not exited within a few seconds. */
    async stop() {
      if (!isRunning()) return exited
      process.kill(child.pid, "SIGTERM")
      try {
        return await withTimeout(exited, STOP_TIMEOUT_MS, `reference server ${child.pid} to exit after SIGTERM`)
      } catch {
        if (isRunning()) process.kill(child.pid, "SIGKILL")
        return withTimeout(exited, STOP_TIMEOUT_MS, `reference server ${child.pid} to exit after SIGKILL`)
      }
    },
  }

  try {
    // Its own readiness line, then a connection of ours to prove it.
    await withTimeout(Promise.race([listening, exitedEarly, spawnError]), READY_TIMEOUT_MS, "the reference server's listening line")
    await tcpConnect("127.0.0.1", port)
  } catch (e) {
    await server.stop().catch(() => {})
    e.message += `\n--- reference server (${PACKAGE} ${version}, port ${port}) output:\n${output}`
    throw e
  }
  return server
}
