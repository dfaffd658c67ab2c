// Interop: the native client (the `syncline` CLI) against the reference sync server from npm,
// @automerge/automerge-repo-sync-server (see reference-server.mjs), which runs automerge-repo 1.x
// with file storage. A server we did not write checks that the client speaks the protocol as
// the JavaScript implementation expects, not merely as syncline-server accepts it. One reference
// server per file, on a fresh data directory, bound to 127.0.0.1 by force-loopback.cjs.
//
// Run: node --test --test-concurrency=1 tests/js/   (the client binary comes from
// SYNCLINE_CLIENT_BIN, default target/debug/syncline)
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import fs from "node:fs"
import path from "node:path"
import * as A from "@automerge/automerge"
import { generateAutomergeUrl, parseAutomergeUrl } from "@automerge/automerge-repo"
import { connectClient, makeTempDir, sameHeads, serverAcknowledged, waitForEvent, withTimeout } from "./server.mjs"
import { createDoc, describeRun, getJson, runCli, setPath, statusJson } from "./native.mjs"
import { startReferenceServer, tcpConnect } from "./reference-server.mjs"

const WAIT_MS = 10_000 // bound for every single condition we wait for
const TEST_TIMEOUT_MS = 90_000

let tempDir
let reference

before(async () => {
  tempDir = makeTempDir("syncline-js-reference-")
  reference = await startReferenceServer({ dir: tempDir })
})

after(async () => {
  try {
    await reference?.stop()
  } finally {
    if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true })
  }
})

const plain = value => JSON.parse(JSON.stringify(value))

function tail(text, lines = 150) {
  const all = text.split("\n")
  return all.length > lines ? [`(... ${all.length - lines} earlier lines)`, ...all.slice(-lines)].join("\n") : text
}

/**
 * A test case against the shared reference server. The body gets `connect()` (a JS client on
 * the reference server, closed after the case), `store()` (options naming a fresh native store
 * that syncs with it) and `offline(store)` (that store without a server). On failure the
 * reference server's output from this case is appended to the error.
 */
function referenceTest(name, body) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async t => {
    assert.ok(reference.isRunning(), "the reference server is running")
    const from = reference.output().length
    const clients = []
    const ctx = {
      t,
      async connect() {
        const client = await connectClient(reference.url, { ms: WAIT_MS })
        clients.push(client)
        return client
      },
      store() {
        return { store: fs.mkdtempSync(path.join(tempDir, "store-")), server: `${reference.url}/` }
      },
      offline: ({ store }) => ({ store }),
    }
    try {
      await body(ctx)
    } catch (e) {
      const output = tail(reference.output().slice(from))
      if (e instanceof Error) e.message += `\n--- reference server ${reference.version} (${reference.url}) output:\n${output}`
      throw e
    } finally {
      await Promise.all(clients.map(c => c.close().catch(() => {})))
    }
  })
}

/** `repo.find(url)`, bounded. */
function find(client, url) {
  return withTimeout(client.repo.find(url), WAIT_MS, `repo.find(${url}) on ${client.peerId}`)
}

/** The handle's heads as hex change hashes, the form `syncline status` prints. */
const hexHeads = handle => A.getHeads(handle.doc())

function assertSameHeads(actual, expected, message) {
  assert.ok(sameHeads(actual, expected), `${message}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`)
}

/**
 * Local addresses of the sockets listening on `port`, read from the kernel's socket tables
 * (/proc/net/tcp and tcp6) as hex: "0100007F" is 127.0.0.1, "00000000" every IPv4 interface.
 * Reading the tables sends no traffic anywhere.
 */
function listeningAddresses(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  const LISTEN = "0A"
  return ["/proc/net/tcp", "/proc/net/tcp6"]
    .filter(file => fs.existsSync(file))
    .flatMap(file => fs.readFileSync(file, "utf8").split("\n").slice(1))
    .map(line => line.trim().split(/\s+/))
    .filter(fields => fields.length > 3 && fields[3] === LISTEN)
    .map(fields => fields[1].split(":"))
    .filter(([, p]) => p === hexPort)
    .map(([address]) => address)
}

// ---------------------------------------------------------------------------------------------

// Intent: the preload keeps the reference server off the network: it answers on 127.0.0.1, and
// its only listening socket is bound to that address.
referenceTest("0. the reference server listens on 127.0.0.1 only", async () => {
  // 1. It accepts connections on the loopback address.
  await tcpConnect("127.0.0.1", reference.port)

  // 2. The kernel shows one listening socket on the port, bound to 127.0.0.1 alone.
  assert.deepEqual(listeningAddresses(reference.port), ["0100007F"])
})

// Intent: the reference server answers the native client's upload with sync messages that
// carry its heads, so `create` sees them acknowledged and exits 0, recorded under the storageId
// that the reference server announces to the JS client too.
referenceTest("1. native create is acknowledged by the reference server", async ({ connect, store, offline }) => {
  // 1. A JS client learns the reference server's storageId from its peer message.
  const js = await connect()
  assert.equal(typeof js.serverStorageId, "string", "the reference server announces a storageId")
  assert.equal(js.serverPeerMetadata?.isEphemeral, false)

  // 2. The native client creates a document through the reference server: exit 0.
  const native = store()
  const url = await createDoc({ title: "native on the reference server" }, native)

  // 3. Its store records the local heads as acknowledged under that storageId.
  const status = await statusJson(url, offline(native))
  assert.deepEqual(Object.keys(status.acknowledged), [js.serverStorageId], "acknowledged by the reference server")
  assertSameHeads(status.acknowledged[js.serverStorageId], status.local_heads, "the acknowledged heads are the local heads")
})

