// The calendar app: one automerge-repo Repo kept in IndexedDB and synced with the Syncline
// server that serves the page. The URL's hash names the open calendar (`#automerge:<id>`), so a
// link opens the same calendar in any browser; without one the start page shows.
import {
  type AutomergeUrl,
  type DocHandle,
  Repo,
  isValidAutomergeUrl,
} from "@automerge/automerge-repo"
import { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb"
import { type Calendar, isCalendar, newCalendar } from "./calendar"
import * as device from "./device"
import { byId, h } from "./dom"
import { ServerLink, serverUrl } from "./link"
import { type Mode, Presence } from "./presence"
import { SyncStatus } from "./status"
import "./style.css"
import "./calendar.css"
import { CalendarScreen } from "./views/calendar-screen"
import { renderHome } from "./views/home"
import { renderPresence, renderStatus } from "./views/topbar"

const repo = new Repo({ storage: new IndexedDBStorageAdapter("syncline-calendar"), network: [] })
const link = new ServerLink(repo, serverUrl(location))
const main = byId("main")
const statusView = byId("sync-status")
const presenceView = byId("presence")
const nameInput = byId<HTMLInputElement>("display-name")

/** The calendar open now, torn down when the hash names another. */
interface Opened {
  url: AutomergeUrl
  status: SyncStatus
  presence: Presence
  close(): void
}

let opened: Opened | undefined
let mode: Mode = device.lastMode()
let routing = 0

function showStatus() {
  if (opened) renderStatus(statusView, opened.status.state, opened.status.savedOnDevice)
  else renderStatus(statusView, link.state)
}

function showPresence() {
  renderPresence(presenceView, opened?.presence.viewers())
}

function close() {
  opened?.close()
  opened = undefined
}

async function route() {
  const turn = ++routing
  const url = location.hash.slice(1)
  if (opened && opened.url === url) return
  close()
  if (!url) {
    main.replaceChildren(renderHome({ create, open: u => (location.hash = u) }))
    document.title = "Syncline Calendar"
  } else if (!isValidAutomergeUrl(url)) {
    showMessage(
      "That link does not name a calendar.",
      "Check the link, or go back to your calendars."
    )
  } else {
    await open(url, turn)
  }
  showStatus()
  showPresence()
}

async function open(url: AutomergeUrl, turn: number) {
  showMessage("Opening the calendar…", "")
  let handle: DocHandle<Calendar>
  try {
    handle = await repo.find<Calendar>(url, { allowableStates: ["ready", "unavailable"] })
    if (!handle.isReady()) {
      showMessage(
        "This calendar is not on this device yet.",
        "It opens as soon as the server sends it: keep this page open while online."
      )
      await handle.whenReady(["ready"])
    }
  } catch {
    if (turn === routing)
      showMessage("This calendar could not be opened.", "It may have been deleted.")
    return
  }
  if (turn !== routing) return
  const calendar = handle.doc()
  if (!isCalendar(calendar)) {
    showMessage(
      "This document is not a calendar.",
      'Calendars have "type": "calendar" at their root.'
    )
    return
  }
  const screen = new CalendarScreen(handle, {
    mode,
    onModeChange: m => {
      mode = m
      device.setLastMode(m)
      opened?.presence.announce()
    },
    guestName: () => device.displayName(),
  })
  const status = new SyncStatus(repo, link, handle)
  const presence = new Presence(handle, () => ({ name: device.displayName(), mode }))
  const remember = () => rememberName(url, handle)
  const teardown = () => {
    handle.off("change", remember)
    presence.stop()
    status.stop()
    screen.stop()
  }
  opened = { url, status, presence, close: teardown }
  status.subscribe(showStatus)
  presence.subscribe(showPresence)
  handle.on("change", remember)
  remember()
  main.replaceChildren(screen.element)
  screen.render()
  presence.start()
}

/** Keeps the calendar first in this browser's list, under its current name. */
function rememberName(url: AutomergeUrl, handle: DocHandle<Calendar>) {
  const name = handle.doc()?.name ?? ""
  const listed = device.recentCalendars()[0]
  if (listed?.url !== url || listed.name !== name) device.rememberCalendar(url, name)
  document.title = `${name || "Calendar"} · Syncline Calendar`
}

function create(name: string, currency: string, timezone: string) {
  const handle = repo.create<Calendar>(newCalendar(name, currency, timezone))
  device.rememberCalendar(handle.url, name)
  location.hash = handle.url
}

function showMessage(title: string, detail: string) {
  main.replaceChildren(
    h(
      "section",
      { class: "card panel message" },
      h("h1", {}, title),
      detail && h("p", { class: "muted" }, detail),
      h("a", { href: "#", class: "secondary button" }, "Your calendars")
    )
  )
}

nameInput.value = device.displayName()
nameInput.addEventListener("change", () => {
  device.setDisplayName(nameInput.value)
  nameInput.value = device.displayName()
  opened?.presence.announce()
})
link.subscribe(() => {
  showStatus()
  if (link.state === "online") opened?.presence.announce()
  else opened?.presence.forgetAll()
})
window.addEventListener("hashchange", () => void route())
link.start()
void route()

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("./sw.js").catch(() => {
    // No worker (an insecure origin, say): the app still works, but does not open offline.
  })
}
