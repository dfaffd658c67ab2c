// The service worker: keeps the app's files so the app opens without a network.
//
// On install it stores every built file (the list is written in at build time); pages are
// answered from the network when it answers and from the store when it does not, so a new
// build shows up on the next load; hashed assets never change and come from the store. The
// calendars themselves live in IndexedDB, which automerge-repo manages: this worker only serves
// files, and the WebSocket never passes through it.
//
// Nothing is imported: an import shared with the page would make the build split out a chunk
// that this worker would then have to load as a module.

// Written in by the build (see vite.config.ts).
declare const __APP_FILES__: string[]
declare const __APP_VERSION__: string

interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void
}

interface FetchEvent extends ExtendableEvent {
  readonly request: Request
  respondWith(response: Promise<Response>): void
}

interface WorkerScope {
  readonly registration: ServiceWorkerRegistration
  readonly clients: { claim(): Promise<void> }
  skipWaiting(): Promise<void>
  addEventListener(type: "install" | "activate", listener: (event: ExtendableEvent) => void): void
  addEventListener(type: "fetch", listener: (event: FetchEvent) => void): void
}

const worker = self as unknown as WorkerScope
const CACHE_PREFIX = "syncline-calendar-"
const CACHE = CACHE_PREFIX + __APP_VERSION__
const scope = new URL(worker.registration.scope)

worker.addEventListener("install", event => {
  const files = __APP_FILES__.map(file => new URL(file, scope).href)
  event.waitUntil(
    caches
      .open(CACHE)
      .then(cache => cache.addAll(files))
      .then(() => worker.skipWaiting())
  )
})

worker.addEventListener("activate", event => {
  event.waitUntil(
    caches
      .keys()
      .then(names =>
        Promise.all(
          names
            .filter(name => name.startsWith(CACHE_PREFIX) && name !== CACHE)
            .map(name => caches.delete(name))
        )
      )
      .then(() => worker.clients.claim())
  )
})

worker.addEventListener("fetch", event => {
  const url = new URL(event.request.url)
  if (event.request.method !== "GET" || !url.href.startsWith(scope.href)) return
  if (event.request.mode === "navigate") event.respondWith(networkFirst(event.request))
  else event.respondWith(storeFirst(event.request))
})

/** The network's answer, stored for next time; the stored page if the network fails. */
async function networkFirst(request: Request): Promise<Response> {
  const cache = await caches.open(CACHE)
  try {
    const response = await fetch(request)
    if (response.ok) await cache.put(scope.href, response.clone())
    return response
  } catch (error) {
    const stored = await cache.match(scope.href)
    if (stored) return stored
    throw error
  }
}

/** The stored file, or the network's answer for files the build did not list. */
async function storeFirst(request: Request): Promise<Response> {
  const stored = await caches.match(request, { ignoreSearch: true })
  return stored ?? fetch(request)
}

export {}
