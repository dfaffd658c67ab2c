// Calendar dates as the documents hold them: `YYYY-MM-DD` text, with no time and no zone (a
// listing's dates are in its own time zone). Arithmetic goes through UTC midnights, where every
// day has 24 hours.

/** A date, `YYYY-MM-DD`. */
export type IsoDate = string
/** A month, `YYYY-MM`. */
export type IsoMonth = string

const DAY_MS = 86_400_000
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/

export function isIsoDate(text: unknown): text is IsoDate {
  return typeof text === "string" && ISO_DATE.test(text) && !Number.isNaN(toUtc(text))
}

function toUtc(date: IsoDate): number {
  return Date.parse(`${date}T00:00:00Z`)
}

function fromUtc(ms: number): IsoDate {
  return new Date(ms).toISOString().slice(0, 10)
}

export function addDays(date: IsoDate, days: number): IsoDate {
  return fromUtc(toUtc(date) + days * DAY_MS)
}

/** Nights from `from` to `to` (exclusive); negative when `to` comes first. */
export function daysBetween(from: IsoDate, to: IsoDate): number {
  return Math.round((toUtc(to) - toUtc(from)) / DAY_MS)
}

/** The nights of a stay: `checkIn` up to the night before `checkOut`, at most `limit` of them. */
export function nightsOf(checkIn: IsoDate, checkOut: IsoDate, limit = 366): IsoDate[] {
  const count = Math.min(daysBetween(checkIn, checkOut), limit)
  return Array.from({ length: Math.max(count, 0) }, (_, i) => addDays(checkIn, i))
}

/** Every date from `a` to `b`, both included, in order whichever comes first. */
export function datesFromTo(a: IsoDate, b: IsoDate): IsoDate[] {
  const [first, last] = a <= b ? [a, b] : [b, a]
  return nightsOf(first, addDays(last, 1))
}

export function monthOf(date: IsoDate): IsoMonth {
  return date.slice(0, 7)
}

export function addMonths(month: IsoMonth, months: number): IsoMonth {
  const [year, index] = month.split("-").map(Number)
  const first = new Date(Date.UTC(year, index - 1 + months, 1))
  return first.toISOString().slice(0, 7)
}

/**
 * The month as calendar weeks starting on Monday: each row holds seven dates, `null` for the
 * days of the neighbouring months.
 */
export function monthWeeks(month: IsoMonth): (IsoDate | null)[][] {
  const first = `${month}-01`
  const length = daysBetween(first, `${addMonths(month, 1)}-01`)
  const leading = (new Date(toUtc(first)).getUTCDay() + 6) % 7
  const cells: (IsoDate | null)[] = [
    ...Array<null>(leading).fill(null),
    ...Array.from({ length }, (_, i) => addDays(first, i)),
  ]
  while (cells.length % 7 !== 0) cells.push(null)
  const weeks = []
  for (let i = 0; i < cells.length; i += 7) weeks.push(cells.slice(i, i + 7))
  return weeks
}

/** Today's date in `timeZone` (the device's zone if it is not one the browser knows). */
export function todayIn(timeZone: string): IsoDate {
  const format = (zone?: string) => {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      calendar: "gregory",
      numberingSystem: "latn",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    }).formatToParts(new Date())
    const part = (type: Intl.DateTimeFormatPartTypes) =>
      parts.find(p => p.type === type)?.value ?? ""
    return `${part("year").padStart(4, "0")}-${part("month")}-${part("day")}`
  }
  try {
    return format(timeZone)
  } catch {
    return format()
  }
}

const monthFormat = new Intl.DateTimeFormat(undefined, {
  month: "long",
  year: "numeric",
  timeZone: "UTC",
})
const dayFormat = new Intl.DateTimeFormat(undefined, {
  day: "numeric",
  month: "short",
  timeZone: "UTC",
})
const longDayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  day: "numeric",
  month: "long",
  year: "numeric",
  timeZone: "UTC",
})

export const monthLabel = (month: IsoMonth) => monthFormat.format(toUtc(`${month}-01`))
export const dayLabel = (date: IsoDate) => dayFormat.format(toUtc(date))
export const longDayLabel = (date: IsoDate) => longDayFormat.format(toUtc(date))
export const dayOfMonth = (date: IsoDate) => Number(date.slice(8, 10))

/** Monday to Sunday, short names in the browser's language. */
export function weekdayNames(): string[] {
  const format = new Intl.DateTimeFormat(undefined, { weekday: "short", timeZone: "UTC" })
  // 2024-01-01 was a Monday.
  return Array.from({ length: 7 }, (_, i) => format.format(toUtc(addDays("2024-01-01", i))))
}
