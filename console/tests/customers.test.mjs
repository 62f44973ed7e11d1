import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, baseUrl, launch, login, loginOf, newPage, screenshot } from './support.mjs'

async function searchFor(page, text) {
  const box = page.locator('input[data-test=customer-search]')
  await box.fill('')
  await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/v1/customers?') && r.status() === 200),
    box.fill(text),
  ])
  const rows = page.locator('[data-test=customer-results] .el-table__body tr')
  await rows.first().waitFor()
  return rows
}

describe('customer search and the 360 view', () => {
  let browser
  let context
  let page
  before(async () => {
    browser = await launch()
    ;({ context, page } = await newPage(browser))
    await login(page, loginOf({ position: 'general_manager' }))
  })
  after(async () => {
    await context?.close()
    await browser?.close()
  })

  test('search by name, phone and plate shows the customer, and a row opens the 360', async () => {
    const customers = await apiCall(page, 'GET', '/customers?limit=50')
    assert.equal(customers.status, 200)
    const withPhone = customers.body.items.find((c) => c.phones.some((p) => /^1\d{10}$/.test(p.number)))
    assert.ok(withPhone, 'the demo has a customer with a full mobile number')

    await page.goto(`${baseUrl}/customers`)
    let rows = await searchFor(page, withPhone.name)
    assert.match(await page.locator('[data-test=search-kind]').innerText(), /姓名/)
    assert.ok(await rows.filter({ hasText: withPhone.name }).count() >= 1)
    await screenshot(page, 'customers-by-name', 'customers')

    const phone = withPhone.phones.find((p) => /^1\d{10}$/.test(p.number)).number
    rows = await searchFor(page, phone)
    assert.match(await page.locator('[data-test=search-kind]').innerText(), /手机号/)
    await rows.filter({ hasText: withPhone.name }).first().waitFor()
    await screenshot(page, 'customers-by-phone', 'customers')

    const vehicles = await apiCall(page, 'GET', '/vehicles?limit=50')
    const car = vehicles.body.items.find((v) => v.plate && v.people.some((p) => !p.until))
    assert.ok(car, 'the demo has a vehicle with a plate and a current owner or driver')
    rows = await searchFor(page, car.plate)
    assert.match(await page.locator('[data-test=search-kind]').innerText(), /车牌/)
    const holder = car.people.find((p) => !p.until).customer_id
    await rows.filter({ hasText: String(holder) }).first().waitFor()
    await screenshot(page, 'customers-by-plate', 'customers')

    await rows.filter({ hasText: String(holder) }).first().click()
    await page.waitForURL(`${baseUrl}/customers/${holder}`)
    await page.locator('[data-test=customer-name]').waitFor()
    await page.getByRole('tab', { name: /车辆/ }).waitFor()
    await page.getByText(car.vin).first().waitFor()
    await screenshot(page, 'customer-360', 'customer')
    for (const tab of ['销售订单', '维修工单', '服务工单', '积分流水', '互动时间线']) {
      await page.getByRole('tab', { name: new RegExp(tab) }).click()
      await screenshot(page, 'customer-360', `tab-${tab}`)
    }
  })
})
