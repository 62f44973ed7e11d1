import type { LocationQuery, LocationQueryRaw } from 'vue-router'
import type { Schemas } from './api/client'
import { i18n } from './i18n'
import { label } from './labels'
import { formatMoney, shanghaiDay } from './format'

export type Kpi = Schemas['Kpi']
export type Breakdown = Schemas['Breakdown']
export type Figure = Schemas['Figure']
export type Scorecard = Schemas['Scorecard']

/** How a KPI's value reads: a share 0–1, seconds, a score, fen, days or hours. */
export type KpiKind = 'share' | 'seconds' | 'csat' | 'nps' | 'fen' | 'days' | 'hours'

interface KpiDef {
  kind: KpiKind
  /** A lower value is the better one. */
  lowerIsBetter: boolean
}

/** Every KPI, in the order the cards show them: customer care, satisfaction, after-sales, sales. */
export const KPIS: Record<Kpi, KpiDef> = {
  fcr: { kind: 'share', lowerIsBetter: false },
  aht: { kind: 'seconds', lowerIsBetter: true },
  backlog: { kind: 'share', lowerIsBetter: true },
  csat: { kind: 'csat', lowerIsBetter: false },
  csat_satisfied: { kind: 'share', lowerIsBetter: false },
  nps: { kind: 'nps', lowerIsBetter: false },
  return_rate: { kind: 'share', lowerIsBetter: false },
  ltv: { kind: 'fen', lowerIsBetter: false },
  appointment_conversion: { kind: 'share', lowerIsBetter: false },
  time_between_visits: { kind: 'days', lowerIsBetter: true },
  first_time_fix: { kind: 'share', lowerIsBetter: false },
  repair_duration: { kind: 'hours', lowerIsBetter: true },
  revenue: { kind: 'fen', lowerIsBetter: false },
  lead_conversion: { kind: 'share', lowerIsBetter: false },
  churn: { kind: 'share', lowerIsBetter: true },
}

export const KPI_LIST = Object.keys(KPIS) as Kpi[]

export function isKpi(value: unknown): value is Kpi {
  return typeof value === 'string' && value in KPIS
}

const BREAKDOWNS: Breakdown[] = ['child', 'region', 'group', 'dealer', 'channel', 'category', 'team', 'consultant', 'advisor', 'service_type', 'touchpoint']

export function isBreakdown(value: unknown): value is Breakdown {
  return typeof value === 'string' && (BREAKDOWNS as string[]).includes(value)
}

export const ABSENT = '—'

