import type { ApiError, Problem } from './api/client'
import { i18n } from './i18n'

type FieldError = NonNullable<Problem['errors']>[number]

/**
 * What to tell a person about a failed call: the words for its stable `code` in their
 * language when there are some, else the host's `detail`, else its title.
 */
export function problemText(error: ApiError): string {
  const { t, te } = i18n.global
  if (error.status === 0) return t('errors.network')
  const code = error.problem.code
  if (code && te(`problem.${code}`)) return t(`problem.${code}`)
  return error.problem.detail || error.problem.title || t('errors.generic', { status: error.status })
}

/** The words for one refused field: by its code when known, else the host's message. */
export function fieldErrorText(error: FieldError): string {
  const { t, te } = i18n.global
  return te(`fieldError.${error.code}`) ? t(`fieldError.${error.code}`) : error.message
}
