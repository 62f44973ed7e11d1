import createClient, { type Middleware } from 'openapi-fetch'
import type { components, paths } from './schema'

export type Schemas = components['schemas']

/** An error answer of the host (`application/problem+json`). */
export interface Problem {
  type?: string
  title?: string
  status: number
  code?: string
  detail?: string
  errors?: { field: string; code: string; message: string }[]
  current_version?: number
  /** With an owner's link that expired or was used (410): the dealer who sent it. */
  dealer_name?: string
  dealer_phone?: string
}

/** A failed call: the host's problem, or what the browser said when the host could not be reached. */
export class ApiError extends Error {
  readonly problem: Problem
  readonly response?: Response

  constructor(problem: Problem, response?: Response) {
    super(problem.detail || problem.title || `HTTP ${problem.status}`)
    this.problem = problem
    this.response = response
  }

  get status(): number {
    return this.problem.status
  }
}

/** The CSRF token of the signed-in session; every write sends it. */
export const csrf = { token: '' }

let unauthenticated: () => void = () => undefined

/** What to do when a call answers 401 (the session is gone): the router sends the person to /login. */
export function onUnauthenticated(handler: () => void): void {
  unauthenticated = handler
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

const sessionMiddleware: Middleware = {
  onRequest({ request }) {
    if (!SAFE_METHODS.has(request.method) && csrf.token) {
      request.headers.set('X-CSRF-Token', csrf.token)
    }
    return request
  },
  onResponse({ request, response }) {
    const path = new URL(request.url).pathname
    if (response.status === 401 && !path.startsWith('/api/v1/session')) {
      unauthenticated()
    }
    return response
  },
}

export const api = createClient<paths>({ baseUrl: '/api/v1', credentials: 'same-origin' })
api.use(sessionMiddleware)

/** The data of a successful answer, or an ApiError carrying the problem. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.response.ok && result.error === undefined) {
    return result.data as T
  }
  throw toApiError(result.error, result.response)
}

function toApiError(body: unknown, response: Response): ApiError {
  const problem: Problem =
    body && typeof body === 'object' ? { ...(body as Problem), status: response.status } : { status: response.status, detail: typeof body === 'string' ? body : undefined }
  return new ApiError(problem, response)
}

/** Turns anything thrown by a call into an ApiError (a network failure becomes status 0). */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e
  return new ApiError({ status: 0, detail: e instanceof Error ? e.message : String(e) })
}

/** The `If-Match` value for a record's version. */
export function ifMatch(version: number): string {
  return `"${version}"`
}
