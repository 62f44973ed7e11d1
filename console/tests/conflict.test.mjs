import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, baseUrl, launch, login, loginOf, newPage, screenshot } from './support.mjs'

describe('a stale edit in a second tab', () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('the second save is told of the conflict and keeps what was typed', async () => {
    const { context, page: first } = await newPage(browser)
    try {
      await login(first, loginOf({ position: 'sales_manager' }))
      const list = await apiCall(first, 'GET', '/customers?limit=1')
      const customer = list.body.items[0]
      const second = await context.newPage()
      for (const page of [first, second]) {
        await page.goto(`${baseUrl}/customers/${customer.id}`)
        await page.locator('[data-test=edit-customer]').click()
        await page.locator('input[data-test=edit-name]').waitFor()
      }
      const firstName = `${customer.name}甲`
      const secondName = `${customer.name}乙`

      await first.locator('input[data-test=edit-name]').fill(firstName)
      await first.locator('[data-test=edit-save]').click()
      await first.locator('[data-test=customer-name]').getByText(firstName).waitFor()
      await screenshot(first, 'conflict', 'first-saved')

      await second.locator('input[data-test=edit-name]').fill(secondName)
      await second.locator('[data-test=edit-save]').click()
      const conflict = second.locator('[data-test=conflict]')
      await conflict.getByText('该客户已被他人修改').waitFor()
      await conflict.getByText(`${customer.name} → ${firstName}`).waitFor()
      assert.equal(await second.locator('input[data-test=edit-name]').inputValue(), secondName)
      await screenshot(second, 'conflict', 'second-conflict')

      await second.locator('[data-test=edit-save]').click()
      await second.locator('[data-test=customer-name]').getByText(secondName).waitFor()
      const stored = await apiCall(second, 'GET', `/customers/${customer.id}`)
      assert.equal(stored.body.name, secondName)
      await screenshot(second, 'conflict', 'second-saved')
      await apiCall(second, 'PATCH', `/customers/${customer.id}`, { name: customer.name }, { 'If-Match': stored.etag })
    } finally {
      await context.close()
    }
  })

  test('custom fields are edited with the checks their definitions make', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'general_manager' }))
      for (const def of [
        { entity: 'customer', key: 'family_size', label: '家庭人数', type: 'integer', min: 1, max: 12 },
        { entity: 'customer', key: 'preferred_contact', label: '联系偏好', type: 'choice', choices: ['电话', '微信'] },
      ]) {
        const made = await apiCall(page, 'POST', '/custom-fields', def)
        assert.ok([201, 409].includes(made.status), JSON.stringify(made.body))
      }
      const me = (await apiCall(page, 'GET', '/session')).body.me
      const list = await apiCall(page, 'GET', '/customers?limit=50')
      const customer = list.body.items.filter((c) => c.dealer_id === me.org_unit_id).at(-1)
      await page.goto(`${baseUrl}/customers/${customer.id}`)
      await page.locator('[data-test=edit-customer]').click()
      const size = page.getByRole('spinbutton', { name: '家庭人数' })
      await size.fill('20')
      await size.blur()
      await page.getByText('不能大于 12').waitFor()
      await screenshot(page, 'custom-fields', 'out-of-range')
      await size.fill('3')
      await size.blur()
      await page.locator('.el-select').filter({ has: page.getByRole('combobox', { name: '联系偏好' }) }).click()
      await page.getByRole('option', { name: '微信' }).click()
      await page.locator('[data-test=edit-save]').click()
      await page.locator('[data-test=edit-save]').waitFor({ state: 'detached' })
      const stored = await apiCall(page, 'GET', `/customers/${customer.id}`)
      assert.equal(stored.body.custom_fields.family_size, 3)
      assert.equal(stored.body.custom_fields.preferred_contact, '微信')
      await page.getByText('家庭人数').first().waitFor()
      await screenshot(page, 'custom-fields', 'saved')
    } finally {
      await context.close()
    }
  })
})
