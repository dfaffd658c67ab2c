// The bookings list: every stay with its status as the server decided it (or has yet to).
import { type Booking, type BookingStatus, type Calendar, bookingsOf } from "../calendar"
import { dayLabel, daysBetween } from "../dates"
import { h } from "../dom"
import type { Mode } from "../presence"

export const STATUS_LABELS: Record<BookingStatus, string> = {
  pending: "Pending — waiting for the server",
  confirmed: "Confirmed",
  rejected: "Rejected",
  cancelled: "Cancelled",
}

export interface BookingsContext {
  mode: Mode
  mine: ReadonlySet<string>
  cancel(id: string): void
}

/** Fills `list` with the bookings, soonest stay first; cancelled ones last. */
export function renderBookings(list: HTMLElement, calendar: Calendar, context: BookingsContext) {
  const order = (b: Booking) => (b.status === "cancelled" ? "1" : "0") + b.check_in
  const bookings = bookingsOf(calendar).sort(([, a], [, b]) => order(a).localeCompare(order(b)))
  if (bookings.length === 0) {
    list.replaceChildren(h("li", { class: "empty muted" }, "No bookings yet."))
    return
  }
  list.replaceChildren(...bookings.map(([id, booking]) => bookingItem(id, booking, context)))
}

function bookingItem(id: string, booking: Booking, context: BookingsContext): HTMLElement {
  const status: BookingStatus = booking.status in STATUS_LABELS ? booking.status : "pending"
  const nights = daysBetween(booking.check_in, booking.check_out)
  const mine = context.mine.has(id)
  const cancellable =
    (status === "pending" || status === "confirmed") && (context.mode === "host" || mine)
  const reason = typeof booking.rejected_reason === "string" ? booking.rejected_reason : ""
  return h(
    "li",
    { class: `booking ${status}`, dataset: { booking: id, status } },
    h(
      "div",
      { class: "booking-main" },
      h("strong", { class: "guest" }, booking.guest || "Guest"),
      mine && h("span", { class: "mine" }, "you"),
      h(
        "span",
        { class: "when" },
        `${dayLabel(booking.check_in)} → ${dayLabel(booking.check_out)} · ${nights} ${nights === 1 ? "night" : "nights"}`
      ),
      booking.channel &&
        booking.channel !== "direct" &&
        h("span", { class: "channel" }, booking.channel)
    ),
    h("span", { class: `badge ${status}` }, STATUS_LABELS[status]),
    status === "rejected" && reason && h("p", { class: "reason" }, reason),
    cancellable &&
      h(
        "button",
        { type: "button", class: "ghost cancel", on: { click: () => context.cancel(id) } },
        "Cancel"
      )
  )
}
