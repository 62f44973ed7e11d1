import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { apiCall, baseUrl, launch, login, loginOf, menuPaths, newPage, screenshot } from './support.mjs'

const CSV_HEADER = '类型,编号,门店,客户编号,客户,时间,计入,数值,说明,常规间隔(天)'
/** The ticket KPIs the demo always has records for (120 tickets over the last 180 days). */
const TICKET_KPIS = ['backlog', 'fcr', 'aht']

/** The rows of a CSV text (quoted fields may hold commas, quotes and line breaks). */
function csvRows(text) {
  const rows = []
  let row = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"'
        i++
      } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') {
      row.push(field)
      field = ''
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++
      row.push(field)
      rows.push(row)
      row = []
      field = ''
    } else field += c
  }
  if (field || row.length) rows.push([...row, field])
  return rows
}

/** The period the page shows (`YYYY-MM-DD 至 YYYY-MM-DD`). */
async function shownPeriod(page) {
  const text = await page.locator('[data-test=period-dates]').innerText()
  const [, from, to] = /(\d{4}-\d{2}-\d{2}) 至 (\d{4}-\d{2}-\d{2})/.exec(text)
  return { from, to }
}

/** Every record the API lists for a query, all pages. */
async function allRecords(page, query) {
  const items = []
  let cursor = ''
  do {
    const answer = await apiCall(page, 'GET', `/kpis/records?${query}&limit=200${cursor ? `&cursor=${cursor}` : ''}`)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    items.push(...answer.body.items)
    cursor = answer.body.next_cursor ?? ''
  } while (cursor)
  return items
}

async function settled(page) {
  await page.waitForLoadState('networkidle')
  await page.locator('.el-loading-mask').first().waitFor({ state: 'hidden' })
}

/** The page's failed calls, in the words it shows them. */
async function failures(page) {
  return page.locator('.el-alert--error').allInnerTexts()
}

/** The unit names of the cockpit's ranking table. */
async function rankedNames(page) {
  await settled(page)
  await page.locator('[data-test=children] .el-table__body tr').first().waitFor()
  return page.locator('[data-test=children] [data-unit]').allInnerTexts()
}

