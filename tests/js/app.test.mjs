// The calendar web app (/app/) in real headless Chromium (Debian's, driven by playwright-core)
// against the real server binary, which serves the app's embedded build: edits reach another
// browser live, an offline host and an online guest converge once the host is back, two guests
// asking for the same nights get exactly one booking, and a reload with no network shows the
// calendar from IndexedDB. Every page must log no console error or warning.
//
// Run: node --test --test-concurrency=1 tests/js/app.test.mjs   (Chromium from SYNCLINE_CHROMIUM,
// default /usr/bin/chromium; screenshots go to SYNCLINE_ARTIFACTS, default target/artifacts/,
// as app-*.png)
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import fs from "node:fs"
import path from "node:path"
import { chromium } from "playwright-core"
import { REPO_ROOT, apiRequest, serverForFile, withTimeout } from "./server.mjs"

const WAIT_MS = 15_000 // bound for every single condition we wait for
const TEST_TIMEOUT_MS = 90_000
const CHROMIUM = process.env.SYNCLINE_CHROMIUM || "/usr/bin/chromium"
const ARTIFACTS = process.env.SYNCLINE_ARTIFACTS || path.join(REPO_ROOT, "target", "artifacts")

// The machine has no network: keep Chromium from reaching for one. And keep one document per
// frame across navigations (no RenderDocument): Playwright's offline emulation sets
// navigator.onLine in the document it finds, so a page reloaded while offline would get a new
// document that reads online while every request still fails, which no offline browser does.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-features=RenderDocument",
]
const DESKTOP = { width: 1280, height: 900 }
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

const served = serverForFile("syncline-js-app-")
let browser
const contexts = []

before(async () => {
  fs.accessSync(CHROMIUM, fs.constants.X_OK) // a clear error if Chromium is missing
  browser = await withTimeout(
    chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: WAIT_MS }),
    WAIT_MS + 5_000,
    `Chromium (${CHROMIUM}) to start`
  )
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
  fs.mkdirSync(ARTIFACTS, { recursive: true })
  return page.screenshot({ path: path.join(ARTIFACTS, `app-${name}.png`), fullPage: true, timeout: WAIT_MS })
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
  await night(host.page, day(20)).and(host.page.locator('[data-state="blocked"]')).waitFor()
  await expectSettled(host.page, "offline")

  // 3. Meanwhile the guest books other nights; the server confirms. The guest cannot see the
  //    host's offline prices, and stops listing the host once its heartbeats stop.
  await requestStay(guest.page, "Ana", day(12), day(15))
  await expectBooking(guest.page, "Ana", "confirmed")
  await expectSettled(guest.page, "saved")
  assert.equal(await night(guest.page, day(4)).locator(".price").textContent(), "–")
  await guest.page.locator(".viewer", { hasText: "Hana" }).waitFor({ state: "detached" })
  await screenshot(host.page, "offline-host")

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
  assert.equal(states[day(20)], "blocked")

  // 5. The server agrees.
  const state = await serverState(id)
  for (const date of [day(3), day(4), day(5), day(6)]) assert.equal(state.nights[date].price, 210)
  assert.equal(state.nights[day(20)].blocked, true)
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

test("reloaded with no network, the calendar shows from IndexedDB and syncs when back", { timeout: TEST_TIMEOUT_MS }, async () => {
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

  // 2. Offline, reload: the page comes from the service worker and the calendar from IndexedDB,
  //    with no WebSocket opened.
  const sockets = []
  app.page.on("websocket", socket => sockets.push(socket.url()))
  await app.context.setOffline(true)
  await app.page.reload({ timeout: WAIT_MS })
  await expectStatus(app.page, "offline")
  await app.page.locator("#listing-name", { hasText: "Harbour flat" }).waitFor()
  await showTestMonth(app.page)
  await night(app.page, day(6)).locator(".price", { hasText: "€140" }).waitFor()
  await expectBooking(app.page, "Chloe", "confirmed")
  assert.deepEqual(await shown(app.page), before, "the reloaded page shows what it showed before")
  assert.deepEqual(sockets, [], "no WebSocket while offline")

  // 3. An edit made there reaches the server once the network is back.
  await setPrice(app.page, day(9), day(9), 155)
  await expectSettled(app.page, "offline")
  await screenshot(app.page, "offline-reload")
  await app.context.setOffline(false)
  await expectSettled(app.page, "saved")
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
