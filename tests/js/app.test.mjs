// The calendar web app (/app/) in real headless Chromium (Debian's, driven by playwright-core)
// against the real server binary, which serves the app's embedded build: edits reach another
// browser live, an offline host and an online guest converge once the host is back, two guests
// asking for the same nights get exactly one booking, a stay booked and cancelled offline stays
// cancelled, and a reload with no network and no server shows the calendar from the service
// worker's files and IndexedDB. Every page must log no console error or warning.
//
// Run: node --test --test-concurrency=1 tests/js/app.test.mjs   (Chromium from SYNCLINE_CHROMIUM,
// default /usr/bin/chromium; screenshots go to SYNCLINE_ARTIFACTS, default target/artifacts/,
// as app-*.png)
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launchChromium, saveScreenshot } from "./browser.mjs"
import { apiRequest, serverForFile, startServer } from "./server.mjs"

const WAIT_MS = 15_000 // bound for every single condition we wait for
const TEST_TIMEOUT_MS = 90_000
// Keep one document per frame across navigations (no RenderDocument): Playwright's offline
// emulation sets navigator.onLine in the document it finds, so a page reloaded while offline
// would get a new document that reads online while every request still fails, which no offline
// browser does.
const CHROMIUM_ARGS = ["--disable-features=RenderDocument"]
const DESKTOP = { width: 1280, height: 900 }
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

const served = serverForFile("syncline-js-app-")
let browser
const contexts = []

before(async () => {
  browser = await launchChromium({ ms: WAIT_MS, extraArgs: CHROMIUM_ARGS })
})

after(async () => {
  for (const context of contexts) await context.close().catch(() => {})
  await browser?.close()
})

// ---------------------------------------------------------------------------------------------
// Dates: the calendars are made in UTC, and the tests work in next month, which is never past.

const today = new Date().toISOString().slice(0, 10)
const nextMonth = (() => {
  const [year, month] = today.split("-").map(Number)
  return new Date(Date.UTC(year, month, 1)).toISOString().slice(0, 7)
})()
/** The `day`th of next month. */
const day = n => `${nextMonth}-${String(n).padStart(2, "0")}`

// ---------------------------------------------------------------------------------------------
// Browsers and pages

/**
 * A new browser context (its own IndexedDB, like another device) and a page in it on `/app/`
 * plus `hash`, recording every console error or warning and every uncaught error.
 */
async function openApp(hash = "", options = { viewport: DESKTOP }) {
  const context = await browser.newContext(options)
  contexts.push(context)
  const page = await context.newPage()
  const problems = []
  page.on("pageerror", err => problems.push(`page error: ${err.message}`))
  page.on("console", msg => {
    if (msg.type() === "error" || msg.type() === "warning") {
      problems.push(`console ${msg.type()}: ${msg.text()} (${msg.location().url})`)
    }
  })
  page.setDefaultTimeout(WAIT_MS)
  await page.goto(`http://127.0.0.1:${served.server.port}/app/${hash}`, { timeout: WAIT_MS })
  return { context, page, problems }
}

/** Waits for the sync status pill to read `state` (offline, connecting, syncing, saved). */
async function expectStatus(page, state) {
  await waitForSelector(page, `#sync-status[data-state="${state}"]`, `status ${state}`)
}

/** Waits until the page shows `state` and its edits are in this device's IndexedDB too. */
async function expectSettled(page, state) {
  const selector = `#sync-status[data-state="${state}"][data-device="saved"]`
  await waitForSelector(page, selector, `status ${state}, saved on the device`)
}

/** Waits for `selector`; on a timeout, says what the status pill showed instead. */
async function waitForSelector(page, selector, what) {
  try {
    await page.locator(selector).waitFor()
  } catch (e) {
    const status = await page
      .evaluate(() => {
        const pill = document.querySelector("#sync-status")
        return pill ? `${pill.dataset.state}/${pill.dataset.device}: ${pill.textContent}` : "no status pill"
      })
      .catch(err => `unreadable (${err.message})`)
    e.message += `\n--- waiting for ${what} on ${page.url()}; the page shows ${status}`
    throw e
  }
}

