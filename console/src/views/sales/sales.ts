import { reactive } from 'vue'
import { api, unwrap, type Schemas } from '../../api/client'
import { session, can } from '../../session'

export type Lead = Schemas['Lead']
export type Stage = Schemas['Stage']
export type Order = Schemas['Order']
export type OrderStatus = Schemas['OrderStatus']

/** The funnel's stages in their order, `lost` last. */
export const STAGES: Stage[] = ['new', 'contacted', 'test_drive', 'negotiating', 'won', 'lost']
export const CHANNELS: Schemas['Channel'][] = ['walk_in', 'online_ad', 'auto_show', 'app', 'referral']

/** Dealer staff who change records: the ones who capture leads, book and sell (HQ would have to name a dealer). */
export function canSell(): boolean {
  return can('write_records') && session.me?.org_kind === 'dealer'
}

/** Yuan as typed (up to 2 decimals) to integer fen. */
export function toFen(yuan: number | null | undefined): number {
  return Math.round((yuan ?? 0) * 100)
}

/** A fresh `Idempotency-Key` for one creation (a retry of the same form sends the same key). */
export function newKey(): string {
  return crypto.randomUUID()
}

/** The path an order walks, for its steps. */
export function orderPath(order: Pick<Order, 'finance_plan'>): OrderStatus[] {
  return order.finance_plan
    ? ['draft', 'confirmed', 'pdi_passed', 'finance_approved', 'ready', 'delivered']
    : ['draft', 'confirmed', 'pdi_passed', 'ready', 'delivered']
}

/** Names of leads and customers that pages show by id, read once each per page load. */
const names = reactive({ leads: new Map<number, string>(), customers: new Map<number, string>() })
const asked = new Set<string>()

export function rememberLead(lead: Pick<Lead, 'id' | 'name'>): void {
  names.leads.set(lead.id, lead.name)
}

export function leadName(id: number): string {
  if (!names.leads.has(id) && !asked.has(`l${id}`)) {
    asked.add(`l${id}`)
    void api.GET('/leads/{id}', { params: { path: { id } } }).then((r) => {
      if (r.data) rememberLead(r.data)
    })
  }
  return names.leads.get(id) ?? `#${id}`
}

export function customerName(id: number): string {
  if (!names.customers.has(id) && !asked.has(`c${id}`)) {
    asked.add(`c${id}`)
    void api.GET('/customers/{id}', { params: { path: { id } } }).then((r) => {
      if (r.data) names.customers.set(id, r.data.name)
    })
  }
  return names.customers.get(id) ?? `#${id}`
}

/** The newest open leads (for choosing whom a test drive or an order is for). */
export async function openLeads(): Promise<Lead[]> {
  const page = unwrap(await api.GET('/leads', { params: { query: { limit: 200 } } }))
  for (const l of page.items) rememberLead(l)
  return page.items.filter((l) => l.stage !== 'won' && l.stage !== 'lost')
}
