import { reactive } from 'vue'
import { api, unwrap, type Schemas } from './api/client'

/** The staff and units the signed-in person can see, read once a page load, to name ids. */
const directory = reactive({
  staff: new Map<number, Schemas['Staff']>(),
  units: new Map<number, Schemas['OrgUnit']>(),
})

let staffLoad: Promise<void> | null = null
let unitsLoad: Promise<void> | null = null

/** Reads the staff list (once); a failure leaves ids unnamed and is tried again next time. */
export function loadStaff(): Promise<void> {
  staffLoad ??= api
    .GET('/staff')
    .then((r) => {
      for (const s of unwrap(r)) directory.staff.set(s.id, s)
    })
    .catch(() => {
      staffLoad = null
    })
  return staffLoad
}

export function loadUnits(): Promise<void> {
  unitsLoad ??= api
    .GET('/network/units')
    .then((r) => {
      for (const u of unwrap(r)) directory.units.set(u.id, u)
    })
    .catch(() => {
      unitsLoad = null
    })
  return unitsLoad
}

/** The staff member's name, or `#id` while unknown. */
export function staffName(id: number | null | undefined): string {
  if (id === null || id === undefined) return ''
  return directory.staff.get(id)?.name ?? `#${id}`
}

export function unitName(id: number | null | undefined): string {
  if (id === null || id === undefined) return ''
  return directory.units.get(id)?.name ?? `#${id}`
}
