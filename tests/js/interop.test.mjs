// Interop: the real automerge-repo 2.5.6 JavaScript client (WebSocketClientAdapter 2.5.6,
// automerge 3.5.0) against syncline-server, over the automerge-repo WebSocket protocol
// (docs/PROTOCOL.md). One server per file, on a fresh data directory; the restart cases replace it
// with a new process on the same data directory.
//
// Run: node --test --test-concurrency=1 tests/js/   (the server binary comes from
// SYNCLINE_SERVER_BIN, default target/debug/syncline-server)
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import fs from "node:fs"
import { generateAutomergeUrl, parseAutomergeUrl } from "@automerge/automerge-repo"
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

const WAIT_MS = 10_000 // bound for every single condition we wait for
const TEST_TIMEOUT_MS = 60_000
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

let dataDir
let server

before(async () => {
  dataDir = makeTempDir("syncline-js-interop-")
  server = await startServer({ dataDir })
})

after(async () => {
  try {
    // The last server must also shut down cleanly: SIGTERM, exit status 0 within 10 s.
    if (server?.isRunning()) await server.stop()
  } finally {
    await stopAllServers()
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true })
  }
})

const plain = value => JSON.parse(JSON.stringify(value))

function tail(text, lines = 150) {
  const all = text.split("\n")
  return all.length > lines ? [`(... ${all.length - lines} earlier lines)`, ...all.slice(-lines)].join("\n") : text
}

/**
 * A test case against the shared server. The body gets helpers that track what it opens:
 * `connect()` opens a client on the current server (closed after the case), `restart(how)` stops
 * the server with SIGTERM or SIGKILL and starts a new one on the same data directory. On failure
 * the stderr of every server process the case used is appended to the error.
 */
function serverTest(name, body) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async t => {
    // A server that died in an earlier case (which failed for it) is replaced, so that one
    // failure does not cascade into every later case.
    if (!server.isRunning()) server = await startServer({ dataDir })
    const clients = []
    const used = [{ server, from: server.stderr().length }]
    const ctx = {
      t,
      async connect(opts) {
        const client = await connectClient(server.url, { ms: WAIT_MS, ...opts })
        clients.push(client)
        return client
      },
      async restart(how) {
        if (how === "SIGTERM") await server.stop()
        else if (how === "SIGKILL") await server.kill()
        else throw new Error(`restart: unknown signal ${how}`)
        server = await startServer({ dataDir })
        used.push({ server, from: 0 })
        return server
      },
    }
    try {
      await body(ctx)
      // The server must outlive every case (the restart cases leave a new one running).
      if (!server.isRunning()) {
        const { code, signal } = await server.exited
        throw new Error(`syncline-server pid ${server.pid} exited unexpectedly (code ${code}, signal ${signal})`)
      }
    } catch (e) {
      const logs = used
        .map(({ server: s, from }) => `--- syncline-server pid ${s.pid} (${s.url}) stderr:\n${tail(s.stderr().slice(from))}`)
        .join("\n")
      if (e instanceof Error) e.message += `\n${logs}`
      throw e
    } finally {
      await Promise.all(clients.map(c => c.close().catch(() => {})))
    }
  })
}

/** `repo.find(url)`, bounded. */
function find(client, url, what = "repo.find(url)") {
  return withTimeout(client.repo.find(url), WAIT_MS, `${what} on ${client.peerId}`)
}

/** A creates a document with an initial value and one more change, and waits for the server's ack. */
async function createAcknowledged(a, initial, change) {
  const handle = a.repo.create(initial)
  handle.change(change)
  await serverAcknowledged(a, handle, { ms: WAIT_MS })
  return handle
}

// ---------------------------------------------------------------------------------------------

