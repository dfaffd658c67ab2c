// Access control with the real automerge-repo JavaScript client: the token goes in the URL
// (`?token=`), as a browser must pass it. A reader cannot write, a stranger cannot tell an
// existing document from a missing one, an expired token is cut off, and the HTTP routes apply
// the same grants. Tokens are minted with `syncline-server token`, as a developer would.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { generateAutomergeUrl } from "@automerge/automerge-repo"
import WebSocket from "ws"
import {
  SERVER_BIN,
  connectClient,
  makeTempDir,
  serverAcknowledged,
  startServer,
  stopAllServers,
  waitForEvent,
  withTimeout,
} from "./server.mjs"

const WAIT_MS = 10_000
const TEST_TIMEOUT_MS = 60_000
const CONFIG = `[auth]
secret = "syncline-js-test-secret-0123456789abcdef"
leeway_s = 0
`

let dir
let configPath
let server

before(async () => {
  dir = makeTempDir("syncline-js-auth-")
  configPath = path.join(dir, "syncline.toml")
  fs.writeFileSync(configPath, CONFIG)
  server = await startServer({ dataDir: path.join(dir, "data"), extraArgs: ["--config", configPath] })
})

after(async () => {
  try {
    if (server?.isRunning()) await server.stop()
  } finally {
    await stopAllServers()
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** `syncline-server token` for `sub` with `--read`/`--write` grants. */
function mint(sub, { read = [], write = [], admin = false, ttl = 3600 } = {}) {
  const args = ["token", "--config", configPath, "--sub", sub, "--ttl-seconds", String(ttl)]
  for (const doc of read) args.push("--read", doc)
  for (const doc of write) args.push("--write", doc)
  if (admin) args.push("--admin")
  const out = spawnSync(SERVER_BIN, args, { encoding: "utf8" })
  assert.equal(out.status, 0, out.stderr)
  return out.stdout.trim()
}

const connect = token => connectClient(`${server.url}/?token=${encodeURIComponent(token)}`)
const docId = url => url.replace(/^automerge:/, "")

async function metric(name, labels) {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text()
  const line = text.split("\n").find(l => l.startsWith(`${name}{${labels}} `))
  return line ? Number(line.split(" ").pop()) : 0
}

/** Polls the metrics (bounded) until `name{labels}` reaches `atLeast`. */
async function waitMetric(name, labels, atLeast) {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const value = await metric(name, labels)
    if (value >= atLeast) return value
    if (Date.now() > deadline) throw new Error(`${name}{${labels}} stayed at ${value}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

test("an upgrade without a valid token is refused before any sync", { timeout: TEST_TIMEOUT_MS }, async () => {
  const cases = [
    ["", 401],
    ["?token=nonsense", 401],
    [`?token=${mint("x", { write: ["*"] })}x`, 401],
    [`?token=${mint("x", {})}`, 403],
  ]
  for (const [query, expected] of cases) {
    const status = await withTimeout(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${server.url}/${query}`)
        ws.on("open", () => reject(new Error(`upgrade with ${JSON.stringify(query)} was accepted`)))
        ws.on("unexpected-response", (_request, response) => resolve(response.statusCode))
        ws.on("error", () => {})
      }),
      WAIT_MS,
      `answer to an upgrade with ${JSON.stringify(query)}`
    )
    assert.equal(status, expected, query)
  }
  const refused = await metric("syncline_auth_refused_total", 'reason="missing"')
  assert.ok(refused >= 1, "a missing token was counted")
})

