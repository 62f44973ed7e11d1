import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { crc32, deflateSync } from 'node:zlib'
import { apiCall, baseUrl, launch, login, loginOf, menuPaths, newPage, screenshot } from './support.mjs'

/** A real PNG (the host checks the magic bytes): `width`×`height`, a red-to-blue gradient. */
function png(width, height) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const out = Buffer.alloc(body.length + 8)
    out.writeUInt32BE(data.length, 0)
    body.copy(out, 4)
    out.writeUInt32BE(crc32(body), body.length + 4)
    return out
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header.set([8, 2, 0, 0, 0], 8)
  const rows = []
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3)
    for (let x = 0; x < width; x++) row.set([Math.round((255 * x) / width), 80, Math.round((255 * y) / height)], 1 + x * 3)
    rows.push(row)
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

/** Waits for the page's call to `path` (a suffix of the URL) with `method` to answer `status`. */
function answered(page, method, path, status) {
  return page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname.endsWith(path) && r.status() === status)
}

describe('the service walk: appointment to payment, with the owner approving extra work on a phone', () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('the advisor books, checks in with photos, dispatches, proposes extra work; the owner approves one item by the link', async () => {
    const { context, page } = await newPage(browser)
    const owner = await newPage(browser, { width: 390, height: 844 })
    try {
      await login(page, loginOf({ position: 'service_advisor' }))
      const me = (await apiCall(page, 'GET', '/session')).body.me
      const vehicles = await apiCall(page, 'GET', '/vehicles?limit=200')
      const vehicle = vehicles.body.items.find((v) => v.dealer_id === me.org_unit_id && v.plate && v.people.some((p) => p.role === 'owner' && !p.until))
      assert.ok(vehicle, 'the demo dealer has an owned vehicle with a plate')

      await page.locator('[data-test=side-menu] [data-menu="/service/appointments"]').click()
      await page.waitForURL(`${baseUrl}/service/appointments`)
      await page.locator('[data-test=new-appointment]').click()
      await page.getByLabel('车牌').fill(vehicle.plate)
      await page.locator('.el-select-dropdown__item').filter({ hasText: vehicle.plate }).first().click()
      const note = `刹车有异响，顺便保养（${Date.now().toString(36)}）`
      await page.getByLabel('备注').fill(note)
      await screenshot(page, 'service', 'appointment-new')
      await Promise.all([answered(page, 'POST', '/appointments', 201), page.locator('[data-test=book]').click()])
      const row = page.locator('[data-test=appointments-table] .el-table__body tr').filter({ hasText: note })
      await row.waitFor()
      await screenshot(page, 'service', 'appointments-day')

      await Promise.all([answered(page, 'POST', '/arrive', 200), row.locator('[data-test=arrive]').click()])
      await page.getByLabel('问题类别').fill('brake_noise')
      await screenshot(page, 'service', 'open-order')
      await Promise.all([answered(page, 'POST', '/repair-orders', 201), page.locator('[data-test=open-order-submit]').click()])
      await page.waitForURL(/\/service\/repair-orders\/\d+$/)
      const roId = Number(new URL(page.url()).pathname.split('/').pop())
      await page.locator('[data-test=ro-status]').getByText('已开单').waitFor()

      await page.getByLabel('进厂里程（公里）').fill('52380')
      await page.getByRole('radiogroup', { name: '第 1 项评级' }).getByText('需维修').click()
      await page.getByLabel('第 1 项说明').fill('前刹车片剩 2mm')
      await page.getByRole('radiogroup', { name: '第 2 项评级' }).getByText('注意').click()
      await screenshot(page, 'service', 'check-in-form')
      await Promise.all([answered(page, 'POST', '/check-in', 200), page.locator('[data-test=check-in-submit]').click()])
      await page.locator('[data-test=ro-status]').getByText('已检查').waitFor()
      const graded = page.locator('[data-test=inspection] .el-table__body tr')
      assert.match(await graded.nth(0).innerText(), /刹车片\s+需维修\s+前刹车片剩 2mm/)
      assert.match(await graded.nth(1).innerText(), /轮胎\s+注意/)

      const input = page.locator('[data-test=inspection-photo-input]')
      assert.equal(await input.getAttribute('accept'), 'image/*')
      assert.equal(await input.getAttribute('capture'), 'environment')
      await Promise.all([
        answered(page, 'POST', '/inspection/photos', 201),
        input.setInputFiles({ name: 'brake.png', mimeType: 'image/png', buffer: png(160, 120) }),
      ])
      await page.locator('[data-test=inspection-photos] img').first().waitFor()
      const shown = await page.locator('[data-test=inspection-photos] img').first().evaluate((img) => img.complete && img.naturalWidth)
      assert.equal(shown, 160, 'the uploaded photo is read back from the host')

      const technician = loginOf({ position: 'technician' })
      const staff = await apiCall(page, 'GET', '/staff')
      const tech = staff.body.find((s) => s.position === 'technician' && s.org_unit_id === me.org_unit_id && s.active)
      await page.locator('[data-test=dispatch] .el-select').click()
      await page.locator('.el-select-dropdown__item').filter({ hasText: tech.name }).first().click()
      await Promise.all([answered(page, 'POST', '/dispatch', 200), page.locator('[data-test=dispatch-submit]').click()])
      await page.locator('[data-test=ro-status]').getByText('维修中').waitFor()

      await page.getByLabel('项目', { exact: true }).fill('刹车系统检查')
      await page.getByLabel('单价（元）').fill('200')
      await Promise.all([answered(page, 'POST', '/lines', 200), page.locator('[data-test=add-line]').click()])
      await page.locator('[data-test=ro-total]').getByText('¥200.00').waitFor()

      await page.getByLabel('第 1 项增项内容').fill('更换前刹车片')
      await page.getByLabel('第 1 项金额').fill('680')
      await page.getByRole('button', { name: '添加一项' }).click()
      await page.getByLabel('第 2 项增项内容').fill('更换刹车油')
      await page.getByLabel('第 2 项金额').fill('300')
      await Promise.all([answered(page, 'POST', '/extra-work', 200), page.locator('[data-test=propose]').click()])
      const link = (await page.locator('[data-test=owner-link]').innerText()).trim()
      assert.match(link, new RegExp(`^${baseUrl}/o/w/[0-9a-f]{16,}$`))
      await page.getByRole('img', { name: '车主确认链接二维码' }).waitFor()
      await page.locator('[data-test=ro-status]').getByText('待车主确认').waitFor()
      assert.equal(await page.locator('[data-move=in_progress]').count(), 0, 'no resuming while the owner is asked')
      await screenshot(page, 'service', 'extra-work-qr')

      const proposals = await apiCall(page, 'GET', `/repair-orders/${roId}/extra-work`)
      const [pads, fluid] = proposals.body[0].items

      await owner.page.goto(link)
      assert.equal(await owner.page.evaluate(async () => (await fetch('/api/v1/session')).status), 401, 'the owner is not signed in')
      await owner.page.getByText('更换前刹车片').waitFor()
      await owner.page.getByText('¥980.00').waitFor()
      await screenshot(owner.page, 'service', 'owner-phone')
      assert.equal(await owner.page.locator('[data-test=owner-submit]').isDisabled(), true, 'nothing is sent before every item has an answer')
      await owner.page.getByRole('radiogroup', { name: '是否同意：更换前刹车片' }).getByText('同意', { exact: true }).click()
      await owner.page.getByRole('radiogroup', { name: '是否同意：更换刹车油' }).getByText('不同意').click()
      await owner.page.locator('[data-test=agreed-total]').getByText('¥680.00').waitFor()
      await screenshot(owner.page, 'service', 'owner-phone-chosen')
      await Promise.all([answered(owner.page, 'POST', `/owner/extra-work/${link.split('/').pop()}`, 200), owner.page.locator('[data-test=owner-submit]').click()])
      await owner.page.locator('[data-test=owner-done]').waitFor()
      await screenshot(owner.page, 'service', 'owner-phone-done')
      const width = await owner.page.evaluate(() => document.documentElement.scrollWidth)
      assert.ok(width <= 390, `the owner page fits the phone (${width}px)`)

      const padsRow = page.locator(`[data-test=extra-work] [data-item="${pads.id}"]`)
      await padsRow.locator('[data-test=item-answer]').getByText('已同意').waitFor({ timeout: 15_000 })
      assert.match(await page.locator(`[data-test=extra-work] [data-item="${fluid.id}"]`).innerText(), /不同意/)
      await page.locator('[data-test=ro-status]').getByText('维修中').waitFor()
      await page.locator('[data-test=ro-total]').getByText('¥880.00').waitFor()
      assert.equal(await page.locator('[data-test=owner-link-box]').count(), 0, 'the used link is no longer offered')
      await screenshot(page, 'service', 'extra-work-approved')

      await page.getByLabel('进度说明').fill('已更换前刹车片')
      await page.locator('[data-test=progress-photo-input]').setInputFiles({ name: 'pads.png', mimeType: 'image/png', buffer: png(120, 90) })
      await Promise.all([answered(page, 'POST', '/photos', 201), page.locator('[data-test=add-progress]').click()])
      await page.locator('[data-test=progress] .el-timeline img').first().waitFor()

      await Promise.all([answered(page, 'POST', '/status', 200), page.locator('[data-move=quality_check]').click()])
      await page.locator('[data-test=ro-status]').getByText('质检中').waitFor()
      await Promise.all([answered(page, 'POST', '/quality-check', 200), page.locator('[data-test=qc-pass]').click()])
      await page.locator('[data-test=ro-status]').getByText('待结算').waitFor()
      await Promise.all([answered(page, 'POST', '/settle', 200), page.locator('[data-test=settle]').click()])
      await page.locator('[data-test=ro-status]').getByText('已结算').waitFor()
      await screenshot(page, 'service', 'settled')
      await Promise.all([answered(page, 'POST', '/payments', 200), page.locator('[data-test=pay]').click()])
      await page.locator('[data-test=ro-status]').getByText('已付款').waitFor()
      const paid = await apiCall(page, 'GET', `/repair-orders/${roId}`)
      assert.equal(paid.body.paid_fen, 88_000)
      assert.equal(paid.body.outstanding_fen, 0)
      await screenshot(page, 'service', 'paid')

      await owner.page.goto(link)
      await owner.page.locator('[data-test=owner-link-problem]').getByText('链接已使用').waitFor()
      await screenshot(owner.page, 'service', 'owner-phone-used')

      await page.locator('[data-test=side-menu] [data-menu="/service/repair-orders"]').click()
      await page.getByText('显示已付款和已取消').click()
      const card = page.locator('[data-status=paid] [data-test=ro-card]').filter({ hasText: `#${roId}` })
      await card.waitFor()
      await card.scrollIntoViewIfNeeded()
      await screenshot(page, 'service', 'board')
      await card.click()
      await page.waitForURL(`${baseUrl}/service/repair-orders/${roId}`)

      const tech2 = await newPage(browser)
      try {
        await login(tech2.page, technician)
        const paths = await menuPaths(tech2.page)
        assert.ok(!paths.includes('/plugins'), `menu ${paths}`)
        assert.equal(await tech2.page.locator('[data-test=side-menu]').getByText('插件').count(), 0)
        assert.ok(paths.includes('/service/repair-orders'), `menu ${paths}`)
        await tech2.page.goto(`${baseUrl}/service/repair-orders/${roId}`)
        await tech2.page.locator('[data-test=ro-status]').getByText('已付款').waitFor()
        await screenshot(tech2.page, 'service', 'technician-order')
      } finally {
        await tech2.context.close()
      }
    } finally {
      await owner.context.close()
      await context.close()
    }
  })

  test('a change made by someone else meanwhile: the page says so and shows the order as it is now', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'service_advisor' }))
      const me = (await apiCall(page, 'GET', '/session')).body.me
      const vehicles = await apiCall(page, 'GET', '/vehicles?limit=200')
      const vehicle = vehicles.body.items.find((v) => v.dealer_id === me.org_unit_id && v.people.some((p) => !p.until))
      const opened = await apiCall(page, 'POST', '/repair-orders', {
        customer_id: vehicle.people.find((p) => !p.until).customer_id,
        vehicle_id: vehicle.id,
        complaint_code: 'ac_noise',
        complaint: '空调异响',
      })
      assert.equal(opened.status, 201, JSON.stringify(opened.body))
      await page.goto(`${baseUrl}/service/repair-orders/${opened.body.id}`)
      await page.locator('[data-test=ro-status]').getByText('已开单').waitFor()
      const cancelled = await apiCall(page, 'POST', `/repair-orders/${opened.body.id}/status`, { status: 'cancelled' }, { 'If-Match': `"${opened.body.version}"` })
      assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body))
      await page.getByLabel('进厂里程（公里）').fill('1000')
      await page.locator('[data-test=check-in-submit]').click()
      await page.locator('[data-test=ro-error]').getByText('该工单已被他人修改').waitFor()
      await page.locator('[data-test=ro-status]').getByText('已取消').waitFor()
      assert.equal(await page.locator('[data-move]').count(), 0, 'a cancelled order offers no moves')
      assert.equal(await page.locator('[data-test=check-in-submit]').count(), 0)
      await screenshot(page, 'service', 'conflict')
    } finally {
      await context.close()
    }
  })
})
