// One open calendar: the listing's header, the month grid, the host's or the guest's panel and
// the bookings. Every edit is one `handle.change`; the screen redraws on the handle's `change`
// event, which fires for our own edits and for everyone else's alike.
import type { DocHandle } from "@automerge/automerge-repo"
import {
  type Calendar,
  DIRECT,
  addBooking,
  cancelBooking,
  newBookingId,
  setBlocked,
  setPrices,
} from "../calendar"
import {
  type IsoDate,
  type IsoMonth,
  addMonths,
  datesFromTo,
  monthLabel,
  monthOf,
  nightsOf,
  todayIn,
  weekdayNames,
} from "../dates"
import { myBookings, rememberBooking } from "../device"
import { h } from "../dom"
import type { Mode } from "../presence"
import { renderBookings } from "./bookings"
import { GuestPanel, type StayRequest } from "./guest-panel"
import { HostPanel } from "./host-panel"
import { renderMonth } from "./month"

export interface ScreenOptions {
  mode: Mode
  onModeChange(mode: Mode): void
  guestName(): string
}

export class CalendarScreen {
  readonly element: HTMLElement
  #month: IsoMonth
  #mode: Mode
  #selected = new Set<IsoDate>()
  #anchor?: IsoDate
  #host: HostPanel
  #guest: GuestPanel
  #title = h("h1", { id: "listing-name" })
  #details = h("p", { class: "muted listing-details" })
  #monthLabel = h("h2", { id: "month-label" })
  #grid = h("div", { id: "grid", class: "grid" })
  #bookings = h("ul", { id: "bookings", class: "bookings" })
  #modeButtons: Record<Mode, HTMLButtonElement>
  #render = () => this.render()

  constructor(
    private readonly handle: DocHandle<Calendar>,
    private readonly options: ScreenOptions
  ) {
    this.#mode = options.mode
    this.#month = monthOf(todayIn(this.calendar.timezone))
    this.#host = new HostPanel({
      setPrice: price => this.#change(d => setPrices(d, [...this.#selected], price)),
      setBlocked: blocked => this.#change(d => setBlocked(d, [...this.#selected], blocked)),
      clearSelection: () => this.#select(new Set()),
    })
    this.#guest = new GuestPanel(request => this.#book(request), this.#render)
    this.#modeButtons = {
      host: this.#modeButton("host", "Host"),
      guest: this.#modeButton("guest", "Guest"),
    }
    this.#grid.addEventListener("click", event => this.#clickNight(event))
    this.element = h(
      "div",
      { class: "screen" },
      this.#header(),
      h(
        "div",
        { class: "layout" },
        h(
          "section",
          { class: "card month" },
          this.#monthNav(),
          this.#weekdays(),
          this.#grid,
          legend()
        ),
        h(
          "aside",
          { class: "side" },
          this.#host.element,
          this.#guest.element,
          h("section", { class: "card panel" }, h("h2", {}, "Bookings"), this.#bookings)
        )
      )
    )
    handle.on("change", this.#render)
  }

  get calendar(): Calendar {
    return this.handle.doc()
  }

  stop() {
    this.handle.off("change", this.#render)
  }

  render() {
    const calendar = this.calendar
    const today = todayIn(calendar.timezone)
    this.#title.textContent = calendar.name || "Untitled listing"
    this.#details.textContent = `${calendar.currency} · ${calendar.timezone}`
    this.#monthLabel.textContent = monthLabel(this.#month)
    this.element.dataset.mode = this.#mode
    for (const [mode, button] of Object.entries(this.#modeButtons)) {
      button.setAttribute("aria-pressed", String(mode === this.#mode))
    }
    const { checkIn, checkOut } = this.#guest.stay()
    const guesting = this.#mode === "guest"
    const stay = guesting && checkIn ? (checkOut ? nightsOf(checkIn, checkOut) : [checkIn]) : []
    renderMonth(this.#grid, calendar, this.#month, {
      today,
      selected: guesting ? new Set() : this.#selected,
      stay: new Set(stay),
      checkOut: guesting ? checkOut : undefined,
    })
    this.#host.update(this.#selected)
    if (!this.#guest.guest.value) this.#guest.guest.value = this.options.guestName()
    this.#guest.update(calendar, today)
    renderBookings(this.#bookings, calendar, {
      mode: this.#mode,
      mine: myBookings(),
      cancel: id => this.#change(d => cancelBooking(d, id)),
    })
  }

  #change(edit: (calendar: Calendar) => void) {
    this.handle.change(edit)
  }

  #book({ guest, checkIn, checkOut }: StayRequest) {
    const id = newBookingId()
    rememberBooking(id)
    this.#change(d =>
      addBooking(d, id, {
        guest,
        check_in: checkIn,
        check_out: checkOut,
        channel: DIRECT,
        status: "pending",
      })
    )
    this.#guest.reset()
    this.render()
  }

  #clickNight(event: MouseEvent) {
    const cell = (event.target as Element).closest<HTMLElement>("button.night")
    const date = cell?.dataset.date
    if (!date) return
    if (this.#mode === "guest") return this.#pickStay(date)
    const selected = new Set(this.#selected)
    if (event.shiftKey && this.#anchor) {
      for (const night of datesFromTo(this.#anchor, date)) selected.add(night)
    } else if (selected.has(date)) {
      selected.delete(date)
    } else {
      selected.add(date)
    }
    this.#anchor = date
    this.#select(selected)
  }

  /** A first click picks the check-in night, a later one the check-out day. */
  #pickStay(date: IsoDate) {
    const { checkIn, checkOut } = this.#guest.stay()
    if (checkIn && !checkOut && date > checkIn) this.#guest.setStay(checkIn, date)
    else this.#guest.setStay(date)
  }

  #select(selected: Set<IsoDate>) {
    this.#selected = selected
    this.render()
  }

  #header(): HTMLElement {
    return h(
      "section",
      { class: "listing-head" },
      h("div", { class: "listing-title" }, this.#title, this.#details),
      h(
        "div",
        { class: "mode-switch", role: "group", "aria-label": "Mode" },
        ...Object.values(this.#modeButtons)
      )
    )
  }

  #modeButton(mode: Mode, text: string): HTMLButtonElement {
    const setMode = () => {
      this.#mode = mode
      this.options.onModeChange(mode)
      this.render()
    }
    return h("button", { id: `mode-${mode}`, type: "button", on: { click: setMode } }, text)
  }

  #monthNav(): HTMLElement {
    const step = (months: number) => () => {
      this.#month = addMonths(this.#month, months)
      this.render()
    }
    return h(
      "div",
      { class: "month-nav" },
      h(
        "button",
        {
          id: "prev-month",
          type: "button",
          class: "ghost",
          "aria-label": "Previous month",
          on: { click: step(-1) },
        },
        "‹"
      ),
      this.#monthLabel,
      h(
        "button",
        {
          id: "next-month",
          type: "button",
          class: "ghost",
          "aria-label": "Next month",
          on: { click: step(1) },
        },
        "›"
      )
    )
  }

  #weekdays(): HTMLElement {
    return h(
      "div",
      { class: "weekdays", "aria-hidden": "true" },
      ...weekdayNames().map(d => h("span", {}, d))
    )
  }
}

function legend(): HTMLElement {
  const item = (state: string, text: string) =>
    h("li", {}, h("span", { class: `swatch ${state}` }), text)
  return h(
    "ul",
    { class: "legend" },
    item("available", "Available"),
    item("pending", "Pending"),
    item("booked", "Booked"),
    item("blocked", "Blocked")
  )
}