test("a reader receives the document but its changes never reach the server", { timeout: TEST_TIMEOUT_MS }, async () => {
  const writer = await connect(mint("wendy", { write: ["*"] }))
  const reader = await connect(mint("rita", { read: ["*"] }))
  try {
    const handle = writer.repo.create({ price: 100 })
    await serverAcknowledged(writer, handle)

    const seen = await withTimeout(reader.repo.find(handle.url), WAIT_MS, "reader finds the document")
    assert.equal(seen.doc().price, 100)
    seen.change(d => {
      d.price = 1
    })
    // The writer's next change reaches the reader: the reader's connection is alive and synced.
    handle.change(d => {
      d.nights = 3
    })
    await serverAcknowledged(writer, handle)
    await waitForEvent(seen, "change", { checkNow: () => seen.doc().nights === 3, pred: () => seen.doc().nights === 3, ms: WAIT_MS })

    const fresh = await connect(mint("fred", { read: ["*"] }))
    try {
      const copy = await withTimeout(fresh.repo.find(handle.url), WAIT_MS, "fresh client finds the document")
      await waitForEvent(copy, "change", { checkNow: () => copy.doc().nights === 3, pred: () => copy.doc().nights === 3, ms: WAIT_MS })
      assert.equal(copy.doc().price, 100, "the reader's change reached the server")
    } finally {
      await fresh.close()
    }
    assert.equal(handle.doc().price, 100, "the reader's change reached the writer")
    assert.equal(seen.doc().price, 1, "the reader keeps its local edit")
  } finally {
    await reader.close()
    await writer.close()
  }
})

test("a stranger gets the same answer for an existing document as for a missing one", { timeout: TEST_TIMEOUT_MS }, async () => {
  const owner = await connect(mint("olga", { write: ["*"] }))
  const elsewhere = docId(generateAutomergeUrl())
  const stranger = await connect(mint("sam", { write: [elsewhere] }))
  try {
    const handle = owner.repo.create({ secret: "yes" })
    await serverAcknowledged(owner, handle)
    const outcome = async url => {
      try {
        await withTimeout(stranger.repo.find(url), WAIT_MS, `stranger finds ${url}`)
        return "found"
      } catch (e) {
        return /unavailable/i.test(String(e.message)) ? "unavailable" : `error: ${e.message}`
      }
    }
    assert.equal(await outcome(handle.url), "unavailable")
    assert.equal(await outcome(generateAutomergeUrl()), "unavailable")
    const answers = stranger.adapter.received.filter(m => m.type === "doc-unavailable")
    assert.equal(answers.length, 2)
    const shape = m => JSON.stringify(Object.keys(m).sort())
    assert.equal(shape(answers[0]), shape(answers[1]))
  } finally {
    await stranger.close()
    await owner.close()
  }
})

test("an expired token closes the connection with an error", { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = await connect(mint("brief", { write: ["*"], ttl: 2 }))
  try {
    const started = Date.now()
    const closed = new Promise(resolve => client.adapter.socket.on("close", (code, reason) => resolve({ code, reason: String(reason) })))
    const { code, reason } = await withTimeout(closed, WAIT_MS, "the server to close the expired connection")
    assert.ok(Date.now() - started >= 500, "closed before the token expired")
    assert.equal(code, 1008)
    assert.equal(reason, "token expired")
    await server.waitForStderr(/token expired; closing connection/)
    await waitMetric("syncline_access_denied_total", 'reason="expired"', 1)
  } finally {
    await client.close()
  }
})

test("HTTP routes apply the same grants", { timeout: TEST_TIMEOUT_MS }, async () => {
  const base = `http://127.0.0.1:${server.port}`
  const get = (p, token) => fetch(`${base}${p}`, token ? { headers: { Authorization: `Bearer ${token}` } } : {})
  assert.equal((await get("/admin/bridges")).status, 401)
  assert.equal((await get("/admin/bridges", mint("rita", { read: ["*"] }))).status, 403)
  assert.equal((await get("/admin/bridges", mint("root", { admin: true }))).status, 200)
  const doc = docId(generateAutomergeUrl())
  const stranger = mint("sam", { read: [docId(generateAutomergeUrl())] })
  const hidden = await get(`/admin/calendars/${doc}/feed`, stranger)
  assert.equal(hidden.status, 404)
  assert.equal((await hidden.json()).error.code, "not_found")
  assert.equal((await get("/healthz")).status, 200)
})