describe('the KPI dashboards', () => {
  let browser
  /** 上海浦东4S店's unit id, as HQ sees it. */
  let shanghaiId
  before(async () => {
    browser = await launch()
  })
  after(async () => {
    await browser?.close()
  })

  test('HQ sees the regions, drills a bar of the chart and a KPI card into their records, and exports them as CSV and Excel', async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ org: 'HQ', role: 'hq_analyst' }))
      assert.ok((await menuPaths(page)).includes('/dashboards'))
      await page.locator('[data-test=side-menu] [data-menu="/dashboards"]').click()
      await page.waitForURL(`${baseUrl}/dashboards`)
      await page.locator('[data-test=period] [data-preset=quarter]').click()
      await page.waitForURL(/period=quarter/)
      const { from, to } = await shownPeriod(page)
      const report = await apiCall(page, 'GET', `/kpis?from=${from}&to=${to}`)
      assert.equal(report.status, 200)
      assert.equal(report.body.unit.kind, 'hq')
      const regions = report.body.rows.map((r) => r.label)
      assert.ok(regions.includes('华北大区') && regions.includes('华东大区'), `rows ${regions}`)
      assert.deepEqual((await rankedNames(page)).sort(), [...regions].sort(), 'the table ranks the regions')
      await page.locator('[data-test=trail]').getByText(report.body.unit.name).waitFor()
      await page.locator('[data-test=children-chart] canvas').waitFor()
      await page.locator('[data-test=sparkline] canvas').first().waitFor()
      const cards = await page.locator('[data-test=kpi-cards] [data-kpi]').evaluateAll((els) => els.map((e) => e.getAttribute('data-kpi')))
      assert.deepEqual(cards.sort(), Object.keys(report.body.total).filter((k) => report.body.total[k]).sort(), 'a card per KPI of the report')
      await settled(page)
      assert.deepEqual(await failures(page), [], 'no call failed')
      await screenshot(page, 'dashboards-hq', 'cockpit')

      // The bar chart ranks the regions by 首次解决率, the best on top: a click on its bar opens that region's records.
      const best = [...report.body.rows].filter((r) => r.kpis.fcr.value !== null && r.kpis.fcr.value !== undefined).sort((a, b) => b.kpis.fcr.value - a.kpis.fcr.value)[0]
      assert.ok(best, 'a region has an FCR this quarter')
      const chart = await page.locator('[data-test=children-chart]').boundingBox()
      const bars = report.body.rows.length
      await page.mouse.click(chart.x + chart.width * 0.5, chart.y + 8 + (chart.height - 16) / bars / 2)
      await page.waitForURL(new RegExp(`/dashboards/records\\?.*kpi=fcr.*key=${best.key}`))
      await page.locator('[data-test=records-what]').getByText(best.label).waitFor()
      const closed = await allRecords(page, `kpi=fcr&from=${from}&to=${to}&unit_id=${report.body.unit.id}&by=child&key=${best.key}`)
      assert.equal(closed.length, best.kpis.fcr.count, "the region's records are the tickets its FCR is over")
      await page.locator('[data-test=records-total]').getByText(`共 ${closed.length} 条`).waitFor()
      await page.goBack()
      await page.locator('[data-test=kpi-cards] [data-kpi]').first().waitFor()

      const kpi = TICKET_KPIS.find((k) => report.body.total[k]?.count > 0)
      assert.ok(kpi, 'the demo has tickets this quarter')
      await page.locator(`[data-test=kpi-cards] [data-kpi=${kpi}]`).click()
      await page.waitForURL(new RegExp(`/dashboards/records\\?.*kpi=${kpi}`))
      const expected = await allRecords(page, `kpi=${kpi}&from=${from}&to=${to}&unit_id=${report.body.unit.id}`)
      assert.ok(expected.length > 0)
      const rows = page.locator('[data-test=records] .el-table__body tr')
      await rows.first().waitFor()
      const more = page.getByRole('button', { name: '加载更多' })
      while (await more.count()) {
        await more.click()
        await settled(page)
      }
      await page.locator('[data-test=records-total]').getByText(`共 ${expected.length} 条`).waitFor()
      assert.equal(await rows.count(), expected.length)
      assert.deepEqual(await failures(page), [], 'no call failed')
      await screenshot(page, 'dashboards-hq', 'records')

      const [csv] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test=export-csv]').click()])
      assert.match(csv.suggestedFilename(), new RegExp(`^kpi-${kpi}-.*\\.csv$`))
      const text = readFileSync(await csv.path(), 'utf8')
      assert.ok(text.startsWith('\uFEFF'), 'the CSV starts with a byte order mark, so Excel reads the Chinese')
      const lines = csvRows(text.slice(1)).filter((r) => r.length > 1)
      assert.equal(lines[0].join(','), CSV_HEADER)
      assert.equal(lines.length - 1, expected.length, 'a CSV row per record shown')
      assert.deepEqual(
        lines.slice(1).map((r) => Number(r[1])),
        expected.map((r) => r.id),
        'the same records, in the same order',
      )

      const [xlsx] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test=export-xlsx]').click()])
      assert.match(xlsx.suggestedFilename(), /\.xlsx$/)
      const bytes = readFileSync(await xlsx.path())
      assert.equal(bytes.subarray(0, 2).toString('latin1'), 'PK', 'an xlsx is a zip file')

      const byDealer = await apiCall(page, 'GET', `/kpis?from=${from}&to=${to}&by=dealer`)
      shanghaiId = byDealer.body.rows.find((r) => r.label === '远航上海浦东4S店')?.unit_id
      assert.ok(shanghaiId, 'HQ sees 上海浦东4S店')
    } finally {
      await context.close()
    }
  })

  test("the regional manager sees 华北's dealers, not 华东's, and goes down to a store", async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ org: 'R-NORTH', role: 'regional_manager' }))
      await page.locator('[data-test=side-menu] [data-menu="/dashboards"]').click()
      await page.waitForURL(`${baseUrl}/dashboards`)
      await page.locator('[data-test=period] [data-preset=quarter]').click()
      await page.waitForURL(/period=quarter/)
      const { from, to } = await shownPeriod(page)
      const report = await apiCall(page, 'GET', `/kpis?from=${from}&to=${to}&by=dealer`)
      assert.equal(report.body.unit.name, '华北大区')
      const dealers = await rankedNames(page)
      assert.deepEqual([...dealers].sort(), report.body.rows.map((r) => r.label).sort(), "a region's cockpit ranks its dealers")
      assert.ok(dealers.includes('远航北京朝阳4S店') && dealers.includes('远航天津河西服务站'), `dealers ${dealers}`)
      assert.ok(!dealers.includes('远航上海浦东4S店') && !dealers.includes('杭州西湖顺达汽修'), '华东 is not in 华北')
      await page.locator('[data-test=trail]').getByText('华北大区').waitFor()
      await settled(page)
      assert.deepEqual(await failures(page), [], 'no call failed')
      await screenshot(page, 'dashboards-region', 'cockpit')

      await page.locator('.el-select').filter({ has: page.getByRole('combobox', { name: '层级' }) }).click()
      await page.getByRole('option', { name: '下一级' }).click()
      await page.waitForURL(/by=child/)
      const children = (await apiCall(page, 'GET', `/kpis?from=${from}&to=${to}`)).body.rows.map((r) => r.label)
      assert.deepEqual((await rankedNames(page)).sort(), [...children].sort(), 'one level down: the groups')

      await page.goto(`${baseUrl}/dashboards?period=quarter`)
      await page.locator('[data-test=children] [data-unit]').filter({ hasText: /^远航北京朝阳4S店$/ }).click()
      await page.waitForURL(/\/dashboards\/store\?.*unit=\d+/)
      await page.locator('[data-test=store-name]').getByText('远航北京朝阳4S店').waitFor()
      await page.locator('[data-test=trail]').getByText('华北大区').waitFor()
      await settled(page)
      assert.deepEqual(await failures(page), [], 'no call failed')
      await screenshot(page, 'dashboards-region', 'store-quarter')
    } finally {
      await context.close()
    }
  })

  test("the store manager lands on 北京朝阳4S店's cockpit, acts on the churn warning, and is refused another dealer", async () => {
    const { context, page } = await newPage(browser)
    try {
      await login(page, loginOf({ position: 'general_manager' }))
      await page.locator('[data-test=side-menu] [data-menu="/dashboards"]').click()
      await page.waitForURL(`${baseUrl}/dashboards/store`)
      await page.locator('[data-test=store-name]').getByText('远航北京朝阳4S店').waitFor()
      const { from, to } = await shownPeriod(page)
      const report = await apiCall(page, 'GET', `/kpis?from=${from}&to=${to}`)
      assert.equal(report.body.unit.name, '远航北京朝阳4S店')
      await page.locator('[data-test=kpi-cards] [data-kpi]').first().waitFor()
      const cards = await page.locator('[data-test=kpi-cards] [data-kpi]').count()
      assert.equal(cards, Object.values(report.body.total).filter(Boolean).length)
      await page.locator('[data-test=breaches-by-hour] canvas').waitFor()
      await page.locator('[data-test=customer-windows] .el-table__body tr').nth(2).waitFor()

      const churn = await apiCall(page, 'GET', `/kpis/records?kpi=churn&counted=true&from=${from}&to=${to}&limit=50`)
      assert.equal(churn.status, 200)
      const list = page.locator('[data-test=churn-list] .el-table__body tr')
      if (churn.body.items.length) {
        await list.first().waitFor()
        assert.equal(await list.count(), churn.body.items.length)
        await page.locator('[data-test=churn-list] .el-table__header .el-checkbox').click()
        await page.locator('[data-test=churn-tasks]').click()
        await page.locator('[data-test=churn-result]').getByText(/已创建 \d+ 个回访任务/).waitFor()
        await page.getByLabel('优惠内容').fill('到店保养工时费八折')
        await page.locator('[data-test=churn-offers]').click()
        await page.locator('[data-test=churn-result]').getByText(/已发送 \d+ 条挽留优惠，\d+ 位车主未同意接收营销信息/).waitFor()
      } else {
        await page.locator('[data-test=churn]').getByText('暂无数据').waitFor()
        await page.locator('[data-test=churn-tasks]').click()
        await page.locator('[data-test=churn-result]').getByText('请先勾选车主').waitFor()
      }
      await settled(page)
      assert.deepEqual(await failures(page), [], 'no call failed')
      await screenshot(page, 'dashboards-store', 'cockpit')

      assert.ok(shanghaiId, 'the HQ test found 上海浦东4S店')
      const refused = await apiCall(page, 'GET', `/kpis?from=${from}&to=${to}&unit_id=${shanghaiId}`)
      assert.equal(refused.status, 404)
      await page.goto(`${baseUrl}/dashboards/store?unit=${shanghaiId}`)
      await page.locator('[data-test=unit-not-found]').getByText('该单位不存在或不在您的权限范围内').waitFor()
      await screenshot(page, 'dashboards-store', 'foreign-unit')
      await page.goto(`${baseUrl}/dashboards/records?kpi=fcr&unit=${shanghaiId}`)
      await page.locator('[data-test=unit-not-found]').waitFor()
    } finally {
      await context.close()
    }
  })
})