// Intent: a new document created by the JS client is uploaded and the server acknowledges exactly
// its heads, as seen through automerge-repo's own "saved on the server" signal.
serverTest("a. create: the server acknowledges the new document's heads", async ({ connect }) => {
  // 1. Client A connects; the server answers join with peer, announcing a storageId.
  const a = await connect()
  assert.equal(typeof a.serverStorageId, "string", "server peerMetadata.storageId is a string")
  assert.match(a.serverStorageId, UUID, "server storageId is a UUID")
  assert.equal(a.serverPeerMetadata?.isEphemeral, false, "server peerMetadata.isEphemeral is false")

  // 2. A creates a document with repo.create({...}) and makes one more change.
  const handle = a.repo.create({ title: "created by A", items: [] })
  const headsAfterCreate = handle.heads()
  handle.change(d => {
    d.items.push("first item")
  })
  const heads = handle.heads()
  assert.equal(heads.length, 1)
  assert.ok(!sameHeads(heads, headsAfterCreate), "the change moved the heads")

  // 3. Wait until the server's sync info for this handle (keyed by its storageId) shows heads.
  const acked = await serverAcknowledged(a, handle, { ms: WAIT_MS })

  // 4. The acknowledged heads are exactly the handle's heads.
  assert.deepEqual([...acked].sort(), [...handle.heads()].sort())
  assert.deepEqual(handle.heads(), heads, "nothing else changed the document meanwhile")
})

// Intent: a second, independent client finds the uploaded document by URL and gets the same content.
serverTest("b. find: a second client finds the document by URL", async ({ connect }) => {
  // 1. Client A creates a document and the server acknowledges it.
  const a = await connect()
  const hA = await createAcknowledged(a, { title: "shared", items: ["one"] }, d => {
    d.items.push("two")
  })

  // 2. Client B: a separate Repo on a separate connection, with its own peer id.
  const b = await connect()
  assert.notEqual(b.peerId, a.peerId)
  assert.notEqual(b.adapter.socket, a.adapter.socket)

  // 3. B finds the document by its URL.
  const hB = await find(b, hA.url)

  // 4. B sees the same content and heads as A.
  assert.deepEqual(plain(hB.doc()), { title: "shared", items: ["one", "two"] })
  assert.deepEqual(plain(hB.doc()), plain(hA.doc()))
  assert.ok(sameHeads(hB.heads(), hA.heads()), "B has A's heads")

  // 5. B's view of the server agrees: the server reports the same heads to B.
  await serverAcknowledged(b, hB, { ms: WAIT_MS, what: "server heads as seen by B" })
})

// Intent: live edits flow both ways between two clients through the server.
serverTest("c. live edits propagate both ways through the server", async ({ connect }) => {
  // 1. A creates a document (acknowledged); B finds it.
  const a = await connect()
  const hA = await createAcknowledged(a, { title: "live", items: [] }, d => {
    d.items.push("from A")
  })
  const b = await connect()
  const hB = await find(b, hA.url)
  assert.deepEqual(plain(hB.doc()).items, ["from A"])

  // 2. A changes the title; B gets a change event carrying it.
  const bSees = waitForEvent(hB, "change", {
    pred: () => hB.doc().title === "edited by A",
    ms: WAIT_MS,
    what: "B's change event with A's edit",
  })
  hA.change(d => {
    d.title = "edited by A"
  })
  await bSees

  // 3. B appends an item; A gets a change event carrying it.
  const aSees = waitForEvent(hA, "change", {
    pred: () => hA.doc().items.includes("from B"),
    ms: WAIT_MS,
    what: "A's change event with B's edit",
  })
  hB.change(d => {
    d.items.push("from B")
  })
  await aSees

  // 4. Both converge on the same document, which the server acknowledges to both.
  assert.deepEqual(plain(hA.doc()), { title: "edited by A", items: ["from A", "from B"] })
  await serverAcknowledged(a, hA, { ms: WAIT_MS, what: "server acknowledged the final heads to A" })
  await serverAcknowledged(b, hB, { ms: WAIT_MS, what: "server acknowledged the final heads to B" })
  assert.ok(sameHeads(hA.heads(), hB.heads()), "A and B have the same heads")
  assert.deepEqual(plain(hB.doc()), plain(hA.doc()))
})

