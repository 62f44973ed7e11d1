import { reactive } from 'vue'
import { api, asApiError, csrf, unwrap, type ApiError } from './api/client'

export type Permission =
  | 'read_records'
  | 'write_records'
  | 'manage_custom_fields'
  | 'manage_keys'
  | 'manage_network'
  | 'read_audit'
  | 'read_plugins'
  | 'manage_plugins'
  | 'read_plugin_runs'
  | 'operate_workers'
  | 'manage_partners'
  | 'import_records'

export type Role = 'hq_admin' | 'hq_analyst' | 'regional_manager' | 'dealer_admin' | 'sales' | 'service'

/** The signed-in person, as `GET /session` tells. */
export interface Me {
  staff_id: number
  name: string
  username: string
  role: string
  position?: string | null
  org_unit_id: number
  org_unit_name: string
  org_kind: string
  permissions: string[]
}

interface SessionBody {
  csrf_token: string
  expires_at: string
  me: Me
}

export const session = reactive({
  me: null as Me | null,
  /** `GET /session` has been asked once since the page loaded. */
  checked: false,
})

function adopt(body: SessionBody): void {
  csrf.token = body.csrf_token
  session.me = body.me
  session.checked = true
}

function forget(): void {
  csrf.token = ''
  session.me = null
  session.checked = true
}

/** Asks the host who is signed in (after a reload the cookie is there but the CSRF token is not). */
export async function restoreSession(): Promise<Me | null> {
  try {
    adopt(unwrap(await api.GET('/session')) as SessionBody)
  } catch {
    forget()
  }
  return session.me
}

export type LoginResult = { ok: true } | { ok: false; error: ApiError; retryAfterSeconds: number | null }

export async function login(username: string, password: string): Promise<LoginResult> {
  try {
    adopt(unwrap(await api.POST('/session', { body: { username, password } })) as SessionBody)
    return { ok: true }
  } catch (e) {
    const error = asApiError(e)
    const retry = error.response?.headers.get('Retry-After')
    return { ok: false, error, retryAfterSeconds: retry ? Number(retry) : null }
  }
}

export async function logout(): Promise<void> {
  try {
    await api.DELETE('/session')
  } finally {
    forget()
  }
}

/** The session is gone (a 401 elsewhere): drop what we knew of it. */
export function sessionLost(): void {
  forget()
}

export function can(permission: Permission): boolean {
  return session.me?.permissions.includes(permission) ?? false
}

export function hasRole(...roles: Role[]): boolean {
  return !!session.me && (roles as string[]).includes(session.me.role)
}
