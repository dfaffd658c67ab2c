// The inspector page (/inspect) in real headless Chromium (Debian's, driven by playwright-core)
// against the real server binary: the page shows a document written over the HTTP API, steps
// back through its history version by version, and follows changes that a real automerge-repo
// client makes over WebSocket sync, live.
//
// Run: node --test --test-concurrency=1 tests/js/inspect.test.mjs   (Chromium from
// SYNCLINE_CHROMIUM, default /usr/bin/chromium; the screenshot goes to SYNCLINE_ARTIFACTS,
// default target/artifacts/)
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import fs from "node:fs"
import * as Automerge from "@automerge/automerge"
import { launchChromium, saveScreenshot } from "./browser.mjs"
import {
  apiRequest,
  connectClient,
  makeTempDir,
  serverAcknowledged,
  startServer,
  stopAllServers,
  withTimeout,
} from "./server.mjs"

const WAIT_MS = 10_000 // bound for every single condition we wait for
const TEST_TIMEOUT_MS = 60_000

let dataDir
let server
let browser
const clients = []

before(async () => {
  dataDir = makeTempDir("syncline-js-inspect-")
  server = await startServer({ dataDir })
  browser = await launchChromium({ ms: WAIT_MS })
})

after(async () => {
  try {
    for (const client of clients) await client.close()
    await browser?.close()
    if (server?.isRunning()) await server.stop()
  } finally {
    await stopAllServers()
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true })
  }
})

// ---------------------------------------------------------------------------------------------
// The HTTP API

/** One API request that must succeed; its JSON answer. */
async function call(method, route, body) {
  const { status, body: answer } = await apiRequest(server, method, route, body, { ms: WAIT_MS })
  assert.ok(status >= 200 && status < 300, `${method} ${route} answered ${status}: ${JSON.stringify(answer)}`)
  return answer
}

const plain = value => JSON.parse(JSON.stringify(value))

/** A copy of `state` whose top-level `key` holds `value`: what one version leaves for the next. */
const withKey = (state, key, value) => ({ ...plain(state), [key]: value })

// ---------------------------------------------------------------------------------------------
// The page

/** JSON with keys sorted at every level, so that equal values compare equal as text. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort()
    return `{${keys.map(k => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`
  }
  return JSON.stringify(value)
}

/** What the page shows now: the version label, the JSON in #state, the stream's status. */
const view = page =>
  page.evaluate(() => ({
    version: document.querySelector("#version").textContent,
    state: document.querySelector("#state").textContent,
    busy: document.querySelector("#state").getAttribute("aria-busy"),
    live: document.querySelector("#live").textContent,
    notice: document.querySelector("#notice").textContent,
  }))

/**
 * Waits until the page stands on `version` (the #version text) and #state, read (at `heads`, if
 * given), holds `state`; then checks #state once more with a readable diff.
 */
async function expectView(page, version, state, what, heads) {
  const want = canonical(state)
  const wantHeads = heads ? [...heads].sort().join(",") : null
  try {
    await page.waitForFunction(
      ({ version, want, wantHeads, canonicalSource }) => {
        const canonical = new Function(`return (${canonicalSource})`)()
        const shown = document.querySelector("#state")
        if (document.querySelector("#version").textContent !== version) return false
        if (shown.getAttribute("aria-busy") === "true") return false
        if (wantHeads !== null && shown.dataset.heads !== wantHeads) return false
        try {
          return canonical(JSON.parse(shown.textContent)) === want
        } catch {
          return false
        }
      },
      { version, want, wantHeads, canonicalSource: canonical.toString() },
      { timeout: WAIT_MS, polling: 50 }
    )
  } catch (e) {
    const now = await view(page)
    e.message += `\n--- waiting for ${what}: ${version}, ${want}, heads ${wantHeads}` +
      `\n--- page shows: ${JSON.stringify(now)}`
    throw e
  }
  assert.deepEqual(JSON.parse((await view(page)).state), plain(state), what)
}

/** A new tab on the inspector at `doc`, recording the errors the page reports. */
async function openInspector(doc) {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } })
  const problems = []
  page.on("pageerror", err => problems.push(`page error: ${err.message}`))
  page.on("console", msg => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text()} (${msg.location().url})`)
  })
  page.setDefaultTimeout(WAIT_MS)
  await page.goto(`http://127.0.0.1:${server.port}/inspect?doc=${doc}`, { timeout: WAIT_MS })
  return { page, problems }
}

async function connect() {
  const client = await connectClient(server.url, { ms: WAIT_MS })
  clients.push(client)
  return client
}

function screenshot(page) {
  return saveScreenshot(page, "inspector.png", { ms: WAIT_MS })
}

// ---------------------------------------------------------------------------------------------