// Intent: ephemeral messages reach every other client on the document exactly once and never come
// back to their author, although each receiving client re-sends what it receives to the server.
serverTest("d. ephemeral messages are relayed once, never back to the sender", async ({ connect }) => {
  // 1. A creates a document (acknowledged); B finds it, so both are attached to it on the server.
  const a = await connect()
  const hA = await createAcknowledged(a, { title: "ephemeral" }, d => {
    d.title = "ephemeral!"
  })
  const b = await connect()
  const hB = await find(b, hA.url)
  const docId = hA.documentId

  // 2. Record every ephemeral-message event on both handles, and every ephemeral frame that
  //    reaches each adapter (the frames are counted before the client's own de-duplication).
  const eventsA = []
  const eventsB = []
  hA.on("ephemeral-message", e => eventsA.push({ senderId: e.senderId, message: plain(e.message) }))
  hB.on("ephemeral-message", e => eventsB.push({ senderId: e.senderId, message: plain(e.message) }))
  const framesTo = client =>
    client.adapter.received.filter(m => m.type === "ephemeral" && m.documentId === docId)
  assert.equal(framesTo(a).length + framesTo(b).length, 0, "no ephemeral frames before the first broadcast")

  // 3. A broadcasts; B receives it, with A as sender and the payload intact.
  const first = { cursor: 42, user: "a", nonce: Math.random().toString(36).slice(2) }
  const bGotFirst = waitForEvent(hB, "ephemeral-message", {
    pred: e => e.senderId === a.peerId,
    ms: WAIT_MS,
    what: "B's ephemeral-message from A",
  })
  hA.broadcast(first)
  const eFirst = await bGotFirst
  assert.deepEqual(plain(eFirst.message), first)

  // 4. B broadcasts its own message and A receives it. B re-sent A's message to the server before
  //    broadcasting, so by now any echo of A's message to A (or second copy to B) has arrived.
  const second = { cursor: 7, user: "b", nonce: Math.random().toString(36).slice(2) }
  const aGotSecond = waitForEvent(hA, "ephemeral-message", {
    pred: e => e.senderId === b.peerId,
    ms: WAIT_MS,
    what: "A's ephemeral-message from B",
  })
  hB.broadcast(second)
  assert.deepEqual(plain((await aGotSecond).message), second)

  // 5. A broadcasts once more and B receives it: by now A has re-sent B's message too, so any echo
  //    of B's message to B has arrived as well.
  const third = { cursor: 43, user: "a", nonce: Math.random().toString(36).slice(2) }
  const bGotThird = waitForEvent(hB, "ephemeral-message", {
    pred: e => e.senderId === a.peerId && e.message?.nonce === third.nonce,
    ms: WAIT_MS,
    what: "B's second ephemeral-message from A",
  })
  hA.broadcast(third)
  await bGotThird

  // 6. Events: B saw A's two messages once each; A saw B's once; nobody saw their own.
  assert.deepEqual(eventsB, [
    { senderId: a.peerId, message: first },
    { senderId: a.peerId, message: third },
  ])
  assert.deepEqual(eventsA, [{ senderId: b.peerId, message: second }])

  // 7. Frames: exactly one relayed frame per message, addressed to the receiver, with the
  //    author's senderId, sessionId and count unchanged; none back to the author.
  const toB = framesTo(b)
  const toA = framesTo(a)
  assert.deepEqual(
    toB.map(m => m.senderId),
    [a.peerId, a.peerId],
    `B got exactly A's two messages: ${JSON.stringify(toB.map(({ data, ...m }) => m))}`
  )
  assert.deepEqual(
    toA.map(m => m.senderId),
    [b.peerId],
    `A got exactly B's one message: ${JSON.stringify(toA.map(({ data, ...m }) => m))}`
  )
  for (const m of toB) assert.equal(m.targetId, b.peerId)
  for (const m of toA) assert.equal(m.targetId, a.peerId)
  assert.equal(toB[0].sessionId, toB[1].sessionId, "A's session id is kept")
  assert.ok(toB[1].count > toB[0].count, "A's counts are kept and increase")
})

