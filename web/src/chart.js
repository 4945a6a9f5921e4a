// chart.js: the overview's series as the chart draws it.

// chartData is the series as uPlot's columns (x in Unix seconds, then
// sent, delivered, opened, converted), with the buckets the API leaves out
// (nothing in them) as zeros, so a line does not bridge an empty hour; a
// range of over 5,000 buckets stays as the API gave it.
export function chartData(series, step) {
  const keys = ['sent', 'delivered', 'opened', 'converted']
  const xs = series.map((b) => Date.parse(b.start) / 1000)
  const span = xs.length ? (xs[xs.length - 1] - xs[0]) / step + 1 : 0
  if (span > 5000) return [xs, ...keys.map((k) => series.map((b) => b[k]))]
  const at = new Map(series.map((b, i) => [xs[i], b]))
  const dense = Array.from({ length: span }, (_, i) => xs[0] + i * step)
  return [dense, ...keys.map((k) => dense.map((x) => (at.has(x) ? at.get(x)[k] : 0)))]
}
