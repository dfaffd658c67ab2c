// Test helpers: start and stop syncline-server, and connect real automerge-repo 2.5.6 clients to it.
//
// Every wait here is bounded by a timeout and resolves on a condition (an event, a promise), never
// on a bare sleep. Every process started here is stopped by its pid (see stopAllServers and the
// process "exit" hook).
import { spawn } from "node:child_process"
import { after, before } from "node:test"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import readline from "node:readline"
import { fileURLToPath } from "node:url"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = path.resolve(HERE, "..", "..")
export const SERVER_BIN =
  process.env.SYNCLINE_SERVER_BIN || path.join(REPO_ROOT, "target", "debug", "syncline-server")

const READY_TIMEOUT_MS = 30_000 // a debug build opening its store for the first time
const STOP_TIMEOUT_MS = 10_000 // DESIGN.md: SIGTERM -> exit status 0 within 10 s
const LISTENING = /^syncline-server listening on (127\.0\.0\.1):(\d+)$/

// ---------------------------------------------------------------------------------------------
// Generic bounded waits

/**
 * Rejects with `timeout after <ms> ms: <what>` unless `promise` settles within `ms`. `what` may be
 * a function, evaluated when the time is up (to describe the state at that moment).
 */
export function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const text = typeof what === "function" ? what() : what
      reject(new Error(`timeout after ${ms} ms: ${text}`))
    }, ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Resolves with the first `event` payload on `emitter` for which `pred(payload)` holds (checking
 * `pred()` with no payload first if `checkNow` is set), within `ms`.
 */
export function waitForEvent(emitter, event, { pred = () => true, ms = 10_000, what, checkNow } = {}) {
  let listener
  const p = new Promise(resolve => {
    if (checkNow && checkNow()) return resolve(undefined)
    listener = payload => {
      if (pred(payload)) resolve(payload)
    }
    emitter.on(event, listener)
  })
  return withTimeout(p, ms, what ?? `event ${event}`).finally(() => {
    if (listener) emitter.off(event, listener)
  })
}

export const sameHeads = (a = [], b = []) =>
  a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",")

