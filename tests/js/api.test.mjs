// The HTTP API with the real automerge-repo JavaScript client: a document created and changed
// over HTTP reaches a connected client as ordinary sync, and the client's own change is what the
// API reads next.
//
// Run: node --test --test-concurrency=1 tests/js/api.test.mjs
import { test } from "node:test"
import assert from "node:assert/strict"
import { apiRequest, connectClient, serverForFile, waitForEvent, withTimeout } from "./server.mjs"

const WAIT_MS = 10_000

const shared = serverForFile("syncline-js-api-")

const api = (method, path, body) => apiRequest(shared.server, method, path, body, { ms: WAIT_MS })

const plain = value => JSON.parse(JSON.stringify(value))

test("a change made over HTTP reaches a connected JavaScript client", { timeout: 60_000 }, async () => {
  // 1. Created over HTTP, found by the JavaScript client through sync.
  const created = await api("POST", "/api/documents", { stock: 5, sku: "A-1" })
  assert.equal(created.status, 201)
  const client = await connectClient(shared.server.url)
  try {
    const handle = await withTimeout(client.repo.find(created.body.url), WAIT_MS, "repo.find")
    assert.deepEqual(plain(handle.doc()), { stock: 5, sku: "A-1" })

    // 2. Changed over HTTP: the client gets a change event with the new value, unasked.
    const sees = waitForEvent(handle, "change", {
      pred: () => handle.doc().stock === 4,
      ms: WAIT_MS,
      what: "the client's change event carrying the HTTP change",
    })
    const changed = await api("POST", `/api/documents/${created.body.id}/changes`, {
      ops: [{ op: "set", path: "/stock", value: 4 }, { op: "set", path: "/tags", value: ["sale"] }],
    })
    assert.equal(changed.status, 200)
    await sees
    assert.deepEqual(plain(handle.doc()), { stock: 4, sku: "A-1", tags: ["sale"] })

    // 3. The client's change is what the API reads once the server has it.
    handle.change(d => {
      d.stock = 3
    })
    const deadline = Date.now() + WAIT_MS
    let read
    for (;;) {
      read = await api("GET", `/api/documents/${created.body.id}`)
      if (read.body.state?.stock === 3) break
      if (Date.now() > deadline) assert.fail(`the API never read the client's change: ${JSON.stringify(read)}`)
      await waitForEvent(client.adapter, "message", { ms: WAIT_MS, what: "the server's next sync message" })
    }
    assert.deepEqual(read.body.state, { stock: 3, sku: "A-1", tags: ["sale"] })
  } finally {
    await client.close()
  }
})