/** Creates a calendar from the start page; returns its document id (the URL's hash names it). */
async function createCalendar(page, name) {
  await page.fill("#new-name", name)
  await page.selectOption("#new-currency", "EUR")
  await page.fill("#new-timezone", "UTC")
  await page.click("#create")
  await page.locator("#listing-name", { hasText: name }).waitFor()
  const hash = new URL(page.url()).hash
  assert.match(hash, /^#automerge:[1-9A-HJ-NP-Za-km-z]+$/)
  await expectSettled(page, "saved")
  return hash.slice("#automerge:".length)
}

async function setName(page, name) {
  await page.fill("#display-name", name)
  await page.press("#display-name", "Enter")
  await page.locator("#display-name").blur()
}

/** Shows the month of the tests' dates. */
async function showTestMonth(page) {
  await page.locator("#grid[data-month]").waitFor()
  while ((await page.getAttribute("#grid", "data-month")) < nextMonth) await page.click("#next-month")
  await page.locator(`#grid[data-month="${nextMonth}"]`).waitFor()
}

const night = (page, date) => page.locator(`#grid .night[data-date="${date}"]`)

async function setMode(page, mode) {
  await page.click(`#mode-${mode}`)
  await page.locator(`#mode-${mode}[aria-pressed="true"]`).waitFor()
}

/** As host: selects the nights from `first` to `last` (a click, then a shift-click). */
async function selectNights(page, first, last) {
  await setMode(page, "host")
  if (await page.isEnabled("#clear-selection")) await page.click("#clear-selection")
  await night(page, first).click()
  if (last !== first) await night(page, last).click({ modifiers: ["Shift"] })
  await page.locator("#selection-summary", { hasText: "selected" }).waitFor()
}

async function setPrice(page, first, last, price) {
  await selectNights(page, first, last)
  await page.fill("#price", String(price))
  await page.click("#set-price")
}

async function block(page, first, last) {
  await selectNights(page, first, last)
  await page.click("#block")
}

/** As guest: asks for a stay; resolves once the request is in the list. */
async function requestStay(page, guest, checkIn, checkOut) {
  await setMode(page, "guest")
  await page.fill("#guest-name", guest)
  await page.fill("#check-in", checkIn)
  await page.fill("#check-out", checkOut)
  await page.click("#book")
  await bookingOf(page, guest).waitFor()
}

const bookingOf = (page, guest) =>
  page.locator(".booking", { has: page.locator(".guest", { hasText: new RegExp(`^${guest}$`) }) })

/** Waits until `guest`'s booking on `page` has `status`. */
async function expectBooking(page, guest, status) {
  await bookingOf(page, guest).and(page.locator(`[data-status="${status}"]`)).waitFor()
}

/** What the page shows: every night of the month and every booking, as plain data. */
function shown(page) {
  return page.evaluate(() => ({
    month: document.querySelector("#grid").dataset.month,
    nights: [...document.querySelectorAll("#grid .night[data-date]")].map(cell => ({
      date: cell.dataset.date,
      state: cell.dataset.state,
      price: cell.querySelector(".price").textContent,
    })),
    bookings: [...document.querySelectorAll(".booking")].map(item => ({
      id: item.dataset.booking,
      guest: item.querySelector(".guest").textContent,
      status: item.dataset.status,
      label: item.querySelector(".badge").textContent,
      reason: item.querySelector(".reason")?.textContent ?? null,
    })),
  }))
}

/** Polls `condition` (an async function) until it returns a truthy value, within WAIT_MS. */
async function waitUntil(condition, what) {
  const deadline = Date.now() + WAIT_MS
  let last
  for (;;) {
    last = await condition()
    if (last) return last
    if (Date.now() > deadline) throw new Error(`timeout after ${WAIT_MS} ms: ${what()}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** Waits until both pages show the same nights and bookings; returns what they show. */
async function expectSameView(a, b, what) {
  let views = []
  await waitUntil(
    async () => {
      views = await Promise.all([shown(a), shown(b)])
      return JSON.stringify(views[0]) === JSON.stringify(views[1])
    },
    () => `${what}: the two pages differ\n--- one: ${JSON.stringify(views[0])}\n--- other: ${JSON.stringify(views[1])}`
  )
  return views[0]
}

/** The calendar as the server holds it. */
async function serverState(id) {
  const { status, body } = await apiRequest(served.server, "GET", `/api/documents/${id}`, undefined, { ms: WAIT_MS })
  assert.equal(status, 200, JSON.stringify(body))
  return body.state
}

function screenshot(page, name) {
  return saveScreenshot(page, `app-${name}.png`, { ms: WAIT_MS })
}

function assertNoProblems(...pages) {
  for (const { problems } of pages) assert.deepEqual(problems, [], "the page logged no errors or warnings")
}

// ---------------------------------------------------------------------------------------------

test("the server serves the app's files with their types and cache rules", { timeout: TEST_TIMEOUT_MS }, async () => {
  // 1. /app redirects to /app/, which is the page, revalidated on every load.
  const base = `http://127.0.0.1:${served.server.port}`
  const redirect = await fetch(`${base}/app`, { redirect: "manual" })
  assert.equal(redirect.status, 308)
  assert.equal(new URL(redirect.headers.get("location"), `${base}/app`).href, `${base}/app/`)
  const index = await fetch(`${base}/app/`)
  assert.equal(index.status, 200)
  assert.match(index.headers.get("content-type"), /^text\/html/)
  assert.equal(index.headers.get("cache-control"), "no-cache")
  const html = await index.text()

  // 2. The hashed assets it names are served with their types and cached for a year.
  const assets = [...html.matchAll(/"\.\/(assets\/[^"]+)"/g)].map(m => m[1])
  assert.ok(assets.some(a => a.endsWith(".js")) && assets.some(a => a.endsWith(".css")), assets.join(", "))
  for (const asset of assets) {
    const answer = await fetch(`${base}/app/${asset}`)
    assert.equal(answer.status, 200, asset)
    assert.match(answer.headers.get("cache-control"), /max-age=31536000, immutable/)
    assert.match(answer.headers.get("content-type"), asset.endsWith(".js") ? /^text\/javascript/ : /^text\/css/)
  }

  // 3. The service worker is not cached; an unknown file is a 404; a matching ETag is a 304.
  const worker = await fetch(`${base}/app/sw.js`)
  assert.equal(worker.headers.get("cache-control"), "no-cache")
  assert.match(worker.headers.get("content-type"), /^text\/javascript/)
  assert.equal((await fetch(`${base}/app/no-such-file.js`)).status, 404)
  assert.equal((await fetch(`${base}/app/assets/no-such-file.js`)).status, 404)
  const again = await fetch(`${base}/app/`, { headers: { "if-none-match": index.headers.get("etag") } })
  assert.equal(again.status, 304)
})

test("two browsers on one calendar see each other's prices and each other, live", { timeout: TEST_TIMEOUT_MS }, async () => {
  // 1. A host creates a calendar; a second browser opens its link.
  const host = await openApp()
  await setName(host.page, "Hana")
  const id = await createCalendar(host.page, "Seaside loft")
  const other = await openApp(`#automerge:${id}`)
  await setName(other.page, "Olek")
  await other.page.locator("#listing-name", { hasText: "Seaside loft" }).waitFor()
  await expectStatus(other.page, "saved")

  // 2. Each sees the other in the presence list, with the name they chose.
  await host.page.locator(".viewer", { hasText: "Olek" }).waitFor()
  await other.page.locator(".viewer", { hasText: "Hana" }).waitFor()

  // 3. The host prices three nights: the other browser shows the prices without a reload.
  await Promise.all([showTestMonth(host.page), showTestMonth(other.page)])
  await setPrice(host.page, day(5), day(7), 180)
  for (const date of [day(5), day(6), day(7)]) {
    await night(other.page, date).locator(".price", { hasText: "€180" }).waitFor()
  }

  // 4. And the other way round: the second browser prices a night, the host sees it.
  await setPrice(other.page, day(10), day(10), 95)
  await night(host.page, day(10)).locator(".price", { hasText: "€95" }).waitFor()
  await Promise.all([expectSettled(host.page, "saved"), expectSettled(other.page, "saved")])
  await expectSameView(host.page, other.page, "after both price changes")

  // 5. The server holds what both pages show.
  const nights = (await serverState(id)).nights
  for (const date of [day(5), day(6), day(7)]) assert.equal(nights[date].price, 180)
  assert.equal(nights[day(10)].price, 95)

  await screenshot(host.page, "live-host")
  await screenshot(other.page, "live-other")
  assertNoProblems(host, other)
})

test("an offline host's prices and an online guest's booking meet when the host is back", { timeout: TEST_TIMEOUT_MS }, async () => {
  // 1. A host and a guest on one calendar, each seeing the other.
  const host = await openApp()
  await setName(host.page, "Hana")
  const id = await createCalendar(host.page, "Mountain cabin")
  const guest = await openApp(`#automerge:${id}`)
  await setName(guest.page, "Gita")
  await expectStatus(guest.page, "saved")
  await Promise.all([showTestMonth(host.page), showTestMonth(guest.page)])
  await host.page.locator(".viewer", { hasText: "Gita" }).waitFor()

  // 2. The host's browser goes offline: the app says so, sees nobody, and goes on taking
  //    edits, kept on the device.
  await host.context.setOffline(true)
  await expectStatus(host.page, "offline")
  await host.page.locator("#presence", { hasText: "Only you here" }).waitFor()
  await setPrice(host.page, day(3), day(6), 210)
  await block(host.page, day(20), day(21))
  await night(host.page, day(4)).locator(".price", { hasText: "€210" }).waitFor()
  for (const date of [day(20), day(21)]) {
    await night(host.page, date).and(host.page.locator('[data-state="blocked"]')).waitFor()
  }
  await expectSettled(host.page, "offline")

  // 3. Meanwhile the guest books other nights; the server confirms. The guest cannot see the
  //    host's offline prices, and stops listing the host once its heartbeats stop.
  await requestStay(guest.page, "Ana", day(12), day(15))
  await expectBooking(guest.page, "Ana", "confirmed")
  await expectSettled(guest.page, "saved")
  assert.equal(await night(guest.page, day(4)).locator(".price").textContent(), "–")
  await guest.page.locator(".viewer", { hasText: "Hana" }).waitFor({ state: "detached" })
  await screenshot(host.page, "offline-host")
  await screenshot(guest.page, "offline-guest")

  // 4. Back online, both show the same calendar: the host's prices and block, and the
  //    confirmed booking.
  await host.context.setOffline(false)
  await Promise.all([expectSettled(host.page, "saved"), expectSettled(guest.page, "saved")])
  await expectBooking(host.page, "Ana", "confirmed")
  await guest.page.locator(".viewer", { hasText: "Hana" }).waitFor()
  await host.page.locator(".viewer", { hasText: "Gita" }).waitFor()
  await night(guest.page, day(4)).locator(".price", { hasText: "€210" }).waitFor()
  const view = await expectSameView(host.page, guest.page, "after the host is back online")
  const states = Object.fromEntries(view.nights.map(n => [n.date, n.state]))
  assert.equal(states[day(12)], "booked")
  for (const date of [day(20), day(21)]) assert.equal(states[date], "blocked", date)

  // 5. The server agrees.
  const state = await serverState(id)
  for (const date of [day(3), day(4), day(5), day(6)]) assert.equal(state.nights[date].price, 210)
  for (const date of [day(20), day(21)]) assert.equal(state.nights[date].blocked, true, date)
  const bookings = Object.values(state.bookings)
  assert.deepEqual(bookings.map(b => [b.guest, b.status]), [["Ana", "confirmed"]])

  await screenshot(host.page, "back-online-host")
  assertNoProblems(host, guest)
})

test("two guests asking for overlapping stays at once: one is confirmed, the other rejected", { timeout: TEST_TIMEOUT_MS }, async () => {
  // 1. Two guests on one calendar, both offline, so neither can see the other's request.
  const first = await openApp()
  const id = await createCalendar(first.page, "City studio")
  const second = await openApp(`#automerge:${id}`)
  await expectStatus(second.page, "saved")
  await Promise.all([showTestMonth(first.page), showTestMonth(second.page)])
  await Promise.all([first.context.setOffline(true), second.context.setOffline(true)])
  await Promise.all([expectStatus(first.page, "offline"), expectStatus(second.page, "offline")])

  // 2. Each asks for a stay that overlaps the other's; both wait for the server.
  await requestStay(first.page, "Ana", day(8), day(11))
  await requestStay(second.page, "Ben", day(10), day(13))
  await bookingOf(first.page, "Ana").locator(".badge", { hasText: "Pending — waiting for the server" }).waitFor()
  await bookingOf(second.page, "Ben").locator(".badge", { hasText: "Pending — waiting for the server" }).waitFor()
  await night(first.page, day(8)).and(first.page.locator('[data-state="pending"]')).waitFor()

  // 3. Both come back at the same moment. The server decides: exactly one booking holds the
  //    nights, the other is rejected with the reason, and both pages show the same.
  await Promise.all([first.context.setOffline(false), second.context.setOffline(false)])
  const decided = view => view.bookings.length === 2 && view.bookings.every(b => b.status !== "pending")
  await waitUntil(
    async () => decided(await shown(first.page)) && decided(await shown(second.page)),
    () => "both bookings decided on both pages"
  )
  const view = await expectSameView(first.page, second.page, "after the server decided")
  const confirmed = view.bookings.filter(b => b.status === "confirmed")
  const rejected = view.bookings.filter(b => b.status === "rejected")
  assert.equal(confirmed.length, 1, JSON.stringify(view.bookings))
  assert.equal(rejected.length, 1, JSON.stringify(view.bookings))
  assert.equal(rejected[0].label, "Rejected")
  assert.equal(rejected[0].reason, `overlaps confirmed booking ${confirmed[0].id}`)
  const stays = { Ana: [8, 11], Ben: [10, 13] }
  const [checkIn, checkOut] = stays[confirmed[0].guest]
  const held = view.nights.filter(n => n.state === "booked").map(n => n.date)
  const nights = Array.from({ length: checkOut - checkIn }, (_, i) => day(checkIn + i))
  assert.deepEqual(held, nights, "the confirmed stay holds its nights, and only those")

  // 4. The server's document says the same.
  const bookings = (await serverState(id)).bookings
  assert.equal(bookings[confirmed[0].id].status, "confirmed")
  assert.equal(bookings[rejected[0].id].status, "rejected")
  assert.equal(bookings[rejected[0].id].rejected_reason, rejected[0].reason)

  await screenshot(first.page, "overlap-first")
  await screenshot(second.page, "overlap-second")
  assertNoProblems(first, second)
})

test("a stay booked and cancelled offline stays cancelled, and its nights go to the next guest", { timeout: TEST_TIMEOUT_MS }, async () => {
  // 1. A host and a guest on one calendar, with three priced nights.
  const host = await openApp()
  const id = await createCalendar(host.page, "Lake house")
  const guest = await openApp(`#automerge:${id}`)
  await expectStatus(guest.page, "saved")
  await Promise.all([showTestMonth(host.page), showTestMonth(guest.page)])
  await setPrice(host.page, day(16), day(18), 130)
  await night(guest.page, day(17)).locator(".price", { hasText: "€130" }).waitFor()
  const stay = [day(16), day(17), day(18)]

  // 2. Offline, the guest asks for a stay and gives it up again before the server heard of it.
  await guest.context.setOffline(true)
  await expectStatus(guest.page, "offline")
  await requestStay(guest.page, "Ivo", day(16), day(19))
  await expectBooking(guest.page, "Ivo", "pending")
  await bookingOf(guest.page, "Ivo").locator("button.cancel").click()
  await expectBooking(guest.page, "Ivo", "cancelled")
  for (const date of stay) {
    await night(guest.page, date).and(guest.page.locator('[data-state="available"]')).waitFor()
  }
  await expectSettled(guest.page, "offline")

  // 3. Back online, the server leaves it cancelled: both pages and the server say so, and its
  //    nights are free.
  await guest.context.setOffline(false)
  await Promise.all([expectSettled(guest.page, "saved"), expectSettled(host.page, "saved")])
  await expectBooking(host.page, "Ivo", "cancelled")
  const view = await expectSameView(host.page, guest.page, "after the guest is back online")
  assert.deepEqual(
    view.bookings.map(b => [b.guest, b.status, b.label]),
    [["Ivo", "cancelled", "Cancelled"]]
  )
  const states = Object.fromEntries(view.nights.map(n => [n.date, n.state]))
  for (const date of stay) assert.equal(states[date], "available", date)
  const [cancelled] = view.bookings
  assert.equal((await serverState(id)).bookings[cancelled.id].status, "cancelled")

  // 4. Another guest asks for the same nights: the server confirms them, and every page shows
  //    the one stay booked and the other still cancelled.
  const next = await openApp(`#automerge:${id}`)
  await expectStatus(next.page, "saved")
  await showTestMonth(next.page)
  await requestStay(next.page, "Jo", day(16), day(19))
  await expectBooking(next.page, "Jo", "confirmed")
  for (const page of [host.page, guest.page]) await expectBooking(page, "Jo", "confirmed")
  await Promise.all([expectSettled(host.page, "saved"), expectSettled(guest.page, "saved")])
  const after = await expectSameView(host.page, guest.page, "after the next guest booked")
  assert.deepEqual(
    after.bookings.map(b => [b.guest, b.status]),
    [["Jo", "confirmed"], ["Ivo", "cancelled"]]
  )
  const held = after.nights.filter(n => n.state === "booked").map(n => n.date)
  assert.deepEqual(held, stay, "the confirmed stay holds the nights given up")

  // 5. The server's document says the same.
  const bookings = (await serverState(id)).bookings
  assert.equal(bookings[cancelled.id].status, "cancelled")
  const confirmed = after.bookings.find(b => b.guest === "Jo")
  assert.equal(bookings[confirmed.id].status, "confirmed")
  assert.equal(Object.keys(bookings).length, 2)

  await screenshot(guest.page, "cancelled-offline-guest")
  assertNoProblems(host, guest, next)
})

test("reloaded with no network and no server, the calendar shows from the device and syncs when back", { timeout: TEST_TIMEOUT_MS }, async () => {
  // 1. A calendar with prices and a confirmed booking, saved on the server and the device; the
  //    service worker holds the app's files.
  const app = await openApp()
  const id = await createCalendar(app.page, "Harbour flat")
  await showTestMonth(app.page)
  await setPrice(app.page, day(5), day(7), 140)
  await requestStay(app.page, "Chloe", day(5), day(7))
  await expectBooking(app.page, "Chloe", "confirmed")
  await expectSettled(app.page, "saved")
  await app.page.evaluate(() => navigator.serviceWorker.ready.then(() => true))
  const before = await shown(app.page)

  // 2. Offline, and with the server stopped, so that no request can reach it (the service
  //    worker's own fetches do not follow the page's offline emulation), reload: the page and
  //    its files come from the service worker and the calendar from IndexedDB, with no WebSocket
  //    opened.
  const address = `127.0.0.1:${served.server.port}`
  const restart = async () => {
    if (!served.server.isRunning()) served.server = await startServer({ dataDir: served.dataDir, listen: address })
  }
  try {
    await app.context.setOffline(true)
    await expectStatus(app.page, "offline")
    await served.server.stop()
    const sockets = []
    const responses = []
    app.page.on("websocket", socket => sockets.push(socket.url()))
    app.page.on("response", response => responses.push(response))
    await app.page.reload({ timeout: WAIT_MS })
    await expectStatus(app.page, "offline")
    await app.page.locator("#listing-name", { hasText: "Harbour flat" }).waitFor()
    await showTestMonth(app.page)
    for (const date of [day(5), day(6), day(7)]) {
      await night(app.page, date).locator(".price", { hasText: "€140" }).waitFor()
    }
    await expectBooking(app.page, "Chloe", "confirmed")
    assert.deepEqual(await shown(app.page), before, "the reloaded page shows what it showed before")
    assert.deepEqual(sockets, [], "no WebSocket while offline")
    const types = new Set(responses.map(r => r.request().resourceType()))
    assert.ok(["document", "script", "stylesheet"].every(t => types.has(t)), [...types].join(", "))
    const fromNetwork = responses.filter(r => !r.fromServiceWorker()).map(r => r.url())
    assert.deepEqual(fromNetwork, [], "every file came from the service worker")
    assert.equal(served.server.isRunning(), false, "the server stayed stopped")

    // 3. An edit made there reaches the server, back on its address, once the network is back.
    await setPrice(app.page, day(9), day(9), 155)
    await expectSettled(app.page, "offline")
    await screenshot(app.page, "offline-reload")
    await restart()
    await app.context.setOffline(false)
    await expectSettled(app.page, "saved")
  } finally {
    await restart()
  }
  const nights = (await serverState(id)).nights
  assert.equal(nights[day(9)].price, 155)
  assert.equal(nights[day(6)].price, 140)
  assertNoProblems(app)
})

test("on a phone-sized screen the calendar fits and reads", { timeout: TEST_TIMEOUT_MS }, async () => {
  // 1. A calendar with prices, blocked nights and two confirmed stays, made on a desktop.
  const desk = await openApp()
  const id = await createCalendar(desk.page, "Garden cottage")
  await showTestMonth(desk.page)
  await setPrice(desk.page, day(1), day(28), 120)
  await block(desk.page, day(24), day(26))
  await requestStay(desk.page, "Dana", day(3), day(6))
  await requestStay(desk.page, "Eli", day(14), day(18))
  await expectBooking(desk.page, "Dana", "confirmed")
  await expectBooking(desk.page, "Eli", "confirmed")
  await expectSettled(desk.page, "saved")

  // 2. A phone opens it: the month fits the width (no sideways scrolling), in guest mode too.
  const phone = await openApp(`#automerge:${id}`, PHONE)
  await expectStatus(phone.page, "saved")
  await showTestMonth(phone.page)
  await night(phone.page, day(3)).and(phone.page.locator('[data-state="booked"]')).waitFor()
  await phone.page.locator(".viewer").first().waitFor()
  for (const mode of ["guest", "host"]) {
    await setMode(phone.page, mode)
    const { scrollWidth, innerWidth } = await phone.page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
    }))
    assert.ok(scrollWidth <= innerWidth, `${mode}: page is ${scrollWidth}px wide in a ${innerWidth}px window`)
    const grid = await phone.page.locator("#grid").boundingBox()
    assert.ok(grid.x >= 0 && grid.x + grid.width <= innerWidth, `${mode}: grid within the screen`)
  }
  await setMode(phone.page, "guest")
  await screenshot(phone.page, "phone")
  assertNoProblems(desk, phone)
})
