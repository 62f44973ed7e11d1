import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, launch, login, loginOf, newPage, screenshot } from './support.mjs'

const VIN_VALUES = { A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8, J: 1, K: 2, L: 3, M: 4, N: 5, P: 7, R: 9, S: 2, T: 3, U: 4, V: 5, W: 6, X: 7, Y: 8, Z: 9 }
const VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]

/** A VIN with a correct check digit: `wmi` (8 characters) and a random 8-character serial. */
function vin(wmi) {
  const serial = 'PN' + String(Math.floor(Math.random() * 1e6)).padStart(6, '0')
  const chars = `${wmi}0${serial}`.split('')
  const sum = chars.reduce((s, c, i) => s + (/\d/.test(c) ? Number(c) : VIN_VALUES[c]) * VIN_WEIGHTS[i], 0) % 11
  chars[8] = sum === 10 ? 'X' : String(sum)
  return chars.join('')
}

/** The Shanghai calendar day `days` from now. */
function shanghaiDay(days) {
  return new Date(Date.now() + 8 * 3600_000 + days * 86_400_000).toISOString().slice(0, 10)
}

/** Chooses `option` in the Element Plus select labelled `name`, typing `search` first when given. */
async function choose(page, name, option, search) {
  const select = page.getByRole('combobox', { name, exact: true })
  await page.locator('.el-select__wrapper').filter({ has: select }).click()
  if (search) await select.fill(search)
  await page.locator('.el-select-dropdown__item:visible').filter({ hasText: option }).first().click()
}

/** A 1×1 PNG for the trade-in photo. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64')

/** Approves, in the approvals inbox of `who`, the waiting step of the request about order `orderId`. */
async function approveAs(browser, who, orderId, comment, shot) {
  const { context, page } = await newPage(browser)
  try {
    await login(page, loginOf({ position: who }))
    await page.locator('[data-test=side-menu] [data-menu="/approvals"]').click()
    const row = page.locator('[data-test=approvals-table] .el-table__body tr').filter({ hasText: new RegExp(`销售订单 #${orderId}(?!\\d)`) }).first()
    await row.waitFor()
    await screenshot(page, 'sales-walk', `${shot}-inbox`)
    await row.locator('[data-test=approve]').click()
    await page.locator('textarea[data-test=decision-comment]').fill(comment)
    await Promise.all([
      page.waitForResponse((r) => /\/api\/v1\/approvals\/\d+\/approve$/.test(r.url()) && r.status() === 200),
      page.locator('[data-test=decision-submit]').click(),
    ])
    await row.waitFor({ state: 'detached' })
    await screenshot(page, 'sales-walk', `${shot}-approved`)
  } finally {
    await context.close()
  }
}