// Intent: asking for a document nobody has yields an answer (doc-unavailable) instead of a hang.
serverTest("e. an unknown document is reported unavailable", async ({ connect }) => {
  // 1. Client C connects (the server answered join, so the server is a peer to ask).
  const c = await connect()
  assert.ok(c.repo.peers.includes(c.serverPeerId))

  // 2. A freshly generated, valid URL that nobody created.
  const url = generateAutomergeUrl()
  const { documentId } = parseAutomergeUrl(url)

  // 3. repo.find rejects as unavailable well before the client's own 60 s fallback timeout.
  await assert.rejects(find(c, url, "repo.find(unknown url)"), /unavailable/)
  assert.equal(c.repo.handles[documentId]?.state, "unavailable")

  // 4. It was the server that said so: a doc-unavailable frame for that id, addressed to C.
  const answers = c.adapter.received.filter(m => m.type === "doc-unavailable" && m.documentId === documentId)
  assert.equal(answers.length, 1, `one doc-unavailable frame: ${JSON.stringify(answers)}`)
  assert.equal(answers[0].senderId, c.serverPeerId)
  assert.equal(answers[0].targetId, c.peerId)
})

// Intent: a clean restart (SIGTERM, exit 0) keeps every acknowledged document and the storageId.
serverTest("f. after a SIGTERM restart the document loads with the same heads", async ({ connect, restart }) => {
  // 1. A creates a document with a change; the server acknowledges it.
  const a = await connect()
  const hA = await createAcknowledged(a, { title: "survives restart", n: 1 }, d => {
    d.n = 2
  })
  const heads = hA.heads()
  const content = plain(hA.doc())
  const storageId = a.serverStorageId

  // 2. SIGTERM while A is still connected: exit status 0 within 10 s (checked by stop()), and A
  //    sees its connection to the server end.
  const aDisconnected = waitForEvent(a.repo.networkSubsystem, "peer-disconnected", {
    ms: WAIT_MS,
    what: "A's peer-disconnected after SIGTERM",
  })
  const oldUrl = server.url
  await restart("SIGTERM")
  await aDisconnected

  // 3. The new server (same data dir, maybe another port) answers a new Repo C.
  const c = await connect()
  assert.equal(c.serverStorageId, storageId, `the storageId is stable across restarts (was on ${oldUrl})`)

  // 4. C finds the document: same heads and content as before the restart.
  const hC = await find(c, hA.url)
  assert.deepEqual(hC.heads(), heads)
  assert.deepEqual(plain(hC.doc()), content)
  await serverAcknowledged(c, hC, { ms: WAIT_MS, what: "restarted server reports the same heads" })
})

// Intent: an acknowledged document survives a crash (SIGKILL), including changes after creation.
serverTest("g. after a SIGKILL restart the acknowledged document survives", async ({ connect, restart }) => {
  // 1. A creates a document with a change; the server acknowledges it.
  const a = await connect()
  const hA = await createAcknowledged(a, { title: "survives crash", log: [] }, d => {
    d.log.push("created")
  })

  // 2. A makes a further change to the existing document; the server acknowledges it too.
  hA.change(d => {
    d.log.push("edited")
  })
  await serverAcknowledged(a, hA, { ms: WAIT_MS, what: "server acknowledged the follow-up change" })
  const heads = hA.heads()
  const content = plain(hA.doc())
  const storageId = a.serverStorageId

  // 3. SIGKILL right after the acknowledgement, with A still connected; A sees the connection end.
  const aDisconnected = waitForEvent(a.repo.networkSubsystem, "peer-disconnected", {
    ms: WAIT_MS,
    what: "A's peer-disconnected after SIGKILL",
  })
  await restart("SIGKILL")
  await aDisconnected

  // 4. A new Repo C on the restarted server finds the document with the acknowledged heads.
  const c = await connect()
  assert.equal(c.serverStorageId, storageId, "the storageId is stable across a crash")
  const hC = await find(c, hA.url)
  assert.deepEqual(hC.heads(), heads)
  assert.deepEqual(plain(hC.doc()), { title: "survives crash", log: ["created", "edited"] })
  assert.deepEqual(plain(hC.doc()), content)
})
