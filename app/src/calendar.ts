// The calendar document: its schema, what each night looks like, and the edits a client may make.
//
// A listing calendar is an Automerge document whose root has `"type": "calendar"`, with
// `nights` (date -> {price, blocked, blocked_by}) and `bookings` (id -> {guest, check_in,
// check_out, channel, status, rejected_reason}); `check_out` is exclusive. Clients add bookings
// as `pending` and may cancel them; the server alone confirms or rejects, in arrival order, so
// two guests can never hold the same night. Everything read here tolerates a document written
// by someone else: a field of the wrong type reads as absent.
import { type IsoDate, daysBetween, isIsoDate, nightsOf } from "./dates"

export interface Night {
  price?: number
  blocked?: boolean
  /** The booking site whose imported feed blocked the night; absent for the host's blocks. */
  blocked_by?: string
}

export type BookingStatus = "pending" | "confirmed" | "rejected" | "cancelled"

export interface Booking {
  guest: string
  check_in: IsoDate
  check_out: IsoDate
  channel: string
  status: BookingStatus
  rejected_reason?: string
}

export interface Calendar {
  type: "calendar"
  name: string
  timezone: string
  currency: string
  nights: Record<IsoDate, Night>
  bookings: Record<string, Booking>
}

/** The channel this app books through. */
export const DIRECT = "direct"

export function newCalendar(name: string, currency: string, timezone: string): Calendar {
  return { type: "calendar", name, timezone, currency, nights: {}, bookings: {} }
}

export function isCalendar(doc: unknown): doc is Calendar {
  return typeof doc === "object" && doc !== null && (doc as { type?: unknown }).type === "calendar"
}

/** A fresh booking id, `b-` and 12 hex digits. */
export function newBookingId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return "b-" + Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("")
}

// ---------------------------------------------------------------------------------------------
// Reading

export type NightState = "available" | "blocked" | "booked" | "pending"

export interface NightView {
  date: IsoDate
  state: NightState
  price?: number
  /** The confirmed booking holding the night, or the first pending one asking for it. */
  booking?: string
  blockedBy?: string
}

/** The bookings that can be read, by id: those with a guest, both dates and a status. */
export function bookingsOf(calendar: Calendar): [string, Booking][] {
  const bookings = isRecord(calendar.bookings) ? calendar.bookings : {}
  return Object.entries(bookings).filter(([, b]) => isBooking(b))
}

/**
 * Every night's state at once: a confirmed booking or a block makes a night unavailable (a
 * confirmed booking wins the label); a pending booking marks an otherwise free night.
 */
export function nightViews(calendar: Calendar, dates: IsoDate[]): Map<IsoDate, NightView> {
  const confirmed = new Map<IsoDate, string>()
  const pending = new Map<IsoDate, string>()
  for (const [id, booking] of bookingsOf(calendar)) {
    const holds =
      booking.status === "confirmed" ? confirmed : booking.status === "pending" ? pending : null
    if (!holds) continue
    for (const night of nightsOf(booking.check_in, booking.check_out)) {
      if (!holds.has(night)) holds.set(night, id)
    }
  }
  const views = new Map<IsoDate, NightView>()
  for (const date of dates) {
    const night = nightOf(calendar, date)
    const view: NightView = { date, state: "available", price: night.price }
    if (confirmed.has(date)) Object.assign(view, { state: "booked", booking: confirmed.get(date) })
    else if (night.blocked) Object.assign(view, { state: "blocked", blockedBy: night.blocked_by })
    else if (pending.has(date))
      Object.assign(view, { state: "pending", booking: pending.get(date) })
    views.set(date, view)
  }
  return views
}

/** The night's fields that can be read. */
export function nightOf(calendar: Calendar, date: IsoDate): Night {
  const raw = isRecord(calendar.nights) ? calendar.nights[date] : undefined
  if (!isRecord(raw)) return {}
  return {
    price: typeof raw.price === "number" && Number.isFinite(raw.price) ? raw.price : undefined,
    blocked: raw.blocked === true,
    blocked_by: typeof raw.blocked_by === "string" ? raw.blocked_by : undefined,
  }
}

/** What stands in the way of a stay, as a sentence for the guest; undefined if nothing does. */
export function stayProblem(calendar: Calendar, checkIn: string, checkOut: string, today: IsoDate) {
  if (!isIsoDate(checkIn) || !isIsoDate(checkOut)) return "Choose a check-in and a check-out date."
  if (checkIn < today) return "Check-in cannot be in the past."
  const nights = daysBetween(checkIn, checkOut)
  if (nights < 1) return "Check-out must be after check-in."
  if (nights > 366) return "A stay can be a year at most."
  const views = nightViews(calendar, nightsOf(checkIn, checkOut))
  const taken = [...views.values()].filter(v => v.state === "booked" || v.state === "blocked")
  if (taken.length > 0)
    return `${taken.length === 1 ? "One night is" : `${taken.length} nights are`} not available.`
  return undefined
}

/** The stay's total, if every night has a price. */
export function stayPrice(
  calendar: Calendar,
  checkIn: IsoDate,
  checkOut: IsoDate
): number | undefined {
  let total = 0
  for (const night of nightsOf(checkIn, checkOut)) {
    const price = nightOf(calendar, night).price
    if (price === undefined) return undefined
    total += price
  }
  return total
}

// ---------------------------------------------------------------------------------------------
// Editing: each function is run inside `handle.change`, on Automerge's proxy of the document.
// Two devices that each create the same night (or the same map) concurrently end up with one of
// the two objects, the other's fields lost; so an object is created only when there is none, with
// just the field being set, and an existing one is changed field by field.

export function setPrices(calendar: Calendar, dates: IsoDate[], price: number) {
  const nights = nightsMap(calendar)
  for (const date of dates) {
    const night = nights[date]
    if (!isRecord(night)) nights[date] = { price }
    else night.price = price
  }
}

/**
 * Blocks or frees nights for the host. A night a booking site's feed blocked stays as it is:
 * the feed owns it, and would block it again. A night that does not exist is already free.
 */
export function setBlocked(calendar: Calendar, dates: IsoDate[], blocked: boolean) {
  if (!blocked && !isRecord(calendar.nights)) return
  const nights = nightsMap(calendar)
  for (const date of dates) {
    const night = nights[date]
    if (!isRecord(night)) {
      if (blocked) nights[date] = { blocked }
    } else if (typeof night.blocked_by !== "string" && night.blocked !== blocked) {
      night.blocked = blocked
    }
  }
}

export function addBooking(calendar: Calendar, id: string, booking: Booking) {
  if (!isRecord(calendar.bookings)) calendar.bookings = {}
  calendar.bookings[id] = booking
}

/** Gives a booking up, freeing its nights: the one status change besides booking a client makes. */
export function cancelBooking(calendar: Calendar, id: string) {
  const booking = isRecord(calendar.bookings) ? calendar.bookings[id] : undefined
  if (isBooking(booking) && (booking.status === "pending" || booking.status === "confirmed")) {
    booking.status = "cancelled"
  }
}

function nightsMap(calendar: Calendar): Record<IsoDate, Night> {
  if (!isRecord(calendar.nights)) calendar.nights = {}
  return calendar.nights
}

function isRecord(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
}

function isBooking(value: unknown): value is Booking {
  return (
    isRecord(value) &&
    typeof value.guest === "string" &&
    isIsoDate(value.check_in) &&
    isIsoDate(value.check_out) &&
    typeof value.status === "string"
  )
}
