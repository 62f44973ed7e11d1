import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, baseUrl, launch, lockoutLogin, login, loginOf, newPage, screenshot } from './support.mjs'

describe('signing in and out', () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('a write with the session cookie but without its CSRF token is refused and stores nothing', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'sales_consultant' }), '/customers')
      const name = `跨站伪造${Date.now() % 100000}`
      const customer = { name, phones: [{ number: '13911112222' }], tags: [] }
      const forged = await apiCall(page, 'POST', '/customers', customer, { 'X-CSRF-Token': '' })
      assert.equal(forged.status, 403)
      assert.equal(forged.body.code, 'csrf')
      const listed = await apiCall(page, 'GET', `/customers?name=${encodeURIComponent(name)}`)
      assert.deepEqual(listed.body.items, [])
      const made = await apiCall(page, 'POST', '/customers', customer)
      assert.equal(made.status, 201, JSON.stringify(made.body))
    } finally {
      await context.close()
    }
  })

  test('a wrong password is refused in words, and five of them lock the account', async () => {
    const account = lockoutLogin
    const { context, page } = await newPage(browser)
    try {
      await page.goto(`${baseUrl}/login`)
      const error = page.locator('[data-test=login-error]')
      await page.getByLabel('用户名').fill(account.username)
      await page.getByLabel('密码', { exact: true }).fill('not-the-password-1')
      await page.locator('[data-test=login-submit]').click()
      await error.getByText('用户名或密码错误').waitFor()
      await screenshot(page, 'login-wrong-password', 'login')
      for (let attempt = 2; attempt <= 5; attempt += 1) {
        await page.getByLabel('密码', { exact: true }).fill(`not-the-password-${attempt}`)
        await Promise.all([
          page.waitForResponse((r) => r.url().endsWith('/api/v1/session') && r.request().method() === 'POST'),
          page.locator('[data-test=login-submit]').click(),
        ])
      }
      await page.getByLabel('密码', { exact: true }).fill(account.password)
      await page.locator('[data-test=login-submit]').click()
      await error.getByText(/账号已临时锁定，请 \d+ 分钟后再试/).waitFor()
      assert.match(page.url(), /\/login/)
      await screenshot(page, 'login-locked', 'login')
    } finally {
      await context.close()
    }
  })

  test('after a deep link the login page sends the person on to it', async () => {
    const { context, page } = await newPage(browser)
    try {
      await page.goto(`${baseUrl}/tickets`)
      await page.waitForURL(/\/login\?next=(%2F|\/)tickets/)
      await login(page, loginOf({ position: 'service_advisor' }), '/tickets')
      await page.waitForURL(`${baseUrl}/tickets`)
      await screenshot(page, 'login-next', 'tickets')
    } finally {
      await context.close()
    }
  })

  test('after logout the old cookie no longer reads the session', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'sales_manager' }))
      const cookie = (await context.cookies()).find((c) => c.name === 'dealer_session')
      assert.ok(cookie, 'the host set dealer_session')
      assert.ok(cookie.httpOnly, 'the session cookie is HttpOnly')
      const before = await fetch(`${baseUrl}/api/v1/session`, { headers: { Cookie: `dealer_session=${cookie.value}` } })
      assert.equal(before.status, 200)
      await page.locator('[data-test=logout]').click()
      await page.waitForURL(/\/login/)
      await screenshot(page, 'logout', 'login')
      const afterLogout = await fetch(`${baseUrl}/api/v1/session`, { headers: { Cookie: `dealer_session=${cookie.value}` } })
      assert.equal(afterLogout.status, 401)
    } finally {
      await context.close()
    }
  })

  test('a session that ends sends the next call to the login page, which comes back after', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'sales_consultant' }))
      await context.clearCookies()
      await page.locator('[data-test=side-menu] [data-menu="/customers"]').click()
      await page.waitForURL(/\/login\?next=(%2F|\/)customers/)
      await screenshot(page, 'session-ended', 'login')
      await login(page, loginOf({ position: 'sales_consultant' }), '/customers')
      await page.waitForURL(`${baseUrl}/customers`)
    } finally {
      await context.close()
    }
  })

  test('the password is changed from the header, a wrong current one refused', async () => {
    const account = loginOf({ position: 'finance_desk' })
    const changed = `${account.password}-new`
    const { context, page } = await newPage(browser)
    try {
      await login(page, account)
      await page.locator('[data-test=change-password]').click()
      await page.getByLabel('当前密码').fill('not-my-password')
      await page.getByLabel('新密码', { exact: true }).fill(changed)
      await page.getByLabel('再次输入新密码').fill(changed)
      await page.locator('[data-test=password-submit]').click()
      await page.locator('[data-test=password-error]').waitFor()
      await screenshot(page, 'password', 'wrong-current')
      await page.getByLabel('当前密码').fill(account.password)
      await page.locator('[data-test=password-submit]').click()
      await page.getByText('密码已修改').waitFor()
      const signIn = (password) =>
        fetch(`${baseUrl}/api/v1/session`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username: account.username, password }),
        })
      assert.equal((await signIn(changed)).status, 201)
      const back = await apiCall(page, 'PUT', '/session/password', { current_password: changed, new_password: account.password })
      assert.equal(back.status, 204)
    } finally {
      await context.close()
    }
  })
})
