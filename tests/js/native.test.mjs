// Interop: the native client (the `syncline` CLI, a fresh process per command) and the real
// automerge-repo 2.5.6 JavaScript client edit the same documents through syncline-server and
// converge on the same heads and content. One server per file, on a fresh data directory; each
// case uses its own native store directories.
//
// Run: node --test --test-concurrency=1 tests/js/   (binaries from SYNCLINE_SERVER_BIN and
// SYNCLINE_CLIENT_BIN, default target/debug/syncline-server and target/debug/syncline)
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import fs from "node:fs"
import path from "node:path"
import {
  connectClient,
  makeTempDir,
  sameHeads,
  serverAcknowledged,
  startServer,
  stopAllServers,
  waitForEvent,
  withTimeout,
} from "./server.mjs"
import * as A from "@automerge/automerge"
import { generateAutomergeUrl } from "@automerge/automerge-repo"
import { createDoc, describeRun, getJson, runCli, setPath, startWatch, statusJson } from "./native.mjs"

const WAIT_MS = 10_000 // bound for every single condition we wait for
const TEST_TIMEOUT_MS = 90_000

let dataDir
let storesDir
let server

before(async () => {
  dataDir = makeTempDir("syncline-js-native-server-")
  storesDir = makeTempDir("syncline-js-native-stores-")
  server = await startServer({ dataDir })
})

after(async () => {
  try {
    if (server?.isRunning()) await server.stop()
  } finally {
    await stopAllServers()
    for (const dir of [dataDir, storesDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true })
  }
})

const plain = value => JSON.parse(JSON.stringify(value))

function tail(text, lines = 150) {
  const all = text.split("\n")
  return all.length > lines ? [`(... ${all.length - lines} earlier lines)`, ...all.slice(-lines)].join("\n") : text
}

/**
 * A test case against the shared server. The body gets `connect()` (a JS client on the server,
 * closed after the case), `store()` (options naming a fresh native store that syncs with the
 * server) and `offline(store)` (the same store without a server). On failure the server's stderr
 * from this case is appended to the error.
 */
function nativeTest(name, body) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async t => {
    if (!server.isRunning()) server = await startServer({ dataDir })
    const from = server.stderr().length
    const clients = []
    const ctx = {
      t,
      async connect() {
        const client = await connectClient(server.url, { ms: WAIT_MS })
        clients.push(client)
        return client
      },
      store() {
        return { store: fs.mkdtempSync(path.join(storesDir, "store-")), server: `${server.url}/` }
      },
      offline: ({ store }) => ({ store }),
    }
    try {
      await body(ctx)
    } catch (e) {
      if (e instanceof Error) e.message += `\n--- syncline-server (${server.url}) stderr:\n${tail(server.stderr().slice(from))}`
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

/**
 * Resolves once `pred(doc)` holds for the handle's document as plain JSON, now or after one of
 * its change events. (Strings the native client writes are Automerge string scalars, which
 * automerge 3 shows as `ImmutableString` objects rather than JS strings; as JSON they are strings.)
 */
function handleSees(handle, pred, what) {
  return waitForEvent(handle, "change", {
    checkNow: () => pred(plain(handle.doc())),
    pred: () => pred(plain(handle.doc())),
    ms: WAIT_MS,
    what: () => `${what} (the JS handle has ${JSON.stringify(plain(handle.doc()))})`,
  })
}

/**
 * The handle's heads as hex change hashes, the form `syncline status` prints (`handle.heads()`
 * gives them base58-encoded, as in URLs).
 */
const hexHeads = handle => A.getHeads(handle.doc())

/** Asserts that two lists of hex change hashes name the same set of heads. */
function assertSameHeads(actual, expected, message) {
  assert.ok(sameHeads(actual, expected), `${message}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`)
}

// ---------------------------------------------------------------------------------------------

// Intent: a document made by the JS client is read and edited by the native client, and each
// side sees the other's edits, ending on the same heads.
nativeTest("a. JS creates, native reads and edits, JS edits again, both agree", async ({ connect, store }) => {
  // 1. JS creates a document; the server acknowledges it.
  const js = await connect()
  const handle = js.repo.create({ title: "made in JS", n: 1 })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })

  // 2. The native client fetches it from the server and shows the JS content.
  const native = store()
  assert.deepEqual(await getJson(handle.url, native), { title: "made in JS", n: 1 })

  // 3. The native client sets a key (exit 0: acknowledged); the JS handle receives it.
  const jsSeesNative = handleSees(handle, d => d.fromNative === "hello", "the JS handle receives the native edit")
  await setPath(handle.url, "fromNative", "hello", native)
  await jsSeesNative

  // 4. JS changes another key; the server acknowledges it.
  handle.change(d => {
    d.n = 2
  })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })

  // 5. The native client shows both edits.
  assert.deepEqual(await getJson(handle.url, native), { title: "made in JS", n: 2, fromNative: "hello" })
  assert.deepEqual(plain(handle.doc()), { title: "made in JS", n: 2, fromNative: "hello" })

  // 6. The native status: the JS handle's heads, acknowledged by the server JS talks to.
  const status = await statusJson(handle.url, native)
  assert.equal(status.document, handle.url)
  assertSameHeads(status.local_heads, hexHeads(handle), "native local_heads are the JS handle's heads")
  assert.deepEqual(Object.keys(status.acknowledged), [js.serverStorageId], "acknowledged by the server's storageId")
  assertSameHeads(status.acknowledged[js.serverStorageId], hexHeads(handle), "the server acknowledged those heads")
})

