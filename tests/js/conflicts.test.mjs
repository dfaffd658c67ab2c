// The timestamp conflict policy with the real JavaScript client: when two clients write the same
// key concurrently and Automerge's own winner (by operation id) is the earlier write, the server
// settles the key to the later-stamped value, and both clients end up showing it.
//
// Run: node --test --test-concurrency=1 tests/js/
import { test } from "node:test"
import assert from "node:assert/strict"
import * as Automerge from "@automerge/automerge"
import { connectClient, sameHeads, serverAcknowledged, serverForFile, waitForEvent } from "./server.mjs"

const WAIT_MS = 10_000

const shared = serverForFile("syncline-js-conflicts-")

/** Resolves once `handle`'s document satisfies `pred`, re-checking on every change. */
function until(handle, pred, what) {
  return waitForEvent(handle, "change", { checkNow: () => pred(handle.doc()), pred: () => pred(handle.doc()), ms: WAIT_MS, what })
}

test("the later-stamped write wins even where Automerge's own order picks the other", { timeout: 60_000 }, async () => {
  const host = await connectClient(shared.server.url)
  const phone = await connectClient(shared.server.url)
  try {
    // 1. The host creates the listing; the phone opens it.
    const hostHandle = host.repo.create({ price: 100, edits: 0 })
    await serverAcknowledged(host, hostHandle, { ms: WAIT_MS })
    const phoneHandle = await phone.repo.find(hostHandle.url)
    assert.equal(phoneHandle.doc().price, 100)

    // 2. In one tick, so neither sees the other's change first: the host, after a long run of
    //    edits that gives its operations the higher counter, sets the price stamped at T; the
    //    phone sets it stamped a minute later.
    const t = Math.floor(Date.now() / 1000)
    for (let n = 1; n <= 30; n++) hostHandle.change(d => { d.edits = n }, { time: t - 60 })
    hostHandle.change(d => { d.price = 150 }, { time: t })
    phoneHandle.change(d => { d.price = 180 }, { time: t + 60 })

    // 3. Without the server's policy, Automerge alone would show the host's earlier write.
    const merged = Automerge.merge(Automerge.clone(hostHandle.doc()), Automerge.clone(phoneHandle.doc()))
    assert.equal(merged.price, 150, "Automerge's own winner is the earlier write (the test's premise)")

    // 4. Through the server both clients converge on the later write.
    await until(hostHandle, d => d.price === 180, "host shows the later price")
    await until(phoneHandle, d => d.price === 180, "phone shows the later price")
    await waitForEvent(hostHandle, "change", {
      checkNow: () => sameHeads(hostHandle.heads(), phoneHandle.heads()),
      pred: () => sameHeads(hostHandle.heads(), phoneHandle.heads()),
      ms: WAIT_MS,
      what: "host and phone at the same heads",
    })
    assert.deepEqual(JSON.parse(JSON.stringify(hostHandle.doc())), JSON.parse(JSON.stringify(phoneHandle.doc())))
    assert.equal(hostHandle.doc().edits, 30)

    // 5. The conflict is settled in the document itself, not just in the view: one value left.
    assert.equal(Automerge.getConflicts(hostHandle.doc(), "price"), undefined)
    await shared.server.waitForStderr(/conflict settled by the latest write/, WAIT_MS)
  } finally {
    await host.close()
    await phone.close()
  }
})
