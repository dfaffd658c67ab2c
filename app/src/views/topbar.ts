// The top bar's live parts: where the edits are, and who else is here.
import { h } from "../dom"
import type { Viewer } from "../presence"
import { SYNC_LABELS, type SyncState } from "../status"

/**
 * Shows `state` (with "online" for the start page, where no calendar is open) and, with a
 * calendar open and not yet on the server, whether its edits are saved on this device.
 */
export function renderStatus(pill: HTMLElement, state: SyncState | "online", onDevice?: boolean) {
  pill.dataset.state = state
  pill.dataset.device = onDevice === false ? "saving" : "saved"
  const label = state === "online" ? "Online" : SYNC_LABELS[state]
  const detail =
    onDevice === undefined || state === "saved"
      ? ""
      : onDevice
        ? "saved on this device"
        : "saving on this device…"
  pill.replaceChildren(
    h("span", { class: "dot" }),
    h("span", { class: "label" }, label),
    detail && h("span", { class: "detail" }, detail)
  )
}

/** Shows the other tabs that have the calendar open, or hides the list with none open. */
export function renderPresence(list: HTMLElement, viewers: Viewer[] | undefined) {
  list.hidden = viewers === undefined
  if (!viewers) return list.replaceChildren()
  if (viewers.length === 0)
    return list.replaceChildren(h("span", { class: "muted" }, "Only you here"))
  const viewer = (v: Viewer) =>
    h(
      "li",
      { class: `viewer ${v.mode}`, dataset: { peer: v.peerId }, title: `${v.name} (${v.mode})` },
      h("span", { class: "avatar" }, initials(v.name)),
      h("span", { class: "viewer-name" }, v.name)
    )
  list.replaceChildren(
    h("ul", { class: "viewers", "aria-label": "Also here" }, ...viewers.map(viewer))
  )
}

function initials(name: string): string {
  const words = name.split(/\s+/).filter(Boolean).slice(0, 2)
  return words.map(word => word[0].toUpperCase()).join("") || "?"
}
