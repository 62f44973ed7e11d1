import { i18n } from './i18n'

/** The words for an enum value (`group.value` in the messages), or the value itself when there are none. */
export function label(group: string, value: string | null | undefined): string {
  if (value === null || value === undefined || value === '') return ''
  const key = `${group}.${value}`
  return i18n.global.te(key) ? i18n.global.t(key) : value
}
