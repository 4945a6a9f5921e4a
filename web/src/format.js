// format.js: numbers for people.

const UNITS = [[1e3, 'k'], [1e6, 'M'], [1e9, 'B']]

// count is a count for people: 999, 1.2k, 12.3k, 123k, 1M, 3.5M, 2B.
export function count(n) {
  if (n == null) return '—'
  let unit = -1
  for (let i = 0; i < UNITS.length; i++) if (Math.abs(n) >= UNITS[i][0]) unit = i
  if (unit < 0) return String(n)
  // 999,999 is 1M, not 1000k.
  if (unit + 1 < UNITS.length && Math.abs(Number(trim(n / UNITS[unit][0]))) >= 1000) unit++
  return `${trim(n / UNITS[unit][0])}${UNITS[unit][1]}`
}

export function percent(r) {
  if (r == null) return '—'
  return `${(r * 100).toFixed(1)} %`
}

const trim = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1).replace(/\.0$/, ''))
