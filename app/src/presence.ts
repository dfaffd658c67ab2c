// Who else has the calendar open, from ephemeral messages: nothing here is stored.
//
// Each tab broadcasts `{presence: {name, mode}}` on the document's handle every few seconds
// (the server relays ephemeral messages to every other peer that has the document open) and at
// once when it sees a tab it did not know, so a newcomer learns of everyone within one round
// trip. A tab not heard from for a few heartbeats is forgotten; one that closes says so.
import type { DocHandle } from "@automerge/automerge-repo"

export type Mode = "host" | "guest"

export interface Viewer {
  peerId: string
  name: string
  mode: Mode
  seenAt: number
}

interface Announcement {
  name: string
  mode: Mode
  leaving?: boolean
}

const HEARTBEAT_MS = 2_000
const FORGET_AFTER_MS = 3 * HEARTBEAT_MS + 1_000

export class Presence {
  #viewers = new Map<string, Viewer>()
  #timers: ReturnType<typeof setInterval>[] = []
  #listeners = new Set<() => void>()

  constructor(
    private readonly handle: DocHandle<unknown>,
    private readonly me: () => { name: string; mode: Mode }
  ) {}

  start() {
    this.handle.on("ephemeral-message", this.#receive)
    window.addEventListener("pagehide", this.#leave)
    this.#timers.push(
      setInterval(() => this.announce(), HEARTBEAT_MS),
      setInterval(() => this.#forgetSilent(), HEARTBEAT_MS / 2)
    )
    this.announce()
  }

  stop() {
    this.#leave()
    this.handle.off("ephemeral-message", this.#receive)
    window.removeEventListener("pagehide", this.#leave)
    for (const timer of this.#timers) clearInterval(timer)
    this.#timers = []
    this.#viewers.clear()
    this.#listeners.clear()
  }

  /** Tells the others who we are now (also the heartbeat). */
  announce() {
    this.handle.broadcast({ presence: { ...this.me() } satisfies Announcement })
  }

  /** Forgets everyone, as when the link to the server is lost: nobody can be heard then. */
  forgetAll() {
    if (this.#viewers.size === 0) return
    this.#viewers.clear()
    this.#notify()
  }

  /** The other tabs, by name. */
  viewers(): Viewer[] {
    return [...this.#viewers.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  subscribe(listener: () => void) {
    this.#listeners.add(listener)
  }

  #receive = ({ senderId, message }: { senderId: string; message: unknown }) => {
    const announcement = readAnnouncement(message)
    if (!announcement) return
    if (announcement.leaving) {
      if (this.#viewers.delete(senderId)) this.#notify()
      return
    }
    const known = this.#viewers.has(senderId)
    const { name, mode } = announcement
    this.#viewers.set(senderId, { peerId: senderId, name, mode, seenAt: Date.now() })
    if (!known) this.announce()
    this.#notify()
  }

  #leave = () => {
    this.handle.broadcast({ presence: { ...this.me(), leaving: true } satisfies Announcement })
  }

  #forgetSilent() {
    const cutoff = Date.now() - FORGET_AFTER_MS
    let changed = false
    for (const [peerId, viewer] of this.#viewers) {
      if (viewer.seenAt >= cutoff) continue
      this.#viewers.delete(peerId)
      changed = true
    }
    if (changed) this.#notify()
  }

  #notify() {
    for (const listener of this.#listeners) listener()
  }
}

function readAnnouncement(message: unknown): Announcement | undefined {
  const presence = (message as { presence?: unknown } | null)?.presence
  if (typeof presence !== "object" || presence === null) return undefined
  const { name, mode, leaving } = presence as Record<string, unknown>
  if (typeof name !== "string" || (mode !== "host" && mode !== "guest")) return undefined
  return { name: name.slice(0, 60) || "Someone", mode, leaving: leaving === true }
}
