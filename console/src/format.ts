/** Dealer local time: every time is shown in Asia/Shanghai as `YYYY-MM-DD HH:mm`. */
export const DEALER_TIME_ZONE = 'Asia/Shanghai'

const timeFormat = new Intl.DateTimeFormat('sv-SE', {
  timeZone: DEALER_TIME_ZONE,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  hour12: false,
})

const dateFormat = new Intl.DateTimeFormat('sv-SE', {
  timeZone: DEALER_TIME_ZONE,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
})

/** An RFC 3339 string or milliseconds since the epoch, as `YYYY-MM-DD HH:mm` in Shanghai; '' for none. */
export function formatTime(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') return ''
  const date = new Date(value)
  if (Number.isNaN(date.getTime())) return String(value)
  return timeFormat.format(date)
}

/** The Shanghai calendar day (`YYYY-MM-DD`) of an instant. */
export function shanghaiDay(value: string | number | Date): string {
  return dateFormat.format(new Date(value))
}

const moneyFormat = new Intl.NumberFormat('zh-CN', { minimumFractionDigits: 2, maximumFractionDigits: 2 })

/** Integer fen as `¥1,234.50`. */
export function formatMoney(fen: number | null | undefined): string {
  if (fen === null || fen === undefined) return ''
  return `¥${moneyFormat.format(fen / 100)}`
}
