// The start page: the calendars opened in this browser, a new one, or one shared by link.
import { type AutomergeUrl, isValidAutomergeUrl } from "@automerge/automerge-repo"
import { type RecentCalendar, recentCalendars } from "../device"
import { h } from "../dom"

export interface HomeActions {
  create(name: string, currency: string, timezone: string): void
  open(url: AutomergeUrl): void
}

const CURRENCIES = [
  "EUR",
  "USD",
  "GBP",
  "CHF",
  "SEK",
  "NOK",
  "DKK",
  "PLN",
  "CZK",
  "JPY",
  "AUD",
  "CAD",
]

export function renderHome(actions: HomeActions): HTMLElement {
  return h(
    "div",
    { class: "home" },
    h(
      "section",
      { class: "intro" },
      h("h1", {}, "Rental calendars that work offline"),
      h(
        "p",
        { class: "muted" },
        "Prices, blocks and bookings live on this device and sync through the server when there is a network. ",
        "Share a calendar's link to edit it together."
      )
    ),
    h(
      "div",
      { class: "home-grid" },
      recentList(),
      h("div", { class: "stack" }, createForm(actions), openForm(actions))
    )
  )
}

function recentList(): HTMLElement {
  const calendars = recentCalendars()
  const item = (c: RecentCalendar) =>
    h(
      "li",
      {},
      h(
        "a",
        { href: `#${c.url}`, class: "recent", dataset: { url: c.url } },
        h("strong", {}, c.name || "Untitled listing"),
        h("span", { class: "muted" }, `opened ${new Date(c.openedAt).toLocaleDateString()}`)
      )
    )
  return h(
    "section",
    { class: "card panel" },
    h("h2", {}, "Your calendars"),
    calendars.length === 0
      ? h(
          "p",
          { class: "muted" },
          "No calendars on this device yet. Create one, or open a shared link."
        )
      : h("ul", { id: "recent", class: "recent-list" }, ...calendars.map(item))
  )
}

function createForm(actions: HomeActions): HTMLElement {
  const name = h("input", {
    id: "new-name",
    required: true,
    maxlength: "80",
    placeholder: "Seaside loft",
  })
  const currency = h(
    "select",
    { id: "new-currency" },
    ...CURRENCIES.map(c => h("option", { value: c }, c))
  )
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"
  const timezone = h("input", { id: "new-timezone", required: true, value: zone })
  const problem = h("p", { class: "problem", role: "alert" })
  const field = (label: string, input: HTMLElement) =>
    h("label", { class: "field" }, h("span", {}, label), input)
  return h(
    "form",
    {
      id: "new-calendar",
      class: "card panel",
      on: {
        submit: event => {
          event.preventDefault()
          const zone = timezone.value.trim()
          if (!isTimeZone(zone)) {
            problem.textContent = `"${zone}" is not a time zone this browser knows, such as Europe/Lisbon.`
            return
          }
          actions.create(name.value.trim(), currency.value, zone)
        },
      },
    },
    h("h2", {}, "New calendar"),
    field("Listing name", name),
    h("div", { class: "row" }, field("Currency", currency), field("Time zone", timezone)),
    problem,
    h("button", { id: "create", type: "submit", class: "primary" }, "Create calendar")
  )
}

function openForm(actions: HomeActions): HTMLElement {
  const link = h("input", {
    id: "open-link",
    required: true,
    placeholder: "automerge:… or a link to /app/#automerge:…",
  })
  const problem = h("p", { class: "problem", role: "alert" })
  return h(
    "form",
    {
      id: "open-calendar",
      class: "card panel",
      on: {
        submit: event => {
          event.preventDefault()
          const url = calendarUrlIn(link.value)
          if (url) actions.open(url)
          else problem.textContent = "That is not a calendar link."
        },
      },
    },
    h("h2", {}, "Open a shared calendar"),
    h("label", { class: "field" }, h("span", {}, "Link"), link),
    problem,
    h("button", { type: "submit", class: "secondary" }, "Open")
  )
}

/** The `automerge:` URL in a pasted link, a bare URL or a bare document id. */
export function calendarUrlIn(text: string): AutomergeUrl | undefined {
  const trimmed = text.trim()
  const found = trimmed.match(/automerge:[1-9A-HJ-NP-Za-km-z]+/)?.[0] ?? `automerge:${trimmed}`
  return isValidAutomergeUrl(found) ? found : undefined
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone })
    return zone !== ""
  } catch {
    return false
  }
}
