// filters.js: the delivery logs' filter, kept in the URL's query.

export const STATUSES = ['ATTEMPTED', 'SENT', 'DELIVERED', 'OPENED', 'CONVERTED', 'FAILED', 'BOUNCED', 'SUPPRESSED']

// filterOf reads the logs' filter from the URL's query.
export function filterOf(params) {
  const f = {}
  for (const [k, name] of [['campaign', 'campaignId'], ['message', 'messageId'], ['person', 'personId'], ['from', 'from'], ['to', 'to']]) {
    if (params.get(k)) f[name] = params.get(k)
  }
  const st = (params.get('status') || '').split(',').filter((x) => STATUSES.includes(x))
  if (st.length) f.status = st
  return f
}

// localTime is an instant (RFC 3339) as a datetime-local input's value,
// in the browser's time zone; '' for none.
export function localTime(iso) {
  const d = iso ? new Date(iso) : null
  if (!d || isNaN(d)) return ''
  const p = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`
}