// Intent: a document made by the native client is found by the JS client, and edits that each
// side makes without waiting for the other's merge on both.
nativeTest("b. native creates, JS finds it, both edit at once and converge", async ({ connect, store }) => {
  // 1. The native client creates a document through the server (exit 0: acknowledged).
  const native = store()
  const url = await createDoc({ title: "made natively", count: 0 }, native)
  assert.match(url, /^automerge:[1-9A-HJ-NP-Za-km-z]+$/)

  // 2. The JS client finds it by URL, with the same content and heads.
  const js = await connect()
  const handle = await find(js, url)
  assert.deepEqual(plain(handle.doc()), { title: "made natively", count: 0 })
  assertSameHeads((await statusJson(url, native)).local_heads, hexHeads(handle), "the JS client has the native heads")

  // 3. At the same time: JS sets `a`, the native client sets `b`; neither waits for the other.
  const nativeSet = setPath(url, "b", "from native", native)
  handle.change(d => {
    d.a = "from JS"
  })
  await nativeSet

  // 4. The JS handle gets the native edit and the server acknowledges the merged heads.
  await handleSees(handle, d => d.b === "from native", "the JS handle receives the native edit")
  await serverAcknowledged(js, handle, { ms: WAIT_MS })

  // 5. Both sides hold the same content and heads.
  const expected = { title: "made natively", count: 0, a: "from JS", b: "from native" }
  assert.deepEqual(plain(handle.doc()), expected)
  assert.deepEqual(await getJson(url, native), expected)
  assertSameHeads((await statusJson(url, native)).local_heads, hexHeads(handle), "native and JS heads agree")
})

// Intent: list inserts from both sides, concurrent and sequential, keep every element, in the
// same order on both sides; `-` appends with the dotted and the JSON Pointer syntax.
nativeTest("c. list: JS inserts, native appends, both end with every element", async ({ connect, store }) => {
  // 1. JS creates a document with a list; the native client fetches it.
  const js = await connect()
  const handle = js.repo.create({ items: ["js-1"] })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })
  const native = store()
  assert.deepEqual(await getJson(handle.url, native), { items: ["js-1"] })

  // 2. At the same time: JS appends "js-2", the native client appends "native-1" (`items.-`).
  const nativeAppend = setPath(handle.url, "items.-", "native-1", native)
  handle.change(d => {
    d.items.push("js-2")
  })
  await nativeAppend
  await handleSees(handle, d => d.items.includes("native-1"), "the JS handle receives the native append")
  await serverAcknowledged(js, handle, { ms: WAIT_MS })

  // 3. Both sides hold all three elements, in the same order, "js-1" first.
  const jsItems = plain(handle.doc()).items
  assert.deepEqual([...jsItems].sort(), ["js-1", "js-2", "native-1"])
  assert.equal(jsItems[0], "js-1")
  assert.deepEqual((await getJson(handle.url, native)).items, jsItems, "the same order on both sides")

  // 4. In turn: JS inserts at the front, then the native client appends with `/items/-`.
  handle.change(d => {
    d.items.unshift("js-0")
  })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })
  await setPath(handle.url, "/items/-", "native-last", native)
  await handleSees(handle, d => d.items.includes("native-last"), "the JS handle receives the second native append")

  // 5. Every element, in the order they were made; same heads on both sides.
  const final = ["js-0", ...jsItems, "native-last"]
  assert.deepEqual(plain(handle.doc()).items, final)
  assert.deepEqual((await getJson(handle.url, native)).items, final)
  assertSameHeads((await statusJson(handle.url, native)).local_heads, hexHeads(handle), "native and JS heads agree")
})

