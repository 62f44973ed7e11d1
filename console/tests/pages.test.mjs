import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, baseUrl, launch, login, loginOf, newPage, screenshot } from './support.mjs'

const TAG_CLASS = { breached: 'el-tag--danger', soon: 'el-tag--warning', ok: 'el-tag--success', none: 'el-tag--info' }

describe('the tickets, plugins, outbox and audit pages', () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('the tickets queue shows SLA colours, least time left first, and a ticket opens', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'service_advisor' }))
      const customers = await apiCall(page, 'GET', '/customers?limit=1')
      const opened = await apiCall(page, 'POST', '/tickets', {
        customer_id: customers.body.items[0].id,
        channel: 'hotline',
        category: 'complaint',
        subject: '空调异响，要求回电',
        priority: 'urgent',
      })
      assert.equal(opened.status, 201, JSON.stringify(opened.body))
      assert.ok(opened.body.first_contact_due, 'routing gave the new ticket an SLA')
      await page.goto(`${baseUrl}/tickets`)
      const tags = page.locator('[data-test=ticket-queue] [data-sla]')
      await tags.first().waitFor()
      const states = await tags.evaluateAll((els) => els.map((e) => ({ state: e.getAttribute('data-sla'), cls: e.className })))
      for (const { state, cls } of states) assert.ok(cls.includes(TAG_CLASS[state]), `${state} → ${cls}`)
      const order = ['breached', 'soon', 'ok', 'none']
      const ranks = states.map((s) => order.indexOf(s.state))
      assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b), 'breached first, then under an hour, then the rest')
      assert.ok(states.some((s) => s.state === 'ok'), 'the new ticket, hours to go, is green')
      await screenshot(page, 'tickets', 'queue')
      await page.locator('[data-test=ticket-queue] .el-table__body tr').filter({ hasText: '空调异响，要求回电' }).first().click()
      await page.waitForURL(/\/tickets\/\d+$/)
      await page.getByText('处理记录').waitFor()
      await screenshot(page, 'tickets', 'detail')

      await page.getByLabel('转交部门').fill('技术支持组')
      await page.getByLabel('转交说明').fill('疑似压缩机问题')
      await page.getByRole('button', { name: '转交', exact: true }).click()
      await page.getByText(/转交：.+ → 技术支持组/).waitFor()
      await page.getByLabel('备注').fill('已电话联系车主，预约到店检测')
      await page.locator('[data-test=resolve]').click()
      await page.getByText('待处理 → 已解决').waitFor()
      await screenshot(page, 'tickets', 'handed-off-and-resolved')
      const id = Number(page.url().split('/').pop())
      const stored = await apiCall(page, 'GET', `/tickets/${id}`)
      assert.equal(stored.body.status, 'resolved')
      assert.equal(stored.body.team, '技术支持组')
    } finally {
      await context.close()
    }
  })

  test('the plugins page renders for the general manager (dealer admin)', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'general_manager' }))
      await page.goto(`${baseUrl}/plugins`)
      await page.locator('[data-test=bindings]').waitFor()
      await page.locator('[data-test=catalogue]').waitFor()
      await page.locator('[data-test=stats-chart] canvas').waitFor()
      await page.locator('[data-test=runs] .el-table__body tr').first().waitFor()
      await page.waitForLoadState('networkidle')
      assert.equal(await page.locator('.el-alert--error').count(), 0, 'no call failed')
      await screenshot(page, 'plugins', 'plugins')
    } finally {
      await context.close()
    }
  })

  test('the audit log lists entries and filters them', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ role: 'hq_admin', org: 'HQ' }))
      await page.goto(`${baseUrl}/audit`)
      const rows = page.locator('[data-test=audit-table] .el-table__body tr')
      await rows.first().waitFor()
      await screenshot(page, 'audit', 'audit')
      await page.locator('.el-select').filter({ has: page.getByRole('combobox', { name: '结果' }) }).click()
      await page.getByRole('option', { name: '成功' }).click()
      await page.waitForResponse((r) => r.url().includes('/api/v1/audit?') && r.url().includes('outcome=ok'))
      await rows.first().waitFor()
      await screenshot(page, 'audit', 'filtered')
    } finally {
      await context.close()
    }
  })

  test('the outbox shows what the owner was sent, with each attempt and the provider answer', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'general_manager' }))
      const customers = await apiCall(page, 'GET', '/customers?limit=1')
      const opened = await apiCall(page, 'POST', '/tickets', {
        customer_id: customers.body.items[0].id,
        channel: 'hotline',
        category: 'inquiry',
        subject: '询问保养套餐价格',
      })
      assert.equal(opened.status, 201, JSON.stringify(opened.body))
      const ticketId = String(opened.body.id)
      let sent
      for (let i = 0; i < 60 && !sent; i++) {
        const page1 = await apiCall(page, 'GET', '/outbox?limit=50&channel=sms')
        sent = page1.body.items.find(
          (m) => m.template === 'ticket-opened' && m.status === 'sent' && m.data.some(([k, v]) => k === 'ticket-id' && v === ticketId),
        )
        if (!sent) await new Promise((r) => setTimeout(r, 500))
      }
      assert.ok(sent, 'the outbox worker sent the owner the ticket link')
      assert.ok(sent.data.some(([k, v]) => k === 'ticket-url' && v.startsWith('/o/t/')), JSON.stringify(sent.data))
      await page.goto(`${baseUrl}/outbox`)
      const row = page.locator('[data-test=outbox-table] .el-table__body tr').filter({ hasText: 'ticket-opened' }).first()
      await row.waitFor()
      await row.getByText('已发送').waitFor()
      await row.locator('.el-table__expand-icon').click()
      await page.locator('[data-test=outbox-attempts]').getByText('logged').first().waitFor()
      await screenshot(page, 'outbox', 'attempts')

      const rules = page.locator('[data-test=messaging-rules]')
      await rules.getByLabel('免打扰开始').click()
      await page.getByRole('listbox', { name: '免打扰开始' }).getByRole('option', { name: '22:00' }).click()
      await rules.getByLabel('免打扰结束').click()
      await page.getByRole('listbox', { name: '免打扰结束' }).getByRole('option', { name: '07:00' }).click()
      await rules.getByLabel('每位车主每周最多营销条数').fill('3')
      await rules.locator('[data-test=messaging-rules-save]').click()
      await rules.locator('[data-test=messaging-rules-saved]').waitFor()
      await screenshot(page, 'outbox', 'rules')
      const me = await apiCall(page, 'GET', '/me')
      const stored = await apiCall(page, 'GET', `/network/units/${me.body.org_id}/messaging`)
      assert.deepEqual(stored.body, { quiet_start: '22:00', quiet_end: '07:00', marketing_per_week: 3 })
    } finally {
      await context.close()
    }
  })

  test('the shell works at tablet width with the menu collapsed', async () => {
    const { context, page } = await newPage(browser, { width: 820, height: 1180 })
    try {
      await login(page, loginOf({ position: 'service_advisor' }))
      await page.locator('.el-menu--collapse').waitFor()
      await screenshot(page, 'tablet', 'workbench')
    } finally {
      await context.close()
    }
  })
})
