import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, baseUrl, launch, login, loginOf, newPage, screenshot } from './support.mjs'

/** A draft order with a 5% discount, asked for by `page`'s person: the built-in rule (or the dealer's plugin) asks the sales manager. */
async function createPendingDiscount(page) {
  const customers = await apiCall(page, 'GET', '/customers?limit=1')
  const order = await apiCall(page, 'POST', '/orders', {
    customer_id: customers.body.items[0].id,
    brand: '远航',
    model: 'Y7',
    list_price_fen: 20_000_000,
    vehicle_cost_fen: 18_000_000,
  })
  assert.equal(order.status, 201, JSON.stringify(order.body))
  const patched = await apiCall(page, 'PATCH', `/orders/${order.body.id}`, { discount_fen: 1_000_000 }, { 'If-Match': order.etag ?? `"${order.body.version}"` })
  assert.equal(patched.status, 200, JSON.stringify(patched.body))
}

describe('the approvals inbox', () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('the sales manager approves a pending request and it leaves the inbox', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'sales_manager' }))
      let mine = await apiCall(page, 'GET', '/approvals?status=pending&mine=true')
      assert.equal(mine.status, 200)
      if (mine.body.length === 0) {
        const asker = await newPage(browser)
        try {
          await login(asker.page, loginOf({ position: 'sales_consultant' }))
          await createPendingDiscount(asker.page)
        } finally {
          await asker.context.close()
        }
        mine = await apiCall(page, 'GET', '/approvals?status=pending&mine=true')
      }
      assert.ok(mine.body.length > 0, 'a request waits for the sales manager')
      const request = mine.body[0]

      await page.goto(`${baseUrl}/approvals`)
      const row = page.locator('[data-test=approvals-table] .el-table__body tr').filter({ hasText: request.description }).first()
      await row.waitFor()
      await screenshot(page, 'approvals', 'inbox')
      await row.locator('.el-table__expand-icon').click()
      await page.locator('.el-step').first().waitFor()
      await screenshot(page, 'approvals', 'steps')

      await row.locator('[data-test=reject]').click()
      await page.locator('[data-test=decision-submit]').click()
      await page.getByText('驳回必须填写原因').waitFor()
      await screenshot(page, 'approvals', 'reject-needs-reason')
      await page.getByRole('button', { name: '取消' }).click()

      await row.locator('[data-test=approve]').click()
      await page.locator('textarea[data-test=decision-comment]').fill('同意，客户为老客户')
      await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/api/v1/approvals/${request.id}/approve`) && r.status() === 200),
        page.locator('[data-test=decision-submit]').click(),
      ])
      const after = await apiCall(page, 'GET', `/approvals/${request.id}`)
      const step = after.body.steps.find((s) => s.comment === '同意，客户为老客户')
      assert.equal(step?.status, 'approved')
      await page.locator('[data-test=approvals-table]').waitFor()
      await screenshot(page, 'approvals', 'after-approve')
    } finally {
      await context.close()
    }
  })
})