// Intent: an edit the native client makes offline forks the document from a JS edit made
// meanwhile; the next command that reaches the server merges the two (two heads on both sides).
nativeTest("d. an offline native edit merges with a concurrent JS edit", async ({ connect, store, offline }) => {
  // 1. JS creates a document; the native client fetches it.
  const js = await connect()
  const handle = js.repo.create({ title: "fork" })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })
  const native = store()
  await getJson(handle.url, native)
  const base = hexHeads(handle)

  // 2. The native client edits without a server: the change stays in its store.
  await setPath(handle.url, "offline", "native", offline(native))
  const offlineStatus = await statusJson(handle.url, offline(native))
  assert.ok(!sameHeads(offlineStatus.local_heads, base), "the offline edit moved the native heads")

  // 3. Meanwhile JS edits the same document; the server acknowledges it.
  handle.change(d => {
    d.online = "js"
  })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })

  // 4. The next native command with the server uploads the offline edit and fetches JS's.
  const expected = { title: "fork", offline: "native", online: "js" }
  assert.deepEqual(await getJson(handle.url, native), expected)

  // 5. JS receives the offline edit; both sides have the same two concurrent heads.
  await handleSees(handle, d => d.offline === "native", "the JS handle receives the offline edit")
  assert.deepEqual(plain(handle.doc()), expected)
  assert.equal(handle.heads().length, 2, "the two edits are concurrent: two heads")
  assertSameHeads((await statusJson(handle.url, native)).local_heads, hexHeads(handle), "native and JS heads agree")
})

// Intent: `syncline watch` prints the document once it arrives and a new line for each JS edit,
// each line with the JS handle's heads at that version, and exits 0 on SIGINT.
nativeTest("e. watch prints each JS edit as a JSON line", async ({ connect, store }) => {
  // 1. JS creates a document; the server acknowledges it.
  const js = await connect()
  const handle = js.repo.create({ n: 0 })
  await serverAcknowledged(js, handle, { ms: WAIT_MS })

  // 2. A native watch on a fresh store prints the document as fetched from the server.
  const watch = startWatch(handle.url, store())
  try {
    const first = await watch.nextLine(l => l.state?.n === 0, WAIT_MS, "the first version")
    assertSameHeads(first.heads, hexHeads(handle), "the first line has the JS heads")

    // 3. Each JS edit arrives as a new line, with the JS heads of that version.
    for (const n of [1, 2]) {
      handle.change(d => {
        d.n = n
      })
      const line = await watch.nextLine(l => l.state?.n === n, WAIT_MS, `the version with n = ${n}`)
      assert.deepEqual(line.state, { n })
      assertSameHeads(line.heads, hexHeads(handle), `the line for n = ${n} has the JS heads`)
    }
  } catch (e) {
    await watch.stop().catch(() => {})
    throw e
  }

  // 4. SIGINT ends the watch with exit status 0.
  const { code, signal } = await watch.stop()
  assert.equal(code, 0, `watch exit status after SIGINT (signal ${signal}); stderr:\n${watch.stderr()}`)
})

// Intent: a document id the server does not know makes `get` fail promptly, not hang.
nativeTest("f. get of an unknown document exits non-zero", async ({ store }) => {
  // 1. A valid URL that nobody created.
  const url = generateAutomergeUrl()

  // 2. A fresh store asks the server for it: a non-zero exit with a message on stderr, well
  //    within the client's --timeout (the server answers doc-unavailable).
  const started = Date.now()
  const run = await runCli(["get", url], { ...store(), timeoutSecs: 20 })
  const took = Date.now() - started
  assert.notEqual(run.code, 0, `get of an unknown document fails:\n${describeRun(run)}`)
  assert.equal(run.stdout, "", "nothing on stdout")
  assert.match(run.stderr, /^syncline: .+/m)
  assert.ok(took < 10_000, `answered well before the 20 s --timeout (took ${took} ms)`)
})
