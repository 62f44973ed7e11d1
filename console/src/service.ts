import { reactive } from 'vue'
import { api, unwrap, type Schemas } from './api/client'

export type RepairOrder = Schemas['RepairOrder']
export type RoStatus = Schemas['RoStatus']
export type Grade = Schemas['InspectionGrade']

export const GRADES: Grade[] = ['green', 'yellow', 'red']
export const GRADE_TAG: Record<Grade, 'success' | 'warning' | 'danger'> = { green: 'success', yellow: 'warning', red: 'danger' }

/** The board's columns, in the order a repair goes through them. */
export const ACTIVE_STATUSES: RoStatus[] = ['open', 'inspected', 'in_progress', 'waiting_approval', 'quality_check', 'ready', 'settled']
export const CLOSED_STATUSES: RoStatus[] = ['paid', 'cancelled']

/**
 * The moves made by `POST /repair-orders/{id}/status`, of those the host says the order may
 * make next (`next_statuses`); the others record data through their own call.
 */
export function plainMoves(order: RepairOrder): RoStatus[] {
  return order.next_statuses.filter(
    (to) => to === 'cancelled' || to === 'quality_check' || (order.status === 'waiting_approval' && to === 'in_progress'),
  )
}

/** The URL of an attachment the signed-in person may read. */
export function attachmentUrl(id: number): string {
  return `/api/v1/attachments/${id}`
}

/**
 * Posts a photo as the raw body with its own Content-Type, as the photo routes expect (the
 * host's document types that body as bytes; the file is sent as it is).
 */
export async function uploadPhoto(orderId: number, file: File, eventId?: number): Promise<Schemas['Attachment']> {
  const options = { body: [] as number[], bodySerializer: () => file, headers: { 'Content-Type': file.type || 'application/octet-stream' } }
  if (eventId === undefined) {
    return unwrap(await api.POST('/repair-orders/{id}/inspection/photos', { params: { path: { id: orderId } }, ...options }))
  }
  return unwrap(await api.POST('/repair-orders/{id}/progress/{event_id}/photos', { params: { path: { id: orderId, event_id: eventId } }, ...options }))
}

/** The absolute address of the owner's extra-work page for link `token` (what the QR code encodes). */
export function ownerExtraWorkUrl(token: string): string {
  return `${location.origin}/o/w/${token}`
}

/** Yuan as typed in a form, as integer fen. */
export function toFen(yuan: number | null | undefined): number {
  return Math.round((yuan ?? 0) * 100)
}

const vehicles = reactive(new Map<number, Schemas['Vehicle'] | null>())
const customers = reactive(new Map<number, Schemas['Customer'] | null>())

/** Reads vehicle `id` once a page load, to name it by its plate. */
export function loadVehicle(id: number): void {
  if (vehicles.has(id)) return
  vehicles.set(id, null)
  api
    .GET('/vehicles/{id}', { params: { path: { id } } })
    .then((r) => vehicles.set(id, unwrap(r)))
    .catch(() => vehicles.delete(id))
}

export function loadCustomer(id: number): void {
  if (customers.has(id)) return
  customers.set(id, null)
  api
    .GET('/customers/{id}', { params: { path: { id } } })
    .then((r) => customers.set(id, unwrap(r)))
    .catch(() => customers.delete(id))
}

/** `京A·12345 远航 Y7`, or `#id` while unknown. */
export function vehicleName(id: number): string {
  const v = vehicles.get(id)
  if (!v) return `#${id}`
  return [v.plate, v.brand, v.model].filter(Boolean).join(' ')
}

export function customerName(id: number): string {
  return customers.get(id)?.name ?? `#${id}`
}
