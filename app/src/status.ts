// Where the open calendar's latest edits are: on this device, on the server, or on their way.
//
// "Saved on server" means the server has acknowledged our heads. Syncline announces a storage
// id in its `peer` message and only ever reports heads it has made durable; automerge-repo
// records the heads each peer with a storage id reports (`handle.getSyncInfo(storageId)`,
// announced by the handle's `remote-heads` event). When those equal our own heads, every edit
// we hold is on the server's disk. "Saved on this device" is the same question asked of
// IndexedDB: the heads of the last flush that finished.
import type { DocHandle, Repo, UrlHeads } from "@automerge/automerge-repo"
import type { ServerLink } from "./link"

export type SyncState = "offline" | "connecting" | "syncing" | "saved"

export const SYNC_LABELS: Record<SyncState, string> = {
  offline: "Offline",
  connecting: "Connecting…",
  syncing: "Syncing…",
  saved: "Saved on server",
}

export const sameHeads = (a: readonly string[] = [], b: readonly string[] = []) =>
  a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",")

export class SyncStatus {
  #savedOnDevice?: UrlHeads
  #flushes = 0
  #newestFlushed = 0
  #listeners = new Set<() => void>()
  #stops: (() => void)[] = []

  constructor(
    private readonly repo: Repo,
    private readonly link: ServerLink,
    private readonly handle: DocHandle<unknown>
  ) {
    const notify = () => this.#notify()
    const flush = () => this.#flush()
    handle.on("heads-changed", flush)
    handle.on("remote-heads", notify)
    this.#stops.push(
      () => handle.off("heads-changed", flush),
      () => handle.off("remote-heads", notify),
      link.subscribe(notify)
    )
    this.#flush()
  }

  get state(): SyncState {
    if (this.link.state !== "online") return this.link.state
    const storageId = this.link.serverStorageId
    const acknowledged = storageId ? this.handle.getSyncInfo(storageId)?.lastHeads : undefined
    return acknowledged && sameHeads(acknowledged, this.handle.heads()) ? "saved" : "syncing"
  }

  get savedOnDevice(): boolean {
    return sameHeads(this.#savedOnDevice, this.handle.heads())
  }

  subscribe(listener: () => void) {
    this.#listeners.add(listener)
  }

  stop() {
    for (const stop of this.#stops) stop()
    this.#listeners.clear()
  }

  /** Writes the current heads to IndexedDB; flushes may finish out of order, the newest counts. */
  #flush() {
    const heads = this.handle.heads()
    const flush = ++this.#flushes
    this.#notify()
    this.repo
      .flush([this.handle.documentId])
      .then(() => {
        if (flush < this.#newestFlushed) return
        this.#newestFlushed = flush
        this.#savedOnDevice = heads
        this.#notify()
      })
      .catch(() => {
        // Not saved (storage refused the write): the device keeps saying so.
      })
  }

  #notify() {
    for (const listener of this.#listeners) listener()
  }
}
