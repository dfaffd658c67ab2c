// Preload (`node -r ./force-loopback.cjs program.js`) that keeps a program's servers on the
// loopback interface. Programs such as @automerge/automerge-repo-sync-server call
// `listen(port)`, which binds every interface; the tests start them on a shared machine and
// must not expose them to the network.
//
// Every `net.Server#listen` call (http and https servers are net servers too) that names a TCP
// port but no host gets host 127.0.0.1. Calls that name a host, a Unix socket path, a handle or a
// file descriptor are passed on unchanged.
"use strict"

const net = require("node:net")

const LOOPBACK = "127.0.0.1"
const originalListen = net.Server.prototype.listen

/** Whether `value` is a port as `listen` accepts it: a number, or a string of digits. */
function isPort(value) {
  return typeof value === "number" || (typeof value === "string" && /^\d+$/.test(value))
}

/** The arguments of one `listen` call, with the loopback host added where none is named. */
function withLoopbackHost(args) {
  const [first, second] = args

  // listen() and listen(callback): an ephemeral port on every interface.
  if (first === undefined || typeof first === "function") {
    return [0, LOOPBACK, ...args.slice(first === undefined ? 1 : 0)]
  }

  // listen(port[, host][, backlog][, callback]): a string second argument is the host.
  if (isPort(first)) {
    if (typeof second === "string") return args
    if (second === undefined || second === null) return [first, LOOPBACK, ...args.slice(2)]
    return [first, LOOPBACK, ...args.slice(1)] // second is a backlog or the callback
  }

  // listen({port, host, ...}[, callback]), unless it is about a path, a handle or a descriptor.
  const isTcpOptions =
    first !== null &&
    typeof first === "object" &&
    first.path === undefined &&
    first.handle === undefined &&
    first.fd === undefined &&
    first._handle === undefined
  if (isTcpOptions && (first.host === undefined || first.host === null)) {
    return [{ ...first, host: LOOPBACK }, ...args.slice(1)]
  }
  return args
}

net.Server.prototype.listen = function listen(...args) {
  return originalListen.apply(this, withLoopbackHost(args))
}
