// What this browser remembers outside the documents, in localStorage: the calendars opened
// here, the name shown to others, the mode last used, and which bookings were made here.
import type { AutomergeUrl } from "@automerge/automerge-repo"
import type { Mode } from "./presence"

export interface RecentCalendar {
  url: AutomergeUrl
  name: string
  openedAt: number
}

const KEYS = {
  recent: "syncline.calendars",
  name: "syncline.name",
  mode: "syncline.mode",
  mine: "syncline.bookings",
} as const

const MAX_RECENT = 50

function read<T>(key: string, fallback: T): T {
  try {
    const text = localStorage.getItem(key)
    return text === null ? fallback : (JSON.parse(text) as T)
  } catch {
    return fallback
  }
}

function write(key: string, value: unknown) {
  try {
    localStorage.setItem(key, JSON.stringify(value))
  } catch {
    // Storage full or disabled: the app works on, forgetting this.
  }
}

export function recentCalendars(): RecentCalendar[] {
  const list = read<RecentCalendar[]>(KEYS.recent, [])
  return Array.isArray(list) ? list.filter(c => typeof c?.url === "string") : []
}

/** Puts the calendar first in the list, with its current name. */
export function rememberCalendar(url: AutomergeUrl, name: string) {
  const others = recentCalendars().filter(c => c.url !== url)
  write(KEYS.recent, [{ url, name, openedAt: Date.now() }, ...others].slice(0, MAX_RECENT))
}

export function forgetCalendar(url: AutomergeUrl) {
  write(
    KEYS.recent,
    recentCalendars().filter(c => c.url !== url)
  )
}

export function displayName(): string {
  const name = read<string>(KEYS.name, "")
  if (typeof name === "string" && name.trim()) return name
  const chosen = `Visitor ${Math.floor(100 + Math.random() * 900)}`
  write(KEYS.name, chosen)
  return chosen
}

export function setDisplayName(name: string) {
  write(KEYS.name, name.trim().slice(0, 60))
}

export function lastMode(): Mode {
  return read<string>(KEYS.mode, "host") === "guest" ? "guest" : "host"
}

export function setLastMode(mode: Mode) {
  write(KEYS.mode, mode)
}

/** The ids of bookings made in this browser, so their guests can cancel them. */
export function myBookings(): Set<string> {
  const ids = read<string[]>(KEYS.mine, [])
  return new Set(Array.isArray(ids) ? ids : [])
}

export function rememberBooking(id: string) {
  write(KEYS.mine, [...myBookings(), id])
}