export function makeTempDir(prefix = "syncline-js-") {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

// ---------------------------------------------------------------------------------------------
// The server process

const live = new Map() // pid -> server handle, for the safety nets below

process.on("exit", () => {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
})

/**
 * Starts `syncline-server --listen <listen> --data-dir <dataDir>` and resolves once it printed
 * its one STDOUT line `syncline-server listening on 127.0.0.1:PORT`. `listen` defaults to
 * `127.0.0.1:0` (a free port); a restart that clients must find again passes the old address.
 *
 * Returns {url, port, pid, stop(), kill(), stderr(), stdoutLines(), exited}.
 */
export async function startServer({ dataDir, listen = "127.0.0.1:0", extraArgs = [], env = {} } = {}) {
  if (!dataDir) throw new Error("startServer: dataDir is required")
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(
      `server binary not found at ${SERVER_BIN} (build it with \`cargo build -p syncline-server\`, or set SYNCLINE_SERVER_BIN)`
    )
  }
  // The server reads its flags from SYNCLINE_* variables too: keep the caller's environment out.
  const childEnv = { ...process.env }
  for (const key of Object.keys(childEnv)) if (key.startsWith("SYNCLINE_")) delete childEnv[key]
  Object.assign(childEnv, env)

  const args = ["--listen", listen, "--data-dir", dataDir, ...extraArgs]
  const child = spawn(SERVER_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: childEnv })

  let stderrText = ""
  child.stderr.setEncoding("utf8")
  child.stderr.on("data", chunk => {
    stderrText += chunk
  })
  const stdoutLines = []
  const exited = new Promise(resolve => {
    child.on("exit", (code, signal) => resolve({ code, signal }))
  })
  const spawnError = new Promise((_, reject) => child.on("error", reject))
  if (child.pid !== undefined) live.set(child.pid, child)
  exited.then(() => live.delete(child.pid))

  const lines = readline.createInterface({ input: child.stdout })
  const ready = new Promise((resolve, reject) => {
    lines.on("line", line => {
      stdoutLines.push(line)
      if (stdoutLines.length === 1) {
        const m = LISTENING.exec(line)
        if (m) resolve({ host: m[1], port: Number(m[2]) })
        else reject(new Error(`unexpected first STDOUT line: ${JSON.stringify(line)}`))
      }
    })
  })
  const exitedEarly = exited.then(({ code, signal }) => {
    throw new Error(`server exited before it was ready (code ${code}, signal ${signal})`)
  })

  let addr
  try {
    addr = await withTimeout(Promise.race([ready, exitedEarly, spawnError]), READY_TIMEOUT_MS, "server listening line")
  } catch (e) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL")
      await withTimeout(exited, 5000, "server exit after failed start").catch(() => {})
    }
    e.message += `\n--- server args: ${args.join(" ")}\n--- server stderr:\n${stderrText}`
    throw e
  }

  const url = `ws://${addr.host}:${addr.port}`
  const server = {
    url,
    port: addr.port,
    pid: child.pid,
    dataDir,
    exited,
    stderr: () => stderrText,
    /** Resolves once the server's stderr matches `pattern`, within `ms`. */
    waitForStderr: (pattern, ms = 10_000) =>
      waitForEvent(child.stderr, "data", {
        checkNow: () => pattern.test(stderrText),
        pred: () => pattern.test(stderrText),
        ms,
        what: () => `server stderr matching ${pattern}; stderr so far:\n${stderrText}`,
      }),
    stdoutLines: () => [...stdoutLines],
    isRunning: () => child.exitCode === null && child.signalCode === null,

    /** SIGTERM, then wait for the exit; throws unless it exits with status 0 within 10 s. */
    async stop() {
      if (!server.isRunning()) throw new Error(`server ${child.pid} is not running`)
      process.kill(child.pid, "SIGTERM")
      let result
      try {
        result = await withTimeout(exited, STOP_TIMEOUT_MS, `server ${child.pid} to exit after SIGTERM`)
      } catch (e) {
        if (server.isRunning()) process.kill(child.pid, "SIGKILL")
        await withTimeout(exited, 5000, "server exit after SIGKILL").catch(() => {})
        throw e
      }
      if (result.code !== 0) {
        throw new Error(
          `server ${child.pid} exited with code ${result.code}, signal ${result.signal} after SIGTERM (expected code 0)`
        )
      }
      return result
    },

    /** SIGKILL (a crash), then wait for the exit. */
    async kill() {
      if (!server.isRunning()) throw new Error(`server ${child.pid} is not running`)
      process.kill(child.pid, "SIGKILL")
      return withTimeout(exited, 5000, `server ${child.pid} to exit after SIGKILL`)
    },
  }
  return server
}

/**
 * One server for the whole test file, on a fresh data directory: started before the first test,
 * stopped with SIGTERM after the last (it must exit 0), its directory removed. Returns a holder
 * whose `server` is the running server.
 */
export function serverForFile(prefix, options = {}) {
  const holder = { server: undefined, dataDir: undefined }
  before(async () => {
    holder.dataDir = makeTempDir(prefix)
    holder.server = await startServer({ ...options, dataDir: holder.dataDir })
  })
  after(async () => {
    try {
      if (holder.server?.isRunning()) await holder.server.stop()
    } finally {
      await stopAllServers()
      if (holder.dataDir) fs.rmSync(holder.dataDir, { recursive: true, force: true })
    }
  })
  return holder
}

/**
 * One request to a server's HTTP API, bounded by `ms`: resolves with the status and the parsed
 * JSON body.
 */
