import type { FormItemRule } from 'element-plus'
import type { Schemas } from './api/client'
import { i18n } from './i18n'

export type FieldDef = Schemas['FieldDef']

function empty(value: unknown): boolean {
  return value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0)
}

/** The form's value of a custom field (money in yuan) from the record's (money in fen). */
export function toFormValue(def: FieldDef, value: unknown): unknown {
  if (value === undefined || value === null) return def.type === 'boolean' ? false : null
  if (def.type === 'money' && typeof value === 'number') return value / 100
  return value
}

/** The record's value of a custom field from the form's; null clears it. */
export function fromFormValue(def: FieldDef, value: unknown): unknown {
  if (empty(value)) return null
  if (def.type === 'money' && typeof value === 'number') return Math.round(value * 100)
  return value
}

/** The person's words for what is wrong with `value`, or '' when the definition accepts it. */
export function checkValue(def: FieldDef, value: unknown): string {
  const t = i18n.global.t
  if (empty(value)) return def.required ? t('fields.required', { label: def.label }) : ''
  const min = def.min ?? null
  const max = def.max ?? null
  switch (def.type) {
    case 'text': {
      if (typeof value !== 'string') return t('fields.text')
      const length = [...value].length
      if (min !== null && length < min) return t('fields.minLength', { n: min })
      if (max !== null && length > max) return t('fields.maxLength', { n: max })
      return ''
    }
    case 'integer':
    case 'decimal':
    case 'money': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return t('fields.number')
      if (def.type === 'integer' && !Number.isInteger(value)) return t('fields.integer')
      if (def.type === 'money' && value < 0) return t('fields.nonNegative')
      const compared = def.type === 'money' ? Math.round(value * 100) : value
      const shown = (n: number) => (def.type === 'money' ? (n / 100).toFixed(2) : String(n))
      if (min !== null && compared < min) return t('fields.min', { n: shown(min) })
      if (max !== null && compared > max) return t('fields.max', { n: shown(max) })
      return ''
    }
    case 'boolean':
      return typeof value === 'boolean' ? '' : t('fields.boolean')
    case 'date':
      return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? '' : t('fields.date')
    case 'choice':
      return (def.choices ?? []).includes(String(value)) ? '' : t('fields.choice')
    default:
      return ''
  }
}

/** An Element Plus rule that runs `checkValue`. */
export function ruleFor(def: FieldDef): FormItemRule {
  return {
    required: def.required,
    trigger: ['blur', 'change'],
    validator: (_rule, value, callback) => {
      const message = checkValue(def, value)
      if (message) callback(new Error(message))
      else callback()
    },
  }
}
