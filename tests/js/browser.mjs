// Headless Chromium for the browser suites (the inspector, the calendar app): Debian's Chromium,
// driven by playwright-core, which downloads no browser of its own.
//
// SYNCLINE_CHROMIUM names the executable (default /usr/bin/chromium); screenshots go to
// SYNCLINE_ARTIFACTS (default target/artifacts/).
import fs from "node:fs"
import path from "node:path"
import { chromium } from "playwright-core"
import { REPO_ROOT, withTimeout } from "./server.mjs"

const CHROMIUM = process.env.SYNCLINE_CHROMIUM || "/usr/bin/chromium"
const ARTIFACTS = process.env.SYNCLINE_ARTIFACTS || path.join(REPO_ROOT, "target", "artifacts")

// The machine has no network: keep Chromium from reaching for one.
const QUIET_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
]

/** Starts Chromium with `extraArgs` beside the quiet ones, within `ms`; fails clearly if missing. */
export async function launchChromium({ ms, extraArgs = [] }) {
  fs.accessSync(CHROMIUM, fs.constants.X_OK)
  return withTimeout(
    chromium.launch({ executablePath: CHROMIUM, args: [...QUIET_ARGS, ...extraArgs], timeout: ms }),
    ms + 5_000,
    `Chromium (${CHROMIUM}) to start`
  )
}

/** Saves a full-page screenshot of `page` as `name` (a .png file name) among the artifacts. */
export function saveScreenshot(page, name, { ms }) {
  fs.mkdirSync(ARTIFACTS, { recursive: true })
  return page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true, timeout: ms })
}
