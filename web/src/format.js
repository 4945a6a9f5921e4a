// format.js: numbers for people.

export function count(n) {
  if (n == null) return '—'
  const abs = Math.abs(n)
  if (abs >= 1e9) return `${trim(n / 1e9)}B`
  if (abs >= 1e6) return `${trim(n / 1e6)}M`
  if (abs >= 1e3) return `${trim(n / 1e3)}k`
  return String(n)
}

export function percent(r) {
  if (r == null) return '—'
  return `${(r * 100).toFixed(1)} %`
}

const trim = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1).replace(/\.0$/, ''))
