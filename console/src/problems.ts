import type { ApiError } from './api/client'
import { i18n } from './i18n'

/** What to tell a person about a failed call: the host's `detail`, else its title, else a generic sentence. */
export function problemText(error: ApiError): string {
  const t = i18n.global.t
  if (error.status === 0) return t('errors.network')
  if (error.status === 403 && error.problem.code === 'csrf') return t('errors.csrf')
  return error.problem.detail || error.problem.title || t('errors.generic', { status: error.status })
}
