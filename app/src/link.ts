// The link to the Syncline server: one automerge-repo WebSocket adapter while the server can be
// reached, none otherwise.
//
// Going offline has to close the socket: Chromium keeps a socket that was open when the network
// went away open, but stalled, rather than closing it. So on the window's `offline` event the
// link drops its adapter, which closes the socket; edits go on locally, into IndexedDB, and no
// connection is tried (each failed attempt is an error in the console) until the `online`
// event, when a fresh adapter connects at once and syncs whatever changed meanwhile.
//
// `navigator.onLine` only says that there is a network interface (it reads true on a captive
// portal, or with the server down), so a socket that closes before the server answered counts
// as offline too, and the link tries again with backoff. A socket that closes after it did is
// replaced at once. A fresh adapter each time, because the stock one keeps a stale retry timer
// across disconnect() and would then stop retrying.
import type { PeerId, PeerMetadata, Repo, StorageId } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

export type LinkState = "offline" | "connecting" | "online"

const FIRST_RETRY_MS = 1_000
const LAST_RETRY_MS = 15_000

/** The stock adapter, except that it reports its socket closing and, once retired, stays shut. */
class SocketAdapter extends WebSocketClientAdapter {
  #retired = false

  constructor(url: string, onClosed: () => void) {
    super(url)
    const stockOnClose = this.onClose
    this.onClose = () => {
      stockOnClose()
      // Its departure is announced: a later disconnect() must not announce it again.
      this.remotePeerId = undefined
      if (!this.#retired) onClosed()
    }
  }

  override connect(peerId: PeerId, peerMetadata?: PeerMetadata) {
    if (!this.#retired) super.connect(peerId, peerMetadata)
  }

  override disconnect() {
    this.#retired = true
    if (this.socket && this.peerId) super.disconnect()
  }
}

export class ServerLink {
  state: LinkState = "connecting"
  /** The server's storage id, from its `peer` message: the heads it reports are durable. */
  serverStorageId?: StorageId
  #adapter?: SocketAdapter
  #retry?: ReturnType<typeof setTimeout>
  #retryMs = FIRST_RETRY_MS
  #listeners = new Set<() => void>()

  constructor(
    private readonly repo: Repo,
    private readonly url: string
  ) {}

  start() {
    this.repo.networkSubsystem.on("peer", ({ peerMetadata }) => {
      this.serverStorageId = peerMetadata?.storageId
      this.#retryMs = FIRST_RETRY_MS
      this.#set("online")
    })
    window.addEventListener("online", () => {
      this.#retryMs = FIRST_RETRY_MS
      if (!this.#adapter) this.#set("connecting")
      this.#attach()
    })
    window.addEventListener("offline", () => {
      this.#drop()
      this.#set("offline")
    })
    if (navigator.onLine) this.#attach()
    else this.#set("offline")
  }

  /** Calls `listener` whenever the state changes; returns the function that stops it. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #attach() {
    clearTimeout(this.#retry)
    if (this.#adapter || !navigator.onLine) return
    this.#adapter = new SocketAdapter(this.url, () => this.#closed())
    this.repo.networkSubsystem.addNetworkAdapter(this.#adapter)
  }

  /** The socket closed by itself: if the server had answered on it, reconnect now; else back off. */
  #closed() {
    const wasOnline = this.state === "online"
    this.#drop()
    if (!navigator.onLine) return this.#set("offline")
    if (wasOnline) {
      this.#set("connecting")
      return this.#attach()
    }
    this.#set("offline")
    this.#retry = setTimeout(() => this.#attach(), this.#retryMs)
    this.#retryMs = Math.min(this.#retryMs * 2, LAST_RETRY_MS)
  }

  /** Closes the socket, if there is one, for good. */
  #drop() {
    clearTimeout(this.#retry)
    const adapter = this.#adapter
    this.#adapter = undefined
    if (adapter) this.repo.networkSubsystem.removeNetworkAdapter(adapter)
  }

  #set(state: LinkState) {
    if (state === this.state) return
    this.state = state
    for (const listener of this.#listeners) listener()
  }
}

/**
 * The server's sync endpoint for an app served at `<root>/app/`: `<root>/` on the same host,
 * `wss:` under https, with the page's `?token=` passed on (browsers cannot set headers on a
 * WebSocket).
 */
export function serverUrl(page: Location): string {
  const url = new URL("../", page.href)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  const token = new URLSearchParams(page.search).get("token")
  url.search = token ? `?token=${encodeURIComponent(token)}` : ""
  url.hash = ""
  return url.href
}
