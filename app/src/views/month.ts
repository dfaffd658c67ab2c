// The month grid: one button per night with its day, price and state.
import { type Calendar, type NightView, nightViews } from "../calendar"
import { type IsoDate, type IsoMonth, dayOfMonth, longDayLabel, monthWeeks } from "../dates"
import { formatMoney, h } from "../dom"

const STATE_TAGS: Record<NightView["state"], string> = {
  available: "",
  booked: "Booked",
  pending: "Pending",
  blocked: "Blocked",
}

export interface MonthMarks {
  today: IsoDate
  /** Nights the host has selected. */
  selected: ReadonlySet<IsoDate>
  /** The stay the guest is choosing: its nights, and its check-out morning. */
  stay: ReadonlySet<IsoDate>
  checkOut?: IsoDate
}

/** Fills `grid` with the weeks of `month`. */
export function renderMonth(
  grid: HTMLElement,
  calendar: Calendar,
  month: IsoMonth,
  marks: MonthMarks
) {
  const weeks = monthWeeks(month)
  const dates = weeks.flat().filter((d): d is IsoDate => d !== null)
  const views = nightViews(calendar, dates)
  const cells = weeks.flat().map(date => {
    const view = date ? views.get(date) : undefined
    return date && view
      ? nightCell(view, calendar.currency, marks)
      : h("span", { class: "night outside" })
  })
  grid.dataset.month = month
  grid.replaceChildren(...cells)
}

function nightCell(view: NightView, currency: string, marks: MonthMarks): HTMLElement {
  const { date, state, price } = view
  const past = date < marks.today
  const classes = ["night", state]
  if (past) classes.push("past")
  if (marks.selected.has(date)) classes.push("selected")
  if (marks.stay.has(date)) classes.push("in-stay")
  if (date === marks.checkOut) classes.push("check-out")
  if (date === marks.today) classes.push("today")
  const tag = view.blockedBy ? `Blocked (${view.blockedBy})` : STATE_TAGS[state]
  const label = [
    longDayLabel(date),
    price === undefined ? "no price" : formatMoney(price, currency),
    tag || "available",
  ]
  return h(
    "button",
    {
      type: "button",
      class: classes.join(" "),
      dataset: { date, state },
      "aria-pressed": String(marks.selected.has(date) || marks.stay.has(date)),
      "aria-label": label.join(", "),
      disabled: past,
    },
    h("span", { class: "day" }, dayOfMonth(date)),
    price === undefined
      ? h("span", { class: "price unset" }, "–")
      : h("span", { class: "price" }, formatMoney(price, currency)),
    tag && h("span", { class: "tag" }, tag)
  )
}