// Intent: document ids made by the native client are what automerge-repo expects of a document
// id: 16 bytes that form an RFC 4122 version 4 UUID, as the JS `generateAutomergeUrl` makes them.
// automerge-repo 1.x, which the reference server runs, rejects any other id ("Invalid
// AutomergeUrl") and never answers messages about it.
referenceTest("2. native document ids are version 4 UUIDs", async ({ store, offline }) => {
  // 1. Eight documents, made without a server (16 random bytes pass the check below with odds
  //    1/64, and automerge-repo 1.x's check, versions 1 to 5, with odds 5/64).
  const native = offline(store())
  const urls = []
  for (let i = 0; i < 8; i++) urls.push(await createDoc({ i }, native))

  // 2. Each id: version nibble 4, variant bits 10.
  for (const url of urls) {
    const bytes = parseAutomergeUrl(url).binaryDocumentId
    const hex = Buffer.from(bytes).toString("hex")
    assert.equal(bytes.length, 16, `${url} has 16 bytes`)
    assert.equal(bytes[6] >> 4, 4, `${url} (${hex}): UUID version nibble`)
    assert.equal(bytes[8] >> 6, 0b10, `${url} (${hex}): UUID variant bits`)
  }
})

// Intent: two native stores share a document through the reference server: the second fetches
// and edits it, and the first then sees the edit.
referenceTest("3. a second native store fetches and edits; the first sees the edit", async ({ store }) => {
  // 1. Store A creates a document through the reference server.
  const a = store()
  const url = await createDoc({ title: "shared", items: ["from A"] }, a)

  // 2. Store B, which has never seen it, fetches it.
  const b = store()
  assert.deepEqual(await getJson(url, b), { title: "shared", items: ["from A"] })

  // 3. B edits it (exit 0: acknowledged by the reference server).
  await setPath(url, "items.-", "from B", b)
  await setPath(url, "editor", "B", b)

  // 4. A syncs with the reference server and shows B's edits; both stores hold the same heads.
  const expected = { title: "shared", items: ["from A", "from B"], editor: "B" }
  assert.deepEqual(await getJson(url, a), expected)
  const [statusA, statusB] = [await statusJson(url, a), await statusJson(url, b)]
  assertSameHeads(statusA.local_heads, statusB.local_heads, "A and B have the same heads")
})

// Intent: the JS client on the reference server sees a native document and a native edit to it,
// both when it first finds the document and live afterwards.
referenceTest("4. a JS client on the reference server sees the native document and its edit", async ({ connect, store }) => {
  // 1. Store A creates a document and edits it, both through the reference server.
  const a = store()
  const url = await createDoc({ title: "native", n: 1 }, a)
  await setPath(url, "n", 2, a)

  // 2. A JS client finds it with the edit, at the native heads.
  const js = await connect()
  const handle = await find(js, url)
  assert.deepEqual(plain(handle.doc()), { title: "native", n: 2 })
  assertSameHeads(hexHeads(handle), (await statusJson(url, a)).local_heads, "JS has the native heads")

  // 3. Another native edit reaches the open JS handle live.
  const jsSees = waitForEvent(handle, "change", {
    checkNow: () => handle.doc().n === 3,
    pred: () => handle.doc().n === 3,
    ms: WAIT_MS,
    what: () => `the JS handle receives n = 3 (has ${JSON.stringify(plain(handle.doc()))})`,
  })
  await setPath(url, "n", 3, a)
  await jsSees

  // 4. A JS edit comes back to the native store.
  handle.change(d => {
    d.fromJs = true
  })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })
  assert.deepEqual(await getJson(url, a), { title: "native", n: 3, fromJs: true })
})

// Intent: a native store that is already in step with the reference server syncs again without
// trouble. The reference server keeps its sync state for a peer across connections (the native
// client joins with the same peer id each time), so it may have nothing to send; `get` and
// `status` must still finish, not wait for a message that never comes.
referenceTest("5. commands on a store already in step with the reference server succeed", async ({ connect, store }) => {
  // 1. JS creates a document on the reference server (a JS-made id, valid for automerge-repo 1.x).
  const js = await connect()
  const handle = js.repo.create({ title: "in step" })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })

  // 2. A fresh native store fetches it.
  const native = store()
  assert.deepEqual(await getJson(handle.url, native), { title: "in step" })

  // 3. Nothing changes; get and status run again, each exits 0 with the same document and heads.
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await getJson(handle.url, native), { title: "in step" }, `get #${i + 2}`)
  }
  assertSameHeads((await statusJson(handle.url, native)).local_heads, hexHeads(handle), "status shows the JS heads")
})

// Intent: asking the reference server for a document nobody has ends promptly with a non-zero
// exit: it answers doc-unavailable, and the client reports that rather than waiting out --timeout.
referenceTest("6. get of an unknown document exits non-zero", async ({ store }) => {
  // 1. A valid URL (a JS-made id) that nobody created.
  const url = generateAutomergeUrl()

  // 2. get through the reference server: non-zero, stderr says why, well within the 20 s timeout.
  const started = Date.now()
  const run = await runCli(["get", url], { ...store(), timeoutSecs: 20 })
  const took = Date.now() - started
  assert.notEqual(run.code, 0, `get of an unknown document fails:\n${describeRun(run)}`)
  assert.equal(run.stdout, "", "nothing on stdout")
  assert.match(run.stderr, /^syncline: .+/m)
  assert.ok(took < 10_000, `answered well before the 20 s --timeout (took ${took} ms):\n${describeRun(run)}`)
})
