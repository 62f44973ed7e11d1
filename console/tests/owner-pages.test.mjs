// The vehicle owner's pages on a phone (375×812, as in WeChat's in-app browser): the repair's
// progress with the technician's photo, the extra work (one of two items approved), the
// ticket's progress with a reply, the survey, links that were used or are unknown, the car order
// the owner waits for, and the opt-out of an offer.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { crc32, deflateSync } from 'node:zlib'
import { apiCall, baseUrl, launch, login, loginOf, newPage, screenshot } from './support.mjs'

const PHONE = { width: 375, height: 812 }

/** A real PNG (the host checks the magic bytes): `width`×`height`, a green-to-blue gradient. */
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
    for (let x = 0; x < width; x++) row.set([40, Math.round((255 * x) / width), Math.round((255 * y) / height)], 1 + x * 3)
    rows.push(row)
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

/** Uploads `bytes` as a PNG to `path` with the page's session. */
async function upload(page, path, bytes) {
  return page.evaluate(
    async ({ path, base64 }) => {
      const session = await (await fetch('/api/v1/session')).json()
      const body = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
      const response = await fetch(`/api/v1${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'image/png', 'X-CSRF-Token': session.csrf_token },
        body,
      })
      return { status: response.status, body: await response.json() }
    },
    { path, base64: bytes.toString('base64') },
  )
}

/** `apiCall` that must answer `status`; returns the body. */
async function ok(page, method, path, body, status = 200, headers = {}) {
  const reply = await apiCall(page, method, path, body, headers)
  assert.equal(reply.status, status, `${method} ${path}: ${JSON.stringify(reply.body)}`)
  return reply
}

/** POSTs an action on a record with its current ETag. */
async function act(page, record, action, body) {
  const read = await ok(page, 'GET', record)
  return (await ok(page, 'POST', `${record}${action}`, body, 200, { 'If-Match': read.etag })).body
}

/** Patches a ticket with its current version. */
async function patchTicket(page, id, body) {
  const read = await ok(page, 'GET', `/tickets/${id}`)
  return (await ok(page, 'PATCH', `/tickets/${id}`, body, 200, { 'If-Match': `"${read.body.version}"` })).body
}

/** Waits for the owner page's call to `path` (a suffix of the URL) with `method` to answer `status`. */
function answered(page, method, path, status) {
  return page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname.endsWith(path) && r.status() === status)
}

/** Fails when the page is wider than the phone. */
async function fitsThePhone(page, what) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth)
  assert.ok(width <= PHONE.width, `${what} fits the phone (${width}px)`)
}

/** Fails when the page shows a word in Latin letters (the owner's pages are in Chinese). */
async function allChinese(page, what) {
  const text = await page.locator('body').innerText()
  const latin = text.match(/[A-Za-z]{3,}/g) ?? []
  assert.deepEqual(latin, [], `${what} shows no English: ${text}`)
}

describe("the owner's pages on a phone", () => {
  let browser
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('an owner follows a repair with its photo, approves one of two extra items, replies on a ticket and answers the survey', async () => {
    const staff = await newPage(browser)
    const owner = await newPage(browser, PHONE)
    try {
      const { page } = staff
      await login(page, loginOf({ position: 'service_advisor' }))
      const me = (await ok(page, 'GET', '/session')).body.me
      const vehicles = await ok(page, 'GET', '/vehicles?limit=200')
      // The last owned car, not the first the service walk takes, as the files run at once.
      const vehicle = vehicles.body.items.filter((v) => v.dealer_id === me.org_unit_id && v.plate && v.people.some((p) => p.role === 'owner' && !p.until)).at(-1)
      assert.ok(vehicle, 'the demo dealer has an owned vehicle with a plate')
      const customerId = vehicle.people.find((p) => p.role === 'owner' && !p.until).customer_id
      const dealer = (await ok(page, 'GET', '/network/units')).body.find((u) => u.id === me.org_unit_id)
      assert.ok(dealer.phone, `the demo dealer has a phone: ${JSON.stringify(dealer)}`)

      // The repair, with a progress photo and its explanation.
      const opened = await ok(page, 'POST', '/repair-orders', { customer_id: customerId, vehicle_id: vehicle.id, complaint_code: 'brake_noise', complaint: '刹车有异响' }, 201)
      const ro = `/repair-orders/${opened.body.id}`
      const repairToken = opened.body.owner_link.token
      await act(page, ro, '/check-in', { mileage_km: (vehicle.latest_mileage_km ?? 0) + 1_200, items: [] })
      const technician = (await ok(page, 'GET', '/staff')).body.find((s) => s.position === 'technician' && s.org_unit_id === me.org_unit_id && s.active)
      await act(page, ro, '/dispatch', { technician_staff_id: technician.id })
      const progressed = await ok(page, 'POST', `${ro}/progress`, { note: '拆检发现前刹车片只剩 2 毫米，刹车盘有轻微划痕' })
      const event = progressed.body.events.at(-1).id
      const photo = await upload(page, `${ro}/progress/${event}/photos`, png(240, 180))
      assert.equal(photo.status, 201, JSON.stringify(photo.body))

      await owner.page.goto(`${baseUrl}/o/r/${repairToken}`)
      await owner.page.locator('[data-test=owner-repair-status]').getByText('维修中').waitFor()
      await owner.page.locator('[data-test=owner-repair-photos]').getByText('前刹车片只剩 2 毫米').waitFor()
      await owner.page.waitForFunction(() => [...document.querySelectorAll('[data-test=owner-repair-photos] img')].some((img) => img.complete && img.naturalWidth === 240))
      assert.equal(await owner.page.locator('[data-test=owner-dealer]').innerText(), dealer.name)
      assert.equal(await owner.page.locator('[data-test=owner-tel]').getAttribute('href'), `tel:${dealer.phone}`)
      assert.equal(await owner.page.title(), `维修进度 · ${dealer.name}`)
      await fitsThePhone(owner.page, 'the repair page')
      await allChinese(owner.page, 'the repair page')
      await screenshot(owner.page, 'owner', 'repair')

      // Extra work: two items, the owner agrees to one, through the old address's redirect.
      const proposed = await act(page, ro, '/extra-work', {
        items: [
          { kind: 'part', description: '更换前刹车片', amount_fen: 68_000 },
          { kind: 'labour', description: '刹车盘光盘', amount_fen: 20_000 },
        ],
      })
      const workToken = proposed.owner_link.token
      await owner.page.goto(`${baseUrl}/o/extra-work/${workToken}`)
      await owner.page.waitForURL(`${baseUrl}/o/w/${workToken}`)
      await owner.page.getByText('更换前刹车片').waitFor()
      await owner.page.getByRole('radiogroup', { name: '是否同意：更换前刹车片' }).getByText('同意', { exact: true }).click()
      await owner.page.getByRole('radiogroup', { name: '是否同意：刹车盘光盘' }).getByText('不同意').click()
      await owner.page.locator('[data-test=agreed-total]').getByText('¥680.00').waitFor()
      await fitsThePhone(owner.page, 'the extra-work page')
      await allChinese(owner.page, 'the extra-work page')
      await screenshot(owner.page, 'owner', 'extra-work')
      await Promise.all([answered(owner.page, 'POST', `/owner/extra-work/${workToken}`, 200), owner.page.locator('[data-test=owner-submit]').click()])
      await owner.page.locator('[data-test=owner-done]').waitFor()
      await screenshot(owner.page, 'owner', 'extra-work-done')
      const decided = (await ok(page, 'GET', `${ro}/extra-work`)).body[0]
      assert.deepEqual(decided.items.map((i) => i.approved), [true, false])

      // Settled, the repair shows its amount.
      await act(page, ro, '/status', { status: 'quality_check' })
      await act(page, ro, '/quality-check', { passed: true })
      await act(page, ro, '/settle', {})
      await owner.page.goto(`${baseUrl}/o/r/${repairToken}`)
      await owner.page.locator('[data-test=owner-repair-status]').getByText('已结算').waitFor()
      await owner.page.locator('[data-test=owner-repair-amount]').getByText('¥680.00').first().waitFor()
      await fitsThePhone(owner.page, 'the settled repair')
      await allChinese(owner.page, 'the settled repair')
      await screenshot(owner.page, 'owner', 'repair-settled')

      // The used link says so, in plain words, with the dealer to call.
      await owner.page.goto(`${baseUrl}/o/w/${workToken}`)
      const used = owner.page.locator('[data-test=owner-link-problem][data-problem=used]')
      await used.getByText('链接已使用').waitFor()
      await used.getByText(`拨打 ${dealer.phone}`).waitFor()
      assert.equal(await owner.page.locator('[data-test=owner-dealer]').innerText(), dealer.name)
      await fitsThePhone(owner.page, 'the used link')
      await allChinese(owner.page, 'the used link')
      await screenshot(owner.page, 'owner', 'link-used')

      // A ticket the dealer works on; the owner replies.
      const ticket = await ok(page, 'POST', '/tickets', {
        customer_id: customerId, channel: 'hotline', category: 'complaint',
        subject: '保养后仪表盘保养提示没有清除', description: '上周保养后，仪表盘仍然提示需要保养。',
      }, 201)
      const ticketToken = ticket.body.owner_link.token
      await patchTicket(page, ticket.body.id, { status: 'in_progress', note: '工程师已收到，明天上午给您回电，请问您什么时间方便？', note_for_owner: true })
      await owner.page.goto(`${baseUrl}/o/t/${ticketToken}`)
      await owner.page.getByText('保养后仪表盘保养提示没有清除').waitFor()
      await owner.page.locator('[data-test=owner-ticket-stages] .current').getByText('工程师处理中').waitFor()
      await owner.page.getByLabel('补充说明').fill('明天上午十点以后都可以，谢谢！')
      await Promise.all([answered(owner.page, 'POST', `/owner/tickets/${ticketToken}/replies`, 201), owner.page.locator('[data-test=owner-reply-send]').click()])
      await owner.page.locator('[data-test=owner-reply-sent]').waitFor()
      const mine = owner.page.locator('[data-test=owner-ticket-step][data-kind=owner_reply]')
      await mine.getByText('明天上午十点以后都可以，谢谢！').waitFor()
      assert.equal(await owner.page.getByLabel('补充说明').inputValue(), '', 'the form is emptied once sent')
      await fitsThePhone(owner.page, 'the ticket page')
      await allChinese(owner.page, 'the ticket page')
      await screenshot(owner.page, 'owner', 'ticket')

      // The staff read the reply on the ticket's timeline.
      await page.goto(`${baseUrl}/tickets/${ticket.body.id}`)
      await page.getByText('车主回复').waitFor()
      await page.getByText('明天上午十点以后都可以，谢谢！').waitFor()
      await screenshot(page, 'owner', 'ticket-staff-timeline')

      // Closing the ticket sends the survey; the owner answers it once.
      await patchTicket(page, ticket.body.id, { status: 'closed' })
      const gm = await newPage(browser)
      let surveyToken
      try {
        await login(gm.page, loginOf({ position: 'general_manager' }))
        const outbox = await ok(gm.page, 'GET', '/outbox?limit=100')
        const message = outbox.body.items.find((m) => {
          const data = Object.fromEntries(m.data)
          return m.template === 'satisfaction-survey' && data['subject-kind'] === 'ticket' && data['subject-id'] === String(ticket.body.id)
        })
        assert.ok(message, 'the survey went to the owner')
        surveyToken = Object.fromEntries(message.data).token
      } finally {
        await gm.context.close()
      }
      await owner.page.goto(`${baseUrl}/o/t/${ticketToken}`)
      await owner.page.getByText('工单已关闭，如还有问题，请致电门店。').waitFor()
      assert.equal(await owner.page.getByLabel('补充说明').count(), 0, 'a closed ticket takes no reply')

      await owner.page.goto(`${baseUrl}/o/s/${surveyToken}`)
      await owner.page.getByText('您有多大可能把我们推荐给亲友？').waitFor()
      await owner.page.locator('[data-nps="9"]').click()
      await owner.page.locator('[data-csat="4"]').click()
      await owner.page.locator('[data-test=csat-text]').getByText('满意', { exact: true }).waitFor()
      await owner.page.getByLabel('还有什么想告诉我们的吗？（选填）').fill('回复很及时，工程师很专业。')
      await fitsThePhone(owner.page, 'the survey')
      await allChinese(owner.page, 'the survey')
      await screenshot(owner.page, 'owner', 'survey')
      await Promise.all([answered(owner.page, 'POST', `/owner/surveys/${surveyToken}`, 201), owner.page.locator('[data-test=owner-survey-send]').click()])
      await owner.page.locator('[data-test=owner-survey-thanks]').getByText('感谢您的评价！').waitFor()
      await allChinese(owner.page, 'the thank-you')
      await screenshot(owner.page, 'owner', 'survey-thanks')
      const answered_ = (await ok(page, 'GET', `/tickets/${ticket.body.id}`)).body.survey
      assert.equal(answered_.nps, 9)
      assert.equal(answered_.csat, 4)

      await owner.page.goto(`${baseUrl}/o/s/${surveyToken}`)
      await owner.page.locator('[data-test=owner-link-problem][data-problem=used]').getByText('链接已使用').waitFor()

      // A link that is no link names no dealer.
      await owner.page.goto(`${baseUrl}/o/r/${'0'.repeat(64)}`)
      await owner.page.locator('[data-test=owner-link-problem][data-problem=unknown]').getByText('链接无效').waitFor()
      assert.equal(await owner.page.locator('[data-test=owner-tel]').count(), 0)
      await fitsThePhone(owner.page, 'the unknown link')
      await allChinese(owner.page, 'the unknown link')
      await screenshot(owner.page, 'owner', 'link-unknown')
    } finally {
      await owner.context.close()
      await staff.context.close()
    }
  })

  test('an owner follows the car order they wait for, and stops the offers with the link of one', async () => {
    const staff = await newPage(browser)
    const owner = await newPage(browser, PHONE)
    try {
      const { page } = staff
      await login(page, loginOf({ position: 'general_manager' }))
      const me = (await ok(page, 'GET', '/me')).body
      const customers = (await ok(page, 'GET', '/customers?limit=50')).body.items
      const buyer = customers.filter((c) => c.dealer_id === me.org_id).pop()
      const order = (await ok(page, 'POST', '/orders', { customer_id: buyer.id, brand: '远航', model: 'Y7', trim: '长续航版', list_price_fen: 25_980_000, vehicle_cost_fen: 23_000_000 }, 201)).body
      await act(page, `/orders/${order.id}`, '/status', { status: 'confirmed' })
      const sms = (await ok(page, 'GET', '/outbox?limit=100&channel=sms')).body.items
      const data = (m) => Object.fromEntries(m.data)
      const tracking = sms.find((m) => m.template === 'order-confirmed' && data(m)['order-id'] === String(order.id))
      assert.ok(tracking, 'the confirmed order texted its owner a link')
      assert.equal(tracking.recipient, `customer:${buyer.id}`)
      await owner.page.goto(`${baseUrl}${data(tracking)['tracking-url']}`)
      await owner.page.locator('[data-test=owner-order-status]').getByText('订单已确认，正在为您备车').waitFor()
      assert.equal(await owner.page.locator('[data-test=owner-order-step]').count(), 2, 'created, then confirmed')
      await owner.page.locator('[data-test=owner-tel]').waitFor()
      await fitsThePhone(owner.page, 'the order')
      await allChinese(owner.page, 'the order')
      await screenshot(owner.page, 'owner', 'order')

      const read = await ok(page, 'GET', `/customers/${buyer.id}`)
      await ok(page, 'PATCH', `/customers/${buyer.id}`, { marketing_consent: true }, 200, { 'If-Match': `"${read.body.version}"` })
      const sent = (await ok(page, 'POST', '/kpis/churn/offers', { customer_ids: [buyer.id], offer: '到店保养工时费八折' })).body
      assert.equal(sent.invited, 1, JSON.stringify(sent))
      const offers = (await ok(page, 'GET', '/outbox?limit=100&channel=sms')).body.items
      const offer = offers.find((m) => m.template === 'retention_offer' && m.recipient === `customer:${buyer.id}`)
      assert.equal(offer.purpose, 'marketing')
      assert.equal(data(offer)['opt-out'], '回T退订', 'the SMS says how to stop')
      await owner.page.goto(`${baseUrl}${data(offer)['opt-out-url']}`)
      await owner.page.locator('[data-test=owner-opt-out-confirm]').waitFor()
      await fitsThePhone(owner.page, 'the opt-out')
      await allChinese(owner.page, 'the opt-out')
      await screenshot(owner.page, 'owner', 'opt-out')
      await Promise.all([answered(owner.page, 'POST', `/owner/opt-out/${data(offer)['opt-out-url'].split('/').pop()}`, 200), owner.page.locator('[data-test=owner-opt-out-confirm]').click()])
      await owner.page.locator('[data-test=owner-opted-out]').getByText('已退订').waitFor()
      await screenshot(owner.page, 'owner', 'opted-out')
      assert.equal((await ok(page, 'GET', `/customers/${buyer.id}`)).body.marketing_consent, false, 'the consent is withdrawn')
    } finally {
      await owner.context.close()
      await staff.context.close()
    }
  })
})