test(
  "the inspector shows a document, steps back through its versions and follows a sync client live",
  { timeout: TEST_TIMEOUT_MS },
  async () => {
    // 1. A document written over HTTP in five versions, each one change, remembered as written.
    const versions = [{ name: "Seaside loft", price: 100, amenities: ["wifi"] }]
    const created = await call("POST", "/api/documents", versions[0])
    const id = created.id
    const edits = [
      { ops: [{ op: "set", path: "/price", value: 120 }], message: "raise the price" },
      { ops: [{ op: "insert", path: "/amenities/1", value: "sauna" }] },
      { ops: [{ op: "set", path: "/nights/2026-12-24", value: { price: 180, blocked: false } }] },
      { ops: [{ op: "delete", path: "/amenities/0" }], message: "no more wifi" },
    ]
    const written = [
      v => withKey(v, "price", 120),
      v => withKey(v, "amenities", [...v.amenities, "sauna"]),
      v => withKey(v, "nights", { "2026-12-24": { price: 180, blocked: false } }),
      v => withKey(v, "amenities", v.amenities.slice(1)),
    ]
    for (const [i, edit] of edits.entries()) {
      await call("POST", `/api/documents/${id}/changes`, edit)
      versions.push(written[i](versions.at(-1)))
    }
    assert.deepEqual((await call("GET", `/api/documents/${id}`)).state, versions.at(-1))

    // 2. The page opened on it shows the latest version, the document in the list and a live
    //    event stream.
    const { page, problems } = await openInspector(id)
    await expectView(page, "version 5 of 5 (latest)", versions[4], "the latest version at first")
    await page.locator("#live", { hasText: /^live$/ }).waitFor()
    const row = page.locator(`#documents [data-doc="${id}"]`)
    await row.locator(".changes", { hasText: /^5$/ }).waitFor()
    assert.equal(await page.locator("#documents tr.selected").getAttribute("data-doc"), id)

    // 3. Back, step by step: each earlier version is what was written then.
    for (let i = 3; i >= 0; i--) {
      await page.click("#back")
      await expectView(page, `version ${i + 1} of 5`, versions[i], `version ${i + 1} after back`)
    }
    assert.ok(await page.locator("#back").isDisabled(), "back is disabled at the first version")
    assert.match(await page.locator("#change").textContent(), /none \(first change\)/)

    // 4. The slider reaches any version, and forward steps on from there.
    await page.locator("#timeline").fill("2")
    await expectView(page, "version 3 of 5", versions[2], "version 3 from the slider")
    await page.click("#forward")
    await expectView(page, "version 4 of 5", versions[3], "version 4 after forward")
    await page.locator("#timeline").fill("0")
    await expectView(page, "version 1 of 5", versions[0], "version 1 from the slider")

    // 5. A real automerge-repo client changes the document: the page, standing on version 1,
    //    keeps its place and the timeline grows by the new change.
    const client = await connect()
    const handle = await withTimeout(client.repo.find(created.url), WAIT_MS, "the client to find the document")
    assert.deepEqual(plain(handle.doc()), versions[4])
    handle.change(d => {
      d.price = 150
    })
    versions.push(withKey(versions[4], "price", 150))
    await serverAcknowledged(client, handle, { ms: WAIT_MS })
    await expectView(page, "version 1 of 6", versions[0], "version 1 kept while the timeline grew")

    // 6. Latest shows the client's change.
    await page.click("#latest")
    await expectView(page, "version 6 of 6 (latest)", versions[5], "the client's change after latest")

    // 7. While on the latest version the page follows a new change by itself, and the list
    //    shows the connected client as a peer of the document.
    handle.change(d => {
      d.guests = 4
    })
    versions.push(withKey(versions[5], "guests", 4))
    await serverAcknowledged(client, handle, { ms: WAIT_MS })
    await expectView(page, "version 7 of 7 (latest)", versions[6], "the client's second change, followed")
    await row.locator(".changes", { hasText: /^7$/ }).waitFor()
    await row.locator(".peers", { hasText: /^1$/ }).waitFor()
    await page.locator("#bridges", { hasText: "No bridges are configured." }).waitFor()

    await screenshot(page)
    assert.deepEqual(problems, [], "the page logged no errors")
    await page.close()
  }
)

test(
  "concurrent changes: the version after both holds both, read at both heads",
  { timeout: TEST_TIMEOUT_MS },
  async () => {
    // 1. A document, then two concurrent changes made by one client on two forks of it (two
    //    actors, both changes on the first version), then one change over HTTP after both.
    const base = { title: "branches" }
    const created = await call("POST", "/api/documents", base)
    const client = await connect()
    const handle = await withTimeout(client.repo.find(created.url), WAIT_MS, "the client to find the document")
    handle.update(doc => {
      const left = Automerge.change(Automerge.clone(doc, { actor: "aa".repeat(16) }), d => {
        d.left = 1
      })
      const right = Automerge.change(Automerge.clone(doc, { actor: "bb".repeat(16) }), d => {
        d.right = 2
      })
      return Automerge.merge(Automerge.merge(doc, left), right)
    })
    await serverAcknowledged(client, handle, { ms: WAIT_MS })
    await call("POST", `/api/documents/${created.id}/changes`, {
      ops: [{ op: "set", path: "/after", value: true }],
    })

    // 2. The log holds them in some order; both branches start at the first version.
    const { changes } = await call("GET", `/api/documents/${created.id}/history`)
    assert.equal(changes.length, 4)
    const [first, one, other] = changes
    assert.deepEqual(one.deps, [first.hash])
    assert.deepEqual(other.deps, [first.hash])
    const keyOf = entry => (entry.author === "aa".repeat(16) ? { left: 1 } : { right: 2 })
    const both = { ...base, left: 1, right: 2 }

    // 3. Back from the latest: the version after both branches is read at both heads; the one
    //    before holds the first logged branch only.
    const { page, problems } = await openInspector(created.id)
    await expectView(page, "version 4 of 4 (latest)", { ...both, after: true }, "the latest version")
    await page.click("#back")
    await expectView(page, "version 3 of 4", both, "the version after both branches", [one.hash, other.hash])
    await page.click("#back")
    await expectView(page, "version 2 of 4", { ...base, ...keyOf(one) }, "one branch", [one.hash])
    await page.click("#back")
    await expectView(page, "version 1 of 4", base, "the first version", [first.hash])
    assert.deepEqual(problems, [], "the page logged no errors")
    await page.close()
  }
)
