// A small element builder: `h("li", {class: "x", dataset: {id}}, "text", child)`.

type Attributes = {
  class?: string
  dataset?: Record<string, string>
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (event: HTMLElementEventMap[K]) => void }>
  [attribute: string]: unknown
}

export type Child = Node | string | number | null | undefined | false

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  const { class: className, dataset, on, ...rest } = attributes
  if (className) element.className = className
  Object.assign(element.dataset, dataset ?? {})
  for (const [name, value] of Object.entries(rest)) {
    if (value === false || value === undefined || value === null) continue
    if (value === true) element.setAttribute(name, "")
    else element.setAttribute(name, String(value))
  }
  for (const [type, listener] of Object.entries(on ?? {})) {
    element.addEventListener(type, listener as EventListener)
  }
  element.append(...children.filter(isChild).map(c => (typeof c === "number" ? String(c) : c)))
  return element
}

function isChild(child: Child): child is Node | string | number {
  return child !== null && child !== undefined && child !== false
}

/** The element with `id`, which the page must have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id)
  if (!element) throw new Error(`the page has no #${id}`)
  return element as T
}

export function formatMoney(amount: number, currency: string): string {
  try {
    const digits = Number.isInteger(amount) ? 0 : 2
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(amount)
  } catch {
    return `${amount} ${currency}`
  }
}
