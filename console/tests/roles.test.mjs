import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, env, launch, lockoutLogin, login, loginOf, menuPaths, newPage, screenshot } from './support.mjs'

const MENU = {
  '/': null,
  '/dashboards': 'read_records',
  '/customers': 'read_records',
  '/sales': 'read_records',
  '/approvals': 'read_records',
  '/tickets': 'read_records',
  '/service/appointments': 'read_records',
  '/service/repair-orders': 'read_records',
  '/plugins': 'read_plugins',
  '/outbox': 'operate_workers',
  '/audit': 'read_audit',
}
/** Entries some roles with the permission do not get: service staff sell nothing, sales staff do no after-sales work. */
const NOT_FOR = { '/sales': ['service'], '/service/appointments': ['sales'], '/service/repair-orders': ['sales'] }
/** Entries that open a page of their own; a dealer's staff see their store's cockpit. */
const DEALER_ROLES = ['dealer_admin', 'sales', 'service']
const landing = (path, role) => (path === '/dashboards' && DEALER_ROLES.includes(role) ? '/dashboards/store' : { '/sales': '/sales/leads' }[path] ?? path)

describe('each role signs in and sees its own menu', () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  for (const account of env.logins.filter((l) => l !== lockoutLogin)) {
    const name = `roles-${account.org_code}-${account.position ?? account.role}`
    test(`${account.org_code} ${account.role} ${account.position ?? ''}`, async () => {
      const { context, page } = await newPage(browser)
      try {
        await login(page, account)
        const session = await apiCall(page, 'GET', '/session')
        assert.equal(session.status, 200)
        const me = session.body.me
        assert.equal(me.username, account.username)
        assert.equal(me.role, account.role)
        await assert.doesNotReject(page.getByText(me.name, { exact: true }).first().waitFor())
        const expected = Object.entries(MENU)
          .filter(([path, permission]) => (permission === null || me.permissions.includes(permission)) && !NOT_FOR[path]?.includes(me.role))
          .map(([path]) => path)
        assert.deepEqual(await menuPaths(page), expected)
        for (const path of expected) {
          await page.locator(`[data-test=side-menu] [data-menu="${path}"]`).click()
          await page.waitForURL(`${env.base_url}${landing(path, me.role)}`)
          await page.waitForLoadState('networkidle')
          await page.locator('.el-loading-mask').first().waitFor({ state: 'hidden' })
          const errors = await page.locator('.el-alert--error').allInnerTexts()
          assert.deepEqual(errors, [], `${path} shows no failed call`)
          await screenshot(page, name, path === '/' ? 'workbench' : path.slice(1).replaceAll('/', '-'))
        }
      } finally {
        await context.close()
      }
    })
  }

  test('a technician sees no 插件 entry and gets the 403 page at /plugins', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'technician' }))
      const paths = await menuPaths(page)
      assert.ok(!paths.includes('/plugins'), `menu ${paths}`)
      assert.equal(await page.locator('[data-test=side-menu]').getByText('插件').count(), 0)
      await page.goto(`${env.base_url}/plugins`)
      await page.locator('[data-test=forbidden]').waitFor()
      await screenshot(page, 'roles-technician', 'plugins-forbidden')
    } finally {
      await context.close()
    }
  })

  test("a sales consultant opening another dealer's customer sees the not-found message", async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'sales_consultant' }))
      await page.goto(`${env.base_url}/customers/${env.foreign_customer_id}`)
      await page.getByText('客户不存在或不在您的权限范围内').waitFor()
      await screenshot(page, 'roles-sales-consultant', 'foreign-customer')
    } finally {
      await context.close()
    }
  })

  test('the header switches to English and keeps the choice after a reload', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'general_manager' }))
      await page.locator('.el-select').filter({ has: page.getByRole('combobox', { name: '语言' }) }).click()
      await page.getByRole('option', { name: 'English' }).click()
      await page.locator('[data-test=side-menu]').getByText('Customers').waitFor()
      await page.reload()
      await page.locator('[data-test=side-menu]').getByText('Customers').waitFor()
      await screenshot(page, 'roles-english', 'workbench')
    } finally {
      await context.close()
    }
  })
})
