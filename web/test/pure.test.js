// Unit tests of the dashboard's pure logic (node --test; npm test).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { count, percent } from '../src/format.js'
import { filterOf, localTime } from '../src/filters.js'
import { chartData } from '../src/chart.js'

test('count: numbers for people', () => {
  const cases = [[null, '—'], [0, '0'], [999, '999'], [1000, '1k'], [1234, '1.2k'], [12345, '12.3k'], [123456, '123k'],
    [999999, '1M'], [999_499, '999k'], [99_960, '100k'], [1e6, '1M'], [3_450_000, '3.5M'], [2e9, '2B'], [-1500, '-1.5k']]
  for (const [n, want] of cases) assert.equal(count(n), want, `count(${n})`)
})

test('percent: one decimal and a space', () => {
  assert.equal(percent(null), '—')
  assert.equal(percent(0), '0.0 %')
  assert.equal(percent(0.345), '34.5 %')
  assert.equal(percent(1), '100.0 %')
})

test('filterOf: the URL query as a DeliveryFilter, unknown statuses dropped', () => {
  const f = filterOf(new URLSearchParams('campaign=c1&message=m1&person=p1&status=FAILED,BOGUS,SENT&from=2026-12-01T00:00:00.000Z&x=1'))
  assert.deepEqual(f, { campaignId: 'c1', messageId: 'm1', personId: 'p1', from: '2026-12-01T00:00:00.000Z', status: ['FAILED', 'SENT'] })
  assert.deepEqual(filterOf(new URLSearchParams('status=nope')), {})
})

test('localTime: an instant as a datetime-local value in the local zone', () => {
  assert.equal(localTime(''), '')
  assert.equal(localTime('not a time'), '')
  const d = new Date(2026, 11, 1, 9, 5) // local time
  assert.equal(localTime(d.toISOString()), '2026-12-01T09:05')
})

test('chartData: empty buckets between the API\'s become zeros', () => {
  const h = 3600
  const series = [
    { start: '2026-12-01T10:00:00Z', sent: 2, delivered: 1, opened: 0, converted: 0 },
    { start: '2026-12-01T13:00:00Z', sent: 5, delivered: 4, opened: 2, converted: 1 },
  ]
  const t0 = Date.parse('2026-12-01T10:00:00Z') / 1000
  assert.deepEqual(chartData(series, h), [[t0, t0 + h, t0 + 2 * h, t0 + 3 * h], [2, 0, 0, 5], [1, 0, 0, 4], [0, 0, 0, 2], [0, 0, 0, 1]])
  assert.deepEqual(chartData([], h), [[], [], [], [], []])
  // Over 5,000 buckets: as given.
  const far = [series[0], { ...series[1], start: '2027-12-01T13:00:00Z' }]
  assert.equal(chartData(far, h)[0].length, 2)
})
