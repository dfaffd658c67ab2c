// Host tools: price, block and unblock the nights selected in the grid.
import type { IsoDate } from "../dates"
import { dayLabel } from "../dates"
import { h } from "../dom"

export interface HostActions {
  setPrice(price: number): void
  setBlocked(blocked: boolean): void
  clearSelection(): void
}

export class HostPanel {
  readonly element: HTMLElement
  #summary = h("p", { id: "selection-summary", class: "muted" })
  #price = h("input", {
    id: "price",
    type: "number",
    min: "0",
    step: "1",
    inputmode: "decimal",
    placeholder: "e.g. 120",
    required: true,
  })
  #buttons: HTMLButtonElement[] = []

  constructor(actions: HostActions) {
    const button = (id: string, text: string, onClick?: () => void, kind = "secondary") => {
      const type = onClick ? "button" : "submit"
      const b = h("button", { id, type, class: kind, on: onClick ? { click: onClick } : {} }, text)
      this.#buttons.push(b)
      return b
    }
    const form = h(
      "form",
      {
        class: "price-form",
        on: {
          submit: event => {
            event.preventDefault()
            const price = this.#price.valueAsNumber
            if (Number.isFinite(price) && price >= 0) actions.setPrice(price)
          },
        },
      },
      h("label", { for: "price" }, "Price per night"),
      h(
        "div",
        { class: "row" },
        this.#price,
        button("set-price", "Set price", undefined, "primary")
      )
    )
    this.element = h(
      "section",
      { id: "host-panel", class: "card panel" },
      h("h2", {}, "Prices and availability"),
      this.#summary,
      form,
      h(
        "div",
        { class: "row" },
        button("block", "Block", () => actions.setBlocked(true)),
        button("unblock", "Unblock", () => actions.setBlocked(false)),
        button("clear-selection", "Clear", () => actions.clearSelection(), "ghost")
      )
    )
  }

  update(selected: ReadonlySet<IsoDate>) {
    const dates = [...selected].sort()
    this.#summary.textContent =
      dates.length === 0
        ? "Select nights in the calendar (shift-click selects a range)."
        : dates.length === 1
          ? `1 night selected: ${dayLabel(dates[0])}`
          : `${dates.length} nights selected: ${dayLabel(dates[0])} – ${dayLabel(dates.at(-1)!)}`
    for (const button of this.#buttons) button.disabled = dates.length === 0
  }
}