describe('the sales walk', () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('walk-in lead, test drive (a double booking refused), order with a discount approved by two managers, delivered', async () => {
    const { context, page } = await newPage(browser)
    const suffix = String(Date.now()).slice(-8)
    const name = `到店客户${suffix.slice(-4)}`
    const phone = `139${suffix}`
    try {
      await login(page, loginOf({ position: 'sales_consultant' }))
      await page.locator('[data-test=side-menu] [data-menu="/sales"]').click()
      await page.waitForURL('**/sales/leads')
      await page.locator('[data-test=lead-board]').waitFor()
      await screenshot(page, 'sales-walk', 'board')

      // A walk-in lead.
      await page.locator('[data-test=new-lead]').click()
      await page.getByLabel('姓名').fill(name)
      await page.getByLabel('手机号').fill(phone)
      await page.getByLabel('意向车型').fill('远航 Y7')
      await screenshot(page, 'sales-walk', 'new-lead')
      await page.locator('[data-test=create-lead-submit]').click()
      const card = page.locator(`[data-stage=new] article[aria-label="${name}"]`)
      await card.waitFor()
      const leadId = Number(await card.getAttribute('data-lead'))

      // Dragged to "contacted"; a move back to "new" is refused and says what is allowed.
      await page.locator('[data-test=lead-board] .el-loading-mask').first().waitFor({ state: 'detached' })
      const dataTransfer = await page.evaluateHandle(() => new DataTransfer())
      const target = page.locator('[data-stage=contacted]')
      await card.dispatchEvent('dragstart', { dataTransfer })
      await target.dispatchEvent('dragover', { dataTransfer })
      await target.dispatchEvent('drop', { dataTransfer })
      const contacted = page.locator(`[data-stage=contacted] article[aria-label="${name}"]`)
      await contacted.waitFor()
      await contacted.getByRole('button', { name: `移动 ${name}` }).click()
      await page.locator('.el-dropdown-menu__item:visible[data-move-to=new]').click()
      const refusal = page.locator('[data-test=move-error]')
      await refusal.waitFor()
      assert.match(await refusal.innerText(), /无法移动.*可移到/s)
      await screenshot(page, 'sales-walk', 'move-refused')

      // Its drawer: a follow-up added and done.
      await contacted.locator('.card-open').click()
      const drawer = page.locator('.el-drawer')
      await drawer.getByText('阶段记录').waitFor()
      await drawer.getByLabel('跟进内容').fill('电话确认试驾时间')
      await drawer.locator('#task-due').fill(`${shanghaiDay(1)} 09:30`)
      await drawer.locator('#task-due').press('Enter')
      await drawer.locator('[data-test=add-task]').click()
      const taskRow = drawer.locator('[data-test=lead-tasks] tr').filter({ hasText: '电话确认试驾时间' })
      await taskRow.waitFor()
      await taskRow.locator('[data-test=task-done]').click()
      await taskRow.getByText('完成', { exact: false }).waitFor()
      await taskRow.locator('[data-test=task-done]').waitFor({ state: 'detached' })
      await screenshot(page, 'sales-walk', 'lead-drawer')
      await drawer.locator('.el-drawer__close-btn').click()

      // A CSV import with one good and one bad line: the bad line's problems in a table.
      await page.locator('[data-test=import-leads]').click()
      await page.locator('[data-test=import-file]').setInputFiles({
        name: 'leads.csv',
        mimeType: 'text/csv',
        buffer: Buffer.from(`name,phone,channel,interest\n导入客户${suffix.slice(-4)},138${suffix},online_ad,远航 Y5\n坏数据,123,fax,\n`),
      })
      await page.locator('[data-test=import-submit]').click()
      await page.locator('[data-test=import-report]').waitFor()
      const errors = page.locator('[data-test=import-errors] .el-table__body tr')
      assert.equal(await errors.count(), 2)
      assert.match(await errors.first().innerText(), /^3\s/)
      assert.match(await page.locator('[data-test=import-report]').innerText(), /读取 2 行，导入 1 条，1 行有误/)
      await screenshot(page, 'sales-walk', 'import-report')
      await page.getByRole('button', { name: '关闭', exact: true }).click()

      // The test drive: booked from the lead's drawer, on a demo car added for it.
      await contacted.locator('.card-open').click()
      await drawer.locator('[data-test=book-test-drive]').click()
      await page.waitForURL(`**/sales/test-drives?lead=${leadId}`)
      const carModel = `远航 Y7 试驾车 ${suffix.slice(-4)}`
      await page.locator('[data-test=add-demo-car]').click()
      await page.getByLabel('VIN', { exact: true }).fill(vin('LSVAB2BR'))
      await page.getByLabel('车型', { exact: true }).fill(carModel)
      await page.locator('[data-test=add-car-submit]').click()
      await page.locator('[data-test=drive-grid-day] th').filter({ hasText: carModel }).waitFor()
      // A day of its own, so that a run again on the same host finds the consultant free.
      const day = shanghaiDay(1 + (Number(suffix) % 90))
      const book = async () => {
        await page.locator('[data-test=new-test-drive]').click()
        const dialog = page.locator('.el-dialog').filter({ hasText: '确认预约' })
        await dialog.waitFor()
        await choose(page, '试驾车', carModel)
        await dialog.locator('#drive-day').fill(day)
        await dialog.locator('#drive-day').press('Enter')
        await screenshot(page, 'sales-walk', 'booking')
        await dialog.locator('[data-test=booking-submit]').click()
        return dialog
      }
      await book()
      const booked = page.locator('[data-test=drive-grid-day] button.drive').filter({ hasText: name })
      await booked.waitFor()
      await screenshot(page, 'sales-walk', 'test-drive-day')
      const again = await book()
      await again.locator('[data-test=booking-error]').getByText('该时段已被预约').waitFor()
      await screenshot(page, 'sales-walk', 'double-booking-refused')
      await again.getByRole('button', { name: '取消' }).click()
      await again.waitFor({ state: 'hidden' })
      await page.locator('label.el-radio-button').filter({ hasText: '周' }).click()
      await page.locator('[data-test=drive-grid-week] .chip').filter({ hasText: name }).waitFor()
      await screenshot(page, 'sales-walk', 'test-drive-week')

      // The order, with a 10% discount: the built-in rule asks the sales manager, then the general manager.
      await page.locator('[data-test=sales-nav]').getByRole('tab', { name: '订单' }).click()
      await page.waitForURL('**/sales/orders')
      await page.locator('[data-test=orders-table]').waitFor()
      await page.locator('[data-test=new-order]').click()
      await choose(page, '线索', name, name)
      await page.getByLabel('品牌').fill('远航')
      await page.getByLabel('车型', { exact: true }).fill('Y7')
      await page.getByLabel('配置').fill('长续航版')
      await page.getByLabel('指导价（元）').fill('200000')
      await page.getByLabel('整车成本（元）').fill('180000')
      await page.locator('[data-test=add-line]').click()
      await page.getByLabel('第 1 项说明').fill('全车脚垫')
      await page.getByLabel('第 1 项金额').fill('800')
      await page.getByLabel('第 1 项成本').fill('300')
      await page.getByLabel('优惠（元）').fill('20000')
      await page.getByLabel('优惠（元）').blur()
      await page.locator('[data-test=approval-hint]').getByText('销售经理和总经理').waitFor()
      await screenshot(page, 'sales-walk', 'new-order')
      await page.locator('[data-test=order-submit]').click()
      await page.waitForURL(/\/sales\/orders\/\d+$/)
      const orderId = Number(new URL(page.url()).pathname.split('/').pop())
      const approvals = page.locator('[data-test=order-approvals]')
      await approvals.locator('[data-test=approval-status]').filter({ hasText: '待审批' }).waitFor()
      assert.equal(await approvals.locator('.el-step').count(), 2)
      assert.match(await approvals.innerText(), /销售经理[\s\S]*总经理/)

      // Confirming before the approvals is refused visibly.
      await page.locator('[data-test=order-moves] [data-move=confirmed]').click()
      await page.locator('[data-test=order-action-error]').getByText('审批尚未完成').waitFor()
      await screenshot(page, 'sales-walk', 'order-pending')

      // A trade-in evaluated, photographed and accepted: it reduces the amount due.
      await page.locator('[data-test=evaluate-trade-in]').click()
      const evaluation = page.locator('.el-dialog').filter({ hasText: '评估置换车' })
      await evaluation.getByLabel('VIN', { exact: true }).fill(vin('LFV2A21K'))
      await evaluation.getByLabel('车型', { exact: true }).fill('大众 朗逸 2018')
      await evaluation.getByLabel('里程（km）').fill('62000')
      await evaluation.getByLabel('报价（元）').fill('45000')
      await evaluation.locator('[data-test=trade-in-submit]').click()
      const tradeIn = page.locator('[data-test=trade-in]')
      await tradeIn.locator('[data-test=trade-in-status]').filter({ hasText: '已报价' }).waitFor()
      await tradeIn.locator('#trade-in-photo').setInputFiles({ name: 'car.png', mimeType: 'image/png', buffer: PNG })
      await tradeIn.locator('.photos img').waitFor()
      await tradeIn.locator('[data-test=accept-trade-in]').click()
      await tradeIn.locator('[data-test=trade-in-status]').filter({ hasText: '客户已接受' }).waitFor()
      await page.locator('[data-test=order-lines]').getByText('置换').waitFor()
      await screenshot(page, 'sales-walk', 'order-trade-in')

      await approveAs(browser, 'sales_manager', orderId, '销售经理同意', 'manager')
      await approveAs(browser, 'general_manager', orderId, '总经理同意', 'general-manager')

      // The consultant walks the order to delivery.
      await page.reload()
      await approvals.locator('[data-test=approval-status]').filter({ hasText: '已通过' }).waitFor()
      assert.match(await approvals.innerText(), /销售经理同意[\s\S]*总经理同意/)
      await screenshot(page, 'sales-walk', 'order-approved')
      const status = page.locator('[data-test=order-status]')
      for (const [move, shown] of [['confirmed', '已确认'], ['pdi_passed', 'PDI 通过'], ['ready', '待交车']]) {
        await page.locator(`[data-test=order-moves] [data-move=${move}]`).click()
        await status.filter({ hasText: shown }).waitFor()
      }
      await screenshot(page, 'sales-walk', 'order-ready')
      await page.locator('[data-test=order-moves] [data-move=delivered]').click()
      const handover = page.locator('.el-dialog').filter({ hasText: '交车里程' })
      await handover.getByLabel('VIN', { exact: true }).fill(vin('LSVAB2BR'))
      await handover.getByLabel('交车里程（km）').fill('12')
      await handover.locator('[data-test=delivery-submit]').click()
      await status.filter({ hasText: '已交车' }).waitFor()
      await page.locator('[data-test=delivery-result]').waitFor()
      await screenshot(page, 'sales-walk', 'order-delivered')

      const stored = await apiCall(page, 'GET', `/orders/${orderId}`)
      assert.equal(stored.body.status, 'delivered')
      assert.equal(stored.body.discount_fen, 2_000_000)
      assert.ok(stored.body.vehicle_id, 'delivery made the vehicle')
      assert.equal(stored.body.trade_in_fen, -4_500_000)

      await page.locator('[data-test=sales-nav]').getByRole('tab', { name: '订单' }).click()
      await page.locator('[data-test=orders-table] .el-table__body tr').filter({ hasText: new RegExp(`#${orderId}(?!\\d)`) }).waitFor()
      await screenshot(page, 'sales-walk', 'orders')
    } finally {
      await context.close()
    }
  })
})