export async function apiRequest(server, method, route, body, { ms = 10_000 } = {}) {
  const response = await fetch(`http://127.0.0.1:${server.port}${route}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(ms),
  })
  return { status: response.status, body: await response.json() }
}

/** Kills (by pid) every server started by this process that is still running. */
export async function stopAllServers() {
  const waits = []
  for (const [pid, child] of live) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
    waits.push(new Promise(resolve => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", resolve))))
  }
  await withTimeout(Promise.all(waits), 5000, "servers to exit").catch(() => {})
}

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * The real WebSocketClientAdapter 2.5.6, unchanged on the wire, with two test-harness tweaks:
 *
 * - no automatic reconnect after the server closes the socket: each test connects a new Repo to
 *   the restarted server's new URL, and the stock adapter's reconnect timer survives
 *   `repo.shutdown()` (see the fixtures README), which would keep the test process alive;
 * - socket errors are recorded in `errors` instead of being thrown from the event handler (the
 *   stock adapter throws anything but ECONNREFUSED, which would crash the test process when a
 *   server is killed).
 *
 * It also records every message it receives (`received`), before the repo's own de-duplication,
 * so that tests can count frames.
 */
export class TestClientAdapter extends WebSocketClientAdapter {
  errors = []
  received = []
  peerInfo = undefined

  constructor(url) {
    super(url)
    this.onClose = () => {
      if (this.remotePeerId) this.emit("peer-disconnected", { peerId: this.remotePeerId })
    }
    this.onError = event => {
      this.errors.push(event.error ?? event)
    }
    this.on("message", msg => this.received.push(msg))
    this.on("peer-candidate", ({ peerId, peerMetadata }) => {
      this.peerInfo = { peerId, peerMetadata }
    })
  }
}

/**
 * A Repo (no storage, so an ephemeral client like a browser tab without IndexedDB) connected to
 * `url`. Resolves once the server answered `join` with `peer`, returning
 * {repo, adapter, serverPeerId, serverStorageId, close()}.
 */
export async function connectClient(url, { peerId, ms = 10_000 } = {}) {
  const adapter = new TestClientAdapter(url)
  const repo = new Repo({ network: [adapter], ...(peerId ? { peerId } : {}) })
  let closed = false
  const client = {
    repo,
    adapter,
    peerId: repo.peerId,
    serverPeerId: undefined,
    serverStorageId: undefined,
    serverPeerMetadata: undefined,
    async close() {
      if (closed) return
      closed = true
      if (adapter.socket) await repo.shutdown()
    },
  }
  try {
    const { peerId: serverPeerId } = await waitForEvent(repo.networkSubsystem, "peer", {
      ms,
      what: `"peer" answer from the server at ${url}`,
    })
    client.serverPeerId = serverPeerId
    client.serverPeerMetadata = adapter.peerInfo?.peerMetadata
    client.serverStorageId = repo.getStorageIdOfPeer(serverPeerId)
  } catch (e) {
    await client.close().catch(() => {})
    throw e
  }
  return client
}

/**
 * Resolves once the server has acknowledged `handle`'s current heads: automerge-repo records the
 * heads that a peer with a storageId reports in its sync messages (`handle.getSyncInfo(storageId)`,
 * updated with a `remote-heads` event), and the server announces its storageId in `peer`.
 * Returns the acknowledged heads.
 */
export async function serverAcknowledged(client, handle, { ms = 10_000, what = "server acknowledged heads" } = {}) {
  const sid = client.serverStorageId
  if (!sid) throw new Error("the server announced no storageId in its peer message")
  const acked = () => sameHeads(handle.getSyncInfo(sid)?.lastHeads, handle.heads())
  await waitForEvent(handle, "remote-heads", {
    checkNow: acked,
    pred: () => acked(),
    ms,
    what: () =>
      `${what} (want ${JSON.stringify(handle.heads())}, server reported ${JSON.stringify(handle.getSyncInfo(sid)?.lastHeads)})`,
  })
  return handle.getSyncInfo(sid).lastHeads
}
