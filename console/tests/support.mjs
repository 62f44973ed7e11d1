// Helpers of the browser tests: the environment a host's start script wrote, a headless
// Chromium, signing in through the login page, screenshots and API calls with the session.
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
const resultsDir = join(here, '..', 'test-results')

function readEnv() {
  const path = process.env.CONSOLE_TEST_ENV
  if (!path) throw new Error('CONSOLE_TEST_ENV must name the JSON file the host start script wrote')
  return JSON.parse(readFileSync(path, 'utf8'))
}

export const env = readEnv()
export const baseUrl = env.base_url.replace(/\/$/, '')

/** The login of `org_code` holding `position` (or, without one, `role`). */
export function loginOf({ org = 'BJ-CY-4S', position, role }) {
  const found = env.logins.find(
    (l) => l.org_code === org && (position ? l.position === position : true) && (role ? l.role === role : true),
  )
  if (!found) throw new Error(`no login for ${JSON.stringify({ org, position, role })} in the test environment`)
  return found
}

/**
 * The login the lock-out test locks for 15 minutes: another dealer's, and one no other test
 * needs when the environment has a spare (the SH-PD-4S sales consultant).
 */
export const lockoutLogin =
  env.logins.find((l) => l.org_code === 'SH-PD-4S' && l.position === 'sales_consultant') ??
  loginOf({ org: 'SH-PD-4S', position: 'general_manager' })

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  })
}

/** A fresh browser context at 1366×768 with its first page. */
export async function newPage(browser, viewport = { width: 1366, height: 768 }) {
  const context = await browser.newContext({ viewport, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' })
  const page = await context.newPage()
  return { context, page }
}

/**
 * A full-page screenshot taken by growing the viewport to the page's height (Chromium's own
 * full-page capture passes the page through a 1×1 viewport, which folds the menu, and
 * draws the sticky header where the page was scrolled to).
 */
export async function screenshot(page, test, name) {
  mkdirSync(resultsDir, { recursive: true })
  const viewport = page.viewportSize()
  const height = await page.evaluate(() => document.documentElement.scrollHeight)
  await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, height) })
  await page.evaluate(() => window.scrollTo(0, 0))
  await page.screenshot({ path: join(resultsDir, `${test}-${name}.png`), animations: 'disabled' })
  await page.setViewportSize(viewport)
}

/** Fills in the login page as `login` and waits for the shell to show who is signed in. */
export async function login(page, login, next = '/') {
  await page.goto(`${baseUrl}/login?next=${encodeURIComponent(next)}`)
  await page.getByLabel('用户名').fill(login.username)
  await page.getByLabel('密码', { exact: true }).fill(login.password)
  await page.locator('[data-test=login-submit]').click()
  await page.locator('[data-test=who]').waitFor()
}

/** Calls the API from inside the page, with its session cookie and (for writes) its CSRF token. */
export async function apiCall(page, method, path, body, headers = {}) {
  return page.evaluate(
    async ({ method, path, body, headers }) => {
      const session = await fetch('/api/v1/session', { credentials: 'same-origin' })
      const token = session.ok ? (await session.json()).csrf_token : ''
      const response = await fetch(`/api/v1${path}`, {
        method,
        credentials: 'same-origin',
        headers: {
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...(method === 'GET' ? {} : { 'X-CSRF-Token': token }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const text = await response.text()
      const parse = () => {
        try {
          return text ? JSON.parse(text) : null
        } catch {
          return text
        }
      }
      return { status: response.status, etag: response.headers.get('ETag'), body: parse() }
    },
    { method, path, body, headers },
  )
}

/** The paths of the side menu's entries. */
export async function menuPaths(page) {
  return page.locator('[data-test=side-menu] [data-menu]').evaluateAll((items) => items.map((i) => i.getAttribute('data-menu')))
}
