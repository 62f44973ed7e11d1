/** What a search box's text is taken for, and the query parameter `GET /customers` gets. */
export type SearchKind = 'phone' | 'phoneTail' | 'plate' | 'vin' | 'tag' | 'name'

export interface SearchQuery {
  kind: SearchKind
  param: 'phone' | 'plate' | 'vin' | 'tag' | 'name'
  value: string
}

const PLATE = /^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][·•.\s-]?[A-Z0-9]{5,6}$/
const VIN = /^[A-Z0-9]{17}$/
const MOBILE = /^(?:\+?86)?\d{11}$/

/** 11 digits or +86… → phone; 4 digits → last four of a phone; 京A12345 → plate; 17 letters and digits → VIN; #… → tag; else name. */
export function classify(raw: string): SearchQuery | null {
  const text = raw.trim()
  if (!text) return null
  const compact = text.replace(/[\s-]/g, '')
  if (text.startsWith('#')) {
    const tag = text.slice(1).trim()
    return tag ? { kind: 'tag', param: 'tag', value: tag } : null
  }
  if (MOBILE.test(compact) || (compact.startsWith('+86') && /^\+86\d+$/.test(compact))) {
    return { kind: 'phone', param: 'phone', value: compact }
  }
  if (/^\d{4}$/.test(compact)) return { kind: 'phoneTail', param: 'phone', value: compact }
  const upper = compact.toUpperCase()
  if (PLATE.test(text.toUpperCase()) || PLATE.test(upper)) return { kind: 'plate', param: 'plate', value: upper }
  if (VIN.test(upper)) return { kind: 'vin', param: 'vin', value: upper }
  return { kind: 'name', param: 'name', value: text }
}
