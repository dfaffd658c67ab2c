// Test helpers: run the native command-line client `syncline` (target/debug/syncline, or
// SYNCLINE_CLIENT_BIN) against a server, one bounded process per command.
//
// Every run is bounded twice: the client's own `--timeout` for the server, and a kill by pid a
// little later in case the process hangs anyway. `startWatch` keeps one `syncline watch` running
// and is stopped by pid (SIGINT, then SIGKILL); the process "exit" hook kills whatever is left.
import { spawn } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import readline from "node:readline"
import { REPO_ROOT, withTimeout } from "./server.mjs"

export const CLIENT_BIN = process.env.SYNCLINE_CLIENT_BIN || path.join(REPO_ROOT, "target", "debug", "syncline")

/** Seconds the client waits for a server (`--timeout`) unless a run asks otherwise. */
export const CLIENT_TIMEOUT_SECS = 10
/** How long past its own `--timeout` a run may take before it is killed. */
const KILL_GRACE_MS = 10_000
const EXIT_WAIT_MS = 5_000

const live = new Map() // pid -> child, for the safety net below

process.on("exit", () => {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
})

/** The environment for a client: the caller's, without SYNCLINE_* (the CLI reads its flags there). */
function clientEnv() {
  const env = { ...process.env }
  for (const key of Object.keys(env)) if (key.startsWith("SYNCLINE_")) delete env[key]
  return env
}

/** `syncline --store DIR [--server URL] --timeout SECS <command...>` as an argument list. */
function cliArgs(command, { store, server, timeoutSecs = CLIENT_TIMEOUT_SECS }) {
  if (!store) throw new Error("syncline: a store directory is required")
  const args = ["--store", store, "--timeout", String(timeoutSecs)]
  if (server) args.push("--server", server)
  return [...args, ...command]
}

function spawnClient(args) {
  if (!fs.existsSync(CLIENT_BIN)) {
    throw new Error(
      `client binary not found at ${CLIENT_BIN} (build it with \`cargo build -p syncline-client --bins\`, or set SYNCLINE_CLIENT_BIN)`
    )
  }
  const child = spawn(CLIENT_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: clientEnv() })
  const exited = new Promise((resolve, reject) => {
    child.on("error", reject)
    child.on("exit", (code, signal) => resolve({ code, signal }))
  })
  if (child.pid !== undefined) live.set(child.pid, child)
  exited.finally(() => live.delete(child.pid)).catch(() => {})
  return { child, exited }
}

const isRunning = child => child.exitCode === null && child.signalCode === null

/** Kills `child` by pid with SIGKILL and waits (bounded) for it to go. */
async function killChild(child, exited) {
  if (child.pid !== undefined && isRunning(child)) process.kill(child.pid, "SIGKILL")
  await withTimeout(exited, EXIT_WAIT_MS, `syncline pid ${child.pid} to exit after SIGKILL`).catch(() => {})
}

/**
 * Runs one command and resolves with {code, signal, stdout, stderr, command} once it exits. A
 * run still going `KILL_GRACE_MS` after its `--timeout` is killed and rejects.
 */
export async function runCli(command, options = {}) {
  const args = cliArgs(command, options)
  const timeoutSecs = options.timeoutSecs ?? CLIENT_TIMEOUT_SECS
  const shown = `syncline ${args.join(" ")}`
  const { child, exited } = spawnClient(args)

  let stdout = ""
  let stderr = ""
  child.stdout.setEncoding("utf8").on("data", chunk => (stdout += chunk))
  child.stderr.setEncoding("utf8").on("data", chunk => (stderr += chunk))
  // Both pipes must be drained before the output is complete.
  const drained = Promise.all([
    new Promise(resolve => child.stdout.on("close", resolve)),
    new Promise(resolve => child.stderr.on("close", resolve)),
  ])

  const bound = timeoutSecs * 1000 + KILL_GRACE_MS
  try {
    const { code, signal } = await withTimeout(exited, bound, `${shown} to exit`)
    await withTimeout(drained, EXIT_WAIT_MS, `${shown}: output pipes to close`)
    return { code, signal, stdout, stderr, command: shown }
  } catch (e) {
    await killChild(child, exited)
    e.message += `\n--- stderr so far:\n${stderr}`
    throw e
  }
}

/** Describes a finished run for an assertion message. */
export function describeRun(run) {
  return `${run.command}\n--- exit code ${run.code}, signal ${run.signal}\n--- stdout:\n${run.stdout}--- stderr:\n${run.stderr}`
}

/** Runs one command that must exit 0; resolves with its stdout. */
export async function cli(command, options) {
  const run = await runCli(command, options)
  if (run.code !== 0) throw new Error(`expected exit status 0:\n${describeRun(run)}`)
  return run.stdout
}

/** `syncline get`, parsed. */
export async function getJson(url, options) {
  return JSON.parse(await cli(["get", url], options))
}

/** `syncline status`, parsed: {document, local_heads, acknowledged}. */
export async function statusJson(url, options) {
  return JSON.parse(await cli(["status", url], options))
}

/** `syncline create --json ...`; resolves with the new document's `automerge:` URL. */
export async function createDoc(value, options) {
  return (await cli(["create", "--json", JSON.stringify(value)], options)).trim()
}

/** `syncline set <url> <path> <value>`, the value given as a JS value and passed as JSON. */
export async function setPath(url, where, value, options) {
  await cli(["set", url, where, JSON.stringify(value)], options)
}

/**
 * Starts `syncline watch <url>` and returns {lines, nextLine(pred, ms, what), stop()}: `lines` are
 * the parsed JSON lines so far, `nextLine` resolves with the first line (already printed or still
 * to come) for which `pred` holds, and `stop()` sends SIGINT and resolves with the exit status.
 */
export function startWatch(url, options) {
  const args = cliArgs(["watch", url], options)
  const shown = `syncline ${args.join(" ")}`
  const { child, exited } = spawnClient(args)

  let stderr = ""
  child.stderr.setEncoding("utf8").on("data", chunk => (stderr += chunk))
  const lines = []
  const waiters = new Set()
  readline.createInterface({ input: child.stdout }).on("line", text => {
    const line = JSON.parse(text)
    lines.push(line)
    for (const waiter of waiters) waiter(line)
  })

  const watch = {
    pid: child.pid,
    lines,
    stderr: () => stderr,

    /** The first line for which `pred(line)` holds, within `ms`. */
    nextLine(pred, ms, what = "a watch line") {
      let waiter
      const found = new Promise((resolve, reject) => {
        const seen = lines.find(pred)
        if (seen) return resolve(seen)
        waiter = line => pred(line) && resolve(line)
        waiters.add(waiter)
        exited.then(({ code, signal }) => reject(new Error(`${shown} exited (code ${code}, signal ${signal})`)), reject)
      })
      const describe = () => `${what} from ${shown}\n--- lines so far: ${JSON.stringify(lines)}\n--- stderr:\n${stderr}`
      return withTimeout(found, ms, describe).finally(() => waiters.delete(waiter))
    },

    /** SIGINT, then the exit status (SIGKILL if it does not exit within a few seconds). */
    async stop() {
      if (!isRunning(child)) return exited
      process.kill(child.pid, "SIGINT")
      try {
        return await withTimeout(exited, EXIT_WAIT_MS, `${shown} to exit after SIGINT`)
      } catch (e) {
        await killChild(child, exited)
        throw e
      }
    },
  }
  return watch
}
