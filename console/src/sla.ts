import type { Schemas } from './api/client'

type Ticket = Schemas['Ticket']

export type SlaState = 'breached' | 'soon' | 'ok' | 'none'

const HOUR_MS = 3_600_000

function active(ticket: Ticket): boolean {
  return ticket.status === 'open' || ticket.status === 'in_progress'
}

/** The due time of the SLA clock that is running: first contact until someone answered, then resolution. */
export function slaDue(ticket: Ticket): string | null {
  if (!active(ticket)) return null
  if (!ticket.first_contact_at && ticket.first_contact_due) return ticket.first_contact_due
  return ticket.resolution_due ?? null
}

/** Red when a clock of a ticket still open is breached, orange with less than an hour left, else green. */
export function slaState(ticket: Ticket, now: number): SlaState {
  if (!active(ticket)) return 'none'
  const due = slaDue(ticket)
  if (ticket.resolution_breached_at || ticket.first_contact_breached_at) return 'breached'
  if (!due) return 'none'
  const left = new Date(due).getTime() - now
  if (left <= 0) return 'breached'
  return left < HOUR_MS ? 'soon' : 'ok'
}

/** Milliseconds until the running clock's due time (negative past it); Infinity without one. */
export function slaLeft(ticket: Ticket, now: number): number {
  const due = slaDue(ticket)
  return due ? new Date(due).getTime() - now : Number.POSITIVE_INFINITY
}

export const SLA_TAG_TYPE: Record<SlaState, 'danger' | 'warning' | 'success' | 'info'> = {
  breached: 'danger',
  soon: 'warning',
  ok: 'success',
  none: 'info',
}
