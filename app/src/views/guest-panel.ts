// The guest's booking form: a name and a stay, checked against the calendar as it stands here.
// The server has the last word: the booking goes in as pending and it confirms or rejects it.
import { type Calendar, stayPrice, stayProblem } from "../calendar"
import { type IsoDate, addDays, daysBetween, isIsoDate } from "../dates"
import { formatMoney, h } from "../dom"

export interface StayRequest {
  guest: string
  checkIn: IsoDate
  checkOut: IsoDate
}

export class GuestPanel {
  readonly element: HTMLElement
  readonly guest = h("input", {
    id: "guest-name",
    autocomplete: "name",
    maxlength: "60",
    required: true,
  })
  readonly checkIn = h("input", { id: "check-in", type: "date", required: true })
  readonly checkOut = h("input", { id: "check-out", type: "date", required: true })
  #summary = h("p", { id: "stay-summary", class: "muted" })
  #problem = h("p", { id: "stay-problem", class: "problem", role: "alert" })
  #book = h("button", { id: "book", type: "submit", class: "primary" }, "Request booking")

  constructor(
    book: (request: StayRequest) => void,
    private readonly onDatesChanged: () => void
  ) {
    const field = (label: string, input: HTMLInputElement) =>
      h("label", { class: "field" }, h("span", {}, label), input)
    for (const input of [this.checkIn, this.checkOut]) {
      input.addEventListener("input", () => this.onDatesChanged())
    }
    this.guest.addEventListener("input", () => this.onDatesChanged())
    this.element = h(
      "section",
      { id: "guest-panel", class: "card panel" },
      h("h2", {}, "Book a stay"),
      h(
        "form",
        {
          class: "book-form",
          on: {
            submit: event => {
              event.preventDefault()
              if (this.#book.disabled) return
              book({
                guest: this.guest.value.trim(),
                checkIn: this.checkIn.value,
                checkOut: this.checkOut.value,
              })
            },
          },
        },
        field("Guest name", this.guest),
        h(
          "div",
          { class: "row dates" },
          field("Check-in", this.checkIn),
          field("Check-out", this.checkOut)
        ),
        this.#summary,
        this.#problem,
        this.#book,
        h("p", { class: "hint" }, "The server confirms requests in the order they reach it.")
      )
    )
  }

  /** The stay as chosen so far: its check-in, and its check-out if it is a valid one. */
  stay(): { checkIn?: IsoDate; checkOut?: IsoDate } {
    const checkIn = isIsoDate(this.checkIn.value) ? this.checkIn.value : undefined
    const out = this.checkOut.value
    const checkOut = checkIn && isIsoDate(out) && daysBetween(checkIn, out) > 0 ? out : undefined
    return { checkIn, checkOut }
  }

  setStay(checkIn: IsoDate, checkOut?: IsoDate) {
    this.checkIn.value = checkIn
    this.checkOut.value = checkOut ?? ""
    this.onDatesChanged()
  }

  reset() {
    this.checkIn.value = ""
    this.checkOut.value = ""
  }

  update(calendar: Calendar, today: IsoDate) {
    this.checkIn.min = today
    // Check-out is the morning after the last night, so it comes a day after check-in at least.
    this.checkOut.min = addDays(isIsoDate(this.checkIn.value) ? this.checkIn.value : today, 1)
    const { checkIn, checkOut } = this.stay()
    const chosen = this.checkIn.value !== "" || this.checkOut.value !== ""
    const problem = chosen
      ? stayProblem(calendar, this.checkIn.value, this.checkOut.value, today)
      : undefined
    this.#problem.textContent = problem ?? ""
    this.#book.disabled =
      !checkIn || !checkOut || problem !== undefined || this.guest.value.trim() === ""
    if (checkIn && checkOut && !problem) {
      const nights = daysBetween(checkIn, checkOut)
      const total = stayPrice(calendar, checkIn, checkOut)
      const price = total === undefined ? "price on request" : formatMoney(total, calendar.currency)
      this.#summary.textContent = `${nights} ${nights === 1 ? "night" : "nights"} · ${price}`
    } else {
      this.#summary.textContent = chosen
        ? ""
        : "Pick the check-in night, then the check-out day, in the calendar."
    }
  }
}