function fixed(value: number, digits: number): string {
  return value.toLocaleString(i18n.global.locale.value, { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/** Seconds in the largest unit that keeps `reference` (default the number itself) readable. */
export function formatSeconds(seconds: number, reference = seconds): string {
  const { t } = i18n.global
  const size = Math.abs(reference)
  if (size < 60) return t('kpi.unit.seconds', { n: fixed(seconds, 0) })
  if (size < 3600) return t('kpi.unit.minutes', { n: fixed(seconds / 60, 1) })
  if (size < 86_400) return t('kpi.unit.hours', { n: fixed(seconds / 3600, 1) })
  return t('kpi.unit.days', { n: fixed(seconds / 86_400, 1) })
}

/** A value of the given kind as a person reads it; "—" when there is none. */
export function formatKind(kind: KpiKind, value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return ABSENT
  const { t } = i18n.global
  switch (kind) {
    case 'share':
      return `${fixed(value * 100, 1)}%`
    case 'seconds':
      return formatSeconds(value)
    case 'csat':
      return fixed(value, 2)
    case 'nps':
      return fixed(value, 1)
    case 'fen':
      return formatMoney(Math.round(value))
    case 'days':
      return t('kpi.unit.days', { n: fixed(value, 1) })
    case 'hours':
      return t('kpi.unit.hours', { n: fixed(value, 1) })
  }
}

export function formatKpi(kpi: Kpi, value: number | null | undefined): string {
  return formatKind(KPIS[kpi].kind, value)
}

/** The change of `delta` from a value of `now` in words: percentage points for shares, the unit `now` is shown in otherwise. */
export function formatDelta(kpi: Kpi, delta: number, now: number): string {
  const sign = delta > 0 ? '+' : delta < 0 ? '−' : '±'
  const size = Math.abs(delta)
  const kind = KPIS[kpi].kind
  if (kind === 'share') return i18n.global.t('kpi.points', { n: `${sign}${fixed(size * 100, 1)}` })
  if (kind === 'seconds') return `${sign}${formatSeconds(size, now)}`
  return `${sign}${formatKind(kind, size)}`
}

export type Trend = 'better' | 'worse' | 'same'

/** Whether going from `before` to `now` is better, worse or no change for `kpi`. */
export function trendOf(kpi: Kpi, delta: number): Trend {
  if (Math.abs(delta) < 1e-9) return 'same'
  return delta < 0 === KPIS[kpi].lowerIsBetter ? 'better' : 'worse'
}

/** What a drill-down record's `value` is, by its KPI (see `DrillRecord.value`). */
export function formatRecordValue(kpi: Kpi, value: number | null | undefined): string {
  if (value === null || value === undefined) return ''
  switch (kpi) {
    case 'aht':
      return formatSeconds(value)
    case 'csat':
    case 'csat_satisfied':
    case 'nps':
      return i18n.global.t('kpi.unit.score', { n: fixed(value, 0) })
    case 'return_rate':
      return i18n.global.t('kpi.unit.visits', { n: fixed(value, 0) })
    case 'appointment_conversion':
      return i18n.global.t('kpi.unit.appointments', { n: fixed(value, 0) })
    case 'ltv':
    case 'revenue':
      return formatMoney(Math.round(value))
    case 'time_between_visits':
    case 'churn':
      return i18n.global.t('kpi.unit.days', { n: fixed(value, 1) })
    case 'repair_duration':
      return i18n.global.t('kpi.unit.hours', { n: fixed(value, 1) })
    default:
      return fixed(value, 2)
  }
}

/** The words for a row of a dimension breakdown (a channel, a category…); units and staff are named by the host. */
export function rowLabel(by: Breakdown, key: string, hostLabel: string): string {
  if (key === 'unassigned') return i18n.global.t('kpi.unassigned')
  const group: Partial<Record<Breakdown, string>> = {
    category: 'ticketCategory',
    service_type: 'appointment.service',
    touchpoint: 'kpi.touchpoint',
  }
  if (by === 'channel') {
    const ticket = label('ticketChannel', key)
    return ticket !== key ? ticket : label('sales.channel', key)
  }
  const g = group[by]
  return g ? label(g, key) : hostLabel
}

// The period of a dashboard: a preset ending today, or a custom range, read from the URL.

export type Preset = 'day' | 'week' | 'month' | 'quarter' | 'custom'
export const PRESETS: Preset[] = ['day', 'week', 'month', 'quarter', 'custom']

export interface Period {
  preset: Preset
  /** First day, `YYYY-MM-DD`. */
  from: string
  /** Last day, included. */
  to: string
}

const DAY = /^\d{4}-\d{2}-\d{2}$/

function addDays(day: string, n: number): string {
  const date = new Date(`${day}T00:00:00Z`)
  date.setUTCDate(date.getUTCDate() + n)
  return date.toISOString().slice(0, 10)
}

/** The first day of the preset's period that ends today (weeks start on Monday). */
function presetStart(preset: Preset, today: string): string {
  const [y, m] = today.split('-').map(Number)
  switch (preset) {
    case 'day':
      return today
    case 'week': {
      const weekday = new Date(`${today}T00:00:00Z`).getUTCDay()
      return addDays(today, -((weekday + 6) % 7))
    }
    case 'quarter':
      return `${y}-${String(Math.floor((m - 1) / 3) * 3 + 1).padStart(2, '0')}-01`
    default:
      return `${y}-${String(m).padStart(2, '0')}-01`
  }
}

/** The period a URL query names; this month by default. */
export function periodOf(query: LocationQuery, today = shanghaiDay(Date.now())): Period {
  const preset = PRESETS.includes(query.period as Preset) ? (query.period as Preset) : 'month'
  const from = String(query.from ?? '')
  const to = String(query.to ?? '')
  if (preset === 'custom' && DAY.test(from) && DAY.test(to) && from <= to) return { preset, from, to }
  const p = preset === 'custom' ? 'month' : preset
  return { preset: p, from: presetStart(p, today), to: today }
}

/** The URL query of a period (a preset needs no dates: the link always means "this month"). */
export function periodQuery(period: Period): LocationQueryRaw {
  return period.preset === 'custom' ? { period: 'custom', from: period.from, to: period.to } : { period: period.preset }
}

/** The window a trend is drawn over: twelve weeks ending with the period, or its months when it is longer. */
export function trendWindow(period: Period): { from: string; to: string; interval: 'week' | 'month' } {
  const days = (Date.parse(period.to) - Date.parse(period.from)) / 86_400_000 + 1
  if (days > 84) return { from: period.from, to: period.to, interval: 'month' }
  return { from: addDays(period.to, -83), to: period.to, interval: 'week' }
}

/** A number from the URL query, or undefined. */
export function queryId(value: unknown): number | undefined {
  const n = Number(value)
  return typeof value === 'string' && Number.isInteger(n) && n > 0 ? n : undefined
}

/** A chart axis' tick for a KPI: short, without decimals where they do not help. */
export function axisTick(kpi: Kpi, value: number): string {
  switch (KPIS[kpi].kind) {
    case 'share':
      return `${Math.round(value * 100)}%`
    case 'seconds':
      return formatSeconds(value)
    case 'fen':
      return `¥${Math.round(value / 100).toLocaleString('zh-CN')}`
    default:
      return String(value)
  }
}
