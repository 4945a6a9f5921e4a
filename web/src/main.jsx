import { render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { apiKey, endLive, gql, live, setApiKey } from './api.js'
import { count, percent } from './format.js'
import { go, navigate, usePath } from './nav.js'
import { STATUSES, filterOf, localTime } from './filters.js'
import { chartData } from './chart.js'
import { Broadcast, BroadcastStatus } from './broadcast.jsx'
import { Composer, Message, Messages } from './compose.jsx'
import './style.css'

function SignIn({ onSignedIn }) {
  const [key, setKey] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  async function submit(e) {
    e.preventDefault()
    setBusy(true)
    setError('')
    try {
      // Any query checks the key: the campaigns list is what we show next.
      await gql('{ campaigns(first: 1) { edges { node { id } } } }', {}, key.trim())
      setApiKey(key.trim())
      onSignedIn()
    } catch (err) {
      setError(err.code === 'UNAUTHENTICATED' ? 'That API key is not valid for any workspace. Check it and try again.' : err.message)
    } finally {
      setBusy(false)
    }
  }
  return (
    <main class="signin">
      <h1>Herald</h1>
      <form onSubmit={submit}>
        <label for="key">Workspace API key</label>
        <input id="key" name="key" type="password" autocomplete="off" value={key} onInput={(e) => setKey(e.currentTarget.value)} required />
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
        {error && <p class="error" role="alert">{error}</p>}
        <p class="hint">The key stays in this tab only.</p>
      </form>
    </main>
  )
}

const campaignsQuery = `query($after: String) { campaigns(first: 20, after: $after) {
  edges { cursor node { id name createdAt overview { sends recipients delivered opened converted deliveryRate openRate } } }
  pageInfo { hasNextPage endCursor } } }`

function Campaigns() {
  const [rows, setRows] = useState(null)
  const [page, setPage] = useState({ hasNextPage: false, endCursor: null })
  const [error, setError] = useState('')
  async function load(after) {
    try {
      const d = await gql(campaignsQuery, { after })
      setRows((r) => (after ? [...(r || []), ...d.campaigns.edges] : d.campaigns.edges))
      setPage(d.campaigns.pageInfo)
    } catch (err) {
      setError(err.message)
    }
  }
  useEffect(() => {
    load(null)
  }, [])
  if (error) return <p class="error" role="alert">{error}</p>
  if (!rows) return <p class="loading">Loading campaigns…</p>
  if (!rows.length) return <p class="empty">No campaigns yet: create one with createCampaign.</p>
  return (
    <section>
      <h2>Campaigns</h2>
      <table class="campaigns">
        <thead>
          <tr><th>Campaign</th><th>Sends</th><th>Delivered</th><th>Delivery rate</th><th>Opened</th><th>Open rate</th><th>Converted</th></tr>
        </thead>
        <tbody>
          {rows.map(({ node: c }) => (
            <tr key={c.id} data-campaign={c.id}>
              <td class="name"><a href={`/campaigns/${c.id}`} onClick={navigate}>{c.name}</a></td>
              <td>{count(c.overview.sends)}</td>
              <td>{count(c.overview.delivered)}</td>
              <td>{percent(c.overview.deliveryRate)}</td>
              <td>{count(c.overview.opened)}</td>
              <td>{percent(c.overview.openRate)}</td>
              <td>{count(c.overview.converted)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.hasNextPage && <button onClick={() => load(page.endCursor)}>More campaigns</button>}
    </section>
  )
}

const overviewQuery = `query($id: ID!, $g: Granularity, $from: Time, $to: Time) { campaign(id: $id) { id name overview(granularity: $g, from: $from, to: $to) {
  from to created attempted sends sent bounced suppressed failed recipients delivered opened converted
  deliveryRate openRate conversionRate bounceRate sdkRecipients sdkCoverage
  failuresByReason { reason count }
  devices { targeted sent bounced failed suppressed pending delivered opened }
  series { start created sent delivered opened converted } } } }`

// Figure is one labelled number; data-figure names it for tests and people.
const Figure = ({ name, label, value, rate, rateLabel }) => (
  <div class="figure" data-figure={name}>
    <span class="label">{label}</span>
    <span class="value">{count(value)}</span>
    {rate !== undefined && <span class="rate" data-rate={name}>{percent(rate)} {rateLabel}</span>}
  </div>
)

// overviewURL is the overview's link with its granularity and range.
const overviewURL = (id, { granularity, from, to }) => {
  const q = new URLSearchParams()
  if (granularity === 'HOUR') q.set('granularity', 'HOUR')
  if (from) q.set('from', from)
  if (to) q.set('to', to)
  return `/campaigns/${id}${q.toString() ? '?' + q : ''}`
}

// RangeForm picks the overview's range: local date-times in the form, UTC
// instants in the URL; the quick links count back from now.
function RangeForm({ id, granularity, from, to }) {
  function apply(e) {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    const iso = (k) => (f.get(k) ? new Date(f.get(k)).toISOString() : '')
    go(overviewURL(id, { granularity, from: iso('from'), to: iso('to') }))
  }
  const ago = (h) => new Date(Date.now() - h * 3600e3).toISOString()
  return (
    <form class="filters range" key={`${from}|${to}`} onSubmit={apply}>
      <label>Deliveries created from <input type="datetime-local" name="from" defaultValue={localTime(from)} /></label>
      <label>to <input type="datetime-local" name="to" defaultValue={localTime(to)} /></label>
      <button type="submit">Apply</button>
      <span>
        <a href={overviewURL(id, { granularity, from: ago(24) })} onClick={navigate}>Last 24 hours</a>{' · '}
        <a href={overviewURL(id, { granularity, from: ago(24 * 7) })} onClick={navigate}>Last 7 days</a>{' · '}
        <a href={overviewURL(id, { granularity })} onClick={navigate} aria-current={!from && !to}>All time</a>
      </span>
    </form>
  )
}

function Overview({ id, granularity, from, to }) {
  const [c, setC] = useState(null)
  const [error, setError] = useState('')
  const [isLive, setLive] = useState(false)
  useEffect(() => {
    setC(null)
    const load = () => gql(overviewQuery, { id, g: granularity, from: from || null, to: to || null })
      .then((d) => { if (!d.campaign) setError('No campaign with this id in your workspace.'); else setC(d.campaign); return d.campaign && d.campaign.overview })
      .catch((err) => setError(err.message))
    const loaded = load()
    // Live while open: a campaignOverviewUpdated whose headline figures
    // differ from the page's (its first, which repeats the load above, does
    // not) reloads the page's figures (its series at the chosen
    // granularity), one load at a time.
    let end = null
    let gone = false
    let busy = false
    let again = false
    let shown = ''
    const reload = () => {
      if (busy) { again = true; return }
      busy = true
      load().finally(() => { busy = false; if (again && !gone) { again = false; reload() } })
    }
    const figures = (o) => [o.created, o.sends, o.delivered, o.opened, o.converted, o.failed].join()
    // Subscribed once the page has its figures: the subscription's first
    // answer is an overview too, and computing both at once on a large
    // campaign would make the page wait for two.
    loaded.then((o) => {
      if (o) shown = figures(o)
      if (gone) return
      live(`subscription($id: ID!) { campaignOverviewUpdated(campaignId: $id) { created sends delivered opened converted failed } }`, { id },
        (r) => {
          setLive(true)
          const f = figures(r.campaignOverviewUpdated)
          if (f !== shown) { shown = f; reload() }
        }, () => setLive(false))
        .then((f) => (gone ? f() : (end = f)))
    })
    return () => { gone = true; if (end) end() }
  }, [id, granularity, from, to])
  // The time to an interactive overview (bench/dashboard reads these
  // marks): the figures on the page, then the chart drawn.
  useEffect(() => { if (c) performance.mark('herald:overview-shown') }, [c])
  if (error) return <><p class="error" role="alert">{error}</p><p><a href={overviewURL(id, { granularity })} onClick={navigate}>The campaign's overview, all time</a></p></>
  if (!c) return <p class="loading">Loading the overview…</p>
  const o = c.overview
  return (
    <section class="overview">
      <p><a href="/" onClick={navigate}>← Campaigns</a></p>
      <h2>{c.name} {isLive && <span class="live" title="Updates as they happen">● live</span>}</h2>
      <RangeForm id={id} granularity={granularity} from={from} to={to} />
      <p class="hint" data-range>Deliveries created from {new Date(o.from).toLocaleString()} to {new Date(o.to).toLocaleString()}.</p>
      <div class="funnel">
        <Figure name="created" label="Created" value={o.created} />
        <Figure name="sends" label="Sends" value={o.sends} rate={o.bounceRate} rateLabel="bounced" />
        <Figure name="recipients" label="Recipients" value={o.recipients} />
        <Figure name="delivered" label="Delivered" value={o.delivered} rate={o.deliveryRate} rateLabel="of recipients" />
        <Figure name="opened" label="Opened" value={o.opened} rate={o.openRate} rateLabel="of delivered" />
        <Figure name="converted" label="Converted" value={o.converted} rate={o.conversionRate} rateLabel="of recipients" />
      </div>
      <p class="states">In flight {count(o.attempted)} · sent {count(o.sent)} · bounced {count(o.bounced)} · suppressed {count(o.suppressed)} · failed {count(o.failed)}</p>
      <h3>SDK coverage</h3>
      <p data-figure="sdkCoverage">{percent(o.sdkCoverage)} of recipients ({count(o.sdkRecipients)}) have a device whose app reports deliveries.</p>
      {o.recipients > 0 && o.sdkCoverage < 0.5 && (
        <p class="hint">Low coverage: a push sent to a device whose app does not report (no Customer.io SDK, an old SDK, or iOS without the notification service extension) stays SENT and never counts as delivered, so the delivery rate understates what arrived.</p>
      )}
      <h3>Devices</h3>
      <table class="devices">
        <thead><tr><th>Targeted</th><th>Sent</th><th>Bounced</th><th>Failed</th><th>Suppressed</th><th>Pending</th><th>Delivered</th><th>Opened</th></tr></thead>
        <tbody><tr>{['targeted', 'sent', 'bounced', 'failed', 'suppressed', 'pending', 'delivered', 'opened'].map((k) => <td data-device={k}>{count(o.devices[k])}</td>)}</tr></tbody>
      </table>
      <h3>Failures by reason</h3>
      {o.failuresByReason.length === 0 ? <p class="empty">No failures.</p> : (
        <table class="failures"><tbody>{o.failuresByReason.map((f) => <tr><td>{f.reason}</td><td data-failure={f.reason}>{count(f.count)}</td></tr>)}</tbody></table>
      )}
      <h3>Over time</h3>
      <p>
        <a href={overviewURL(id, { granularity: 'HOUR', from, to })} onClick={navigate} aria-current={granularity === 'HOUR'}>By hour</a>{' · '}
        <a href={overviewURL(id, { granularity: 'DAY', from, to })} onClick={navigate} aria-current={granularity !== 'HOUR'}>By day</a>
      </p>
      {o.series.length > 0 && <SeriesChart series={o.series} step={granularity === 'HOUR' ? 3600 : 86400} />}
      {o.series.length === 0 ? <p class="empty">Nothing sent yet.</p> : (
        <table class="series">
          <thead><tr><th>From</th><th>Created</th><th>Sent</th><th>Delivered</th><th>Opened</th><th>Converted</th></tr></thead>
          <tbody>{o.series.map((b) => (
            <tr data-bucket={b.start}><td>{new Date(b.start).toLocaleString()}</td><td>{count(b.created)}</td><td>{count(b.sent)}</td><td>{count(b.delivered)}</td><td>{count(b.opened)}</td><td>{count(b.converted)}</td></tr>
          ))}</tbody>
        </table>
      )}
    </section>
  )
}

// SeriesChart draws the time series (sent, delivered, opened, converted
// per bucket) with uPlot, loaded when first needed; the table below it has
// the same figures for screen readers and keyboards. The uPlot instance
// hangs on the element (el.uplot) for tests and for the curious.
function SeriesChart({ series, step }) {
  const el = useRef(null)
  useEffect(() => {
    let u = null
    let ro = null
    let gone = false
    Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([{ default: UPlot }]) => {
      if (gone || !el.current) return
      const data = chartData(series, step)
      const colors = ['#0969da', '#1a7f37', '#8250df', '#bf3989']
      u = new UPlot({
        width: Math.max(280, el.current.clientWidth || 600), height: 220,
        series: [{}, ...['Sent', 'Delivered', 'Opened', 'Converted'].map((label, i) => ({ label, stroke: colors[i], width: 2, points: { show: data[0].length < 60 } }))],
        // Half a bucket either side, so that one bucket is not a year wide.
        scales: { x: { time: true, auto: false, range: [data[0][0] - step / 2, data[0][data[0].length - 1] + step / 2] } },
        legend: { live: false },
        axes: [{}, { size: 60 }],
      }, data, el.current)
      el.current.uplot = u
      performance.mark('herald:chart-drawn')
      // The chart follows the page's width (a turned phone, a resized window).
      ro = new ResizeObserver(() => {
        const w = el.current ? Math.max(280, el.current.clientWidth) : u.width
        if (w !== u.width) u.setSize({ width: w, height: 220 })
      })
      ro.observe(el.current)
    })
    return () => { gone = true; if (ro) ro.disconnect(); if (u) u.destroy() }
  }, [series, step])
  return <div class="chart" ref={el} role="img" aria-label={`Sent, delivered, opened and converted over ${series.length} buckets; the table below lists them.`} />
}

const logsQuery = `query($f: DeliveryFilter, $after: String) { deliveries(filter: $f, first: 50, after: $after) {
  edges { node { id status failureReason personId devicesTargeted devicesAttempted createdAt converted
    message { id name } campaign { id name } } }
  pageInfo { hasNextPage endCursor } } }`

function Logs({ params }) {
  const filter = filterOf(params)
  const key = JSON.stringify(filter)
  const [rows, setRows] = useState(null)
  const [page, setPage] = useState({})
  const [error, setError] = useState('')
  const [retried, setRetried] = useState({})
  async function load(after) {
    try {
      const d = await gql(logsQuery, { f: filter, after })
      setRows((r) => (after ? [...(r || []), ...d.deliveries.edges] : d.deliveries.edges))
      setPage(d.deliveries.pageInfo)
    } catch (err) {
      setError(err.message)
    }
  }
  useEffect(() => {
    setRows(null)
    setError('')
    load(null)
  }, [key])
  function apply(e) {
    e.preventDefault()
    const form = new FormData(e.currentTarget)
    const q = new URLSearchParams()
    for (const k of ['campaign', 'message', 'person']) if (form.get(k)) q.set(k, form.get(k))
    // The time range: local date-times in the form, UTC instants in the URL.
    for (const k of ['from', 'to']) if (form.get(k)) q.set(k, new Date(form.get(k)).toISOString())
    const st = form.getAll('status')
    if (st.length) q.set('status', st.join(','))
    go(`/deliveries${q.toString() ? '?' + q : ''}`)
  }
  async function retry(id) {
    try {
      const d = await gql('mutation($id: ID!) { retryDelivery(id: $id) { id status round } }', { id })
      setRetried((r) => ({ ...r, [id]: d.retryDelivery }))
    } catch (err) {
      setRetried((r) => ({ ...r, [id]: { error: err.message } }))
    }
  }
  return (
    <section class="logs">
      <h2>Delivery logs</h2>
      <form class="filters" key={key} onSubmit={apply}>
        <label>Campaign <input name="campaign" defaultValue={params.get('campaign') || ''} /></label>
        <label>Message <input name="message" defaultValue={params.get('message') || ''} /></label>
        <label>Person <input name="person" defaultValue={params.get('person') || ''} /></label>
        <label>Created from <input type="datetime-local" name="from" defaultValue={localTime(params.get('from'))} /></label>
        <label>to <input type="datetime-local" name="to" defaultValue={localTime(params.get('to'))} /></label>
        <fieldset>
          <legend>Status</legend>
          {STATUSES.map((st) => (
            <label class="check"><input type="checkbox" name="status" value={st} defaultChecked={(filter.status || []).includes(st)} /> {st.toLowerCase()}</label>
          ))}
        </fieldset>
        <button type="submit">Filter</button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {!rows && !error && <p class="loading">Loading deliveries…</p>}
      {rows && rows.length === 0 && <p class="empty">No deliveries match.</p>}
      {rows && rows.length > 0 && (
        <table class="deliveries">
          <thead><tr><th>Message</th><th>Person</th><th>Devices</th><th>Attempted at</th><th>Status</th><th>Converted</th><th></th></tr></thead>
          <tbody>
            {rows.map(({ node: d }) => {
              const r = retried[d.id]
              return (
                <tr key={d.id} data-delivery={d.id}>
                  <td>{d.message ? <a href={`/deliveries?message=${d.message.id}`} onClick={navigate}>{d.message.name}</a> : '—'}</td>
                  <td><a href={`/deliveries/${d.id}`} onClick={navigate} class="person">{d.personId}</a></td>
                  <td>{d.devicesAttempted} of {d.devicesTargeted}</td>
                  <td>{new Date(d.createdAt).toLocaleString()}</td>
                  <td><span class={`badge ${(r && !r.error ? r.status : d.status).toLowerCase()}`} data-status>{r && !r.error ? r.status : d.status}</span>
                    {d.failureReason && !r && <small class="reason"> {d.failureReason}</small>}</td>
                  <td>{d.converted ? 'yes' : 'no'}</td>
                  <td>
                    {d.status === 'FAILED' && !r && <button class="retry" onClick={() => retry(d.id)}>Retry</button>}
                    {r && !r.error && <span class="round" data-round={r.round}>round {r.round + 1} started</span>}
                    {r && r.error && <span class="error">{r.error}</span>}
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
      {page.hasNextPage && <button onClick={() => load(page.endCursor)}>Older deliveries</button>}
    </section>
  )
}

const deliveryQuery = `query($id: ID!) { delivery(id: $id) { id status failureReason personId createdAt sendAt sentAt deliveredAt openedAt convertedAt round
  message { id name } campaign { id name }
  devices { token platform status attempts lastError deliveredAt openedAt }
  history { round status failureReason devicesTargeted devicesAttempted }
  push { title body link image sound badge data options { silent priority ttlSeconds collapseKey pushType subtitle channelId } } } }`

const liveDeliveryQuery = deliveryQuery.replace('query($id: ID!) { delivery(id: $id)', 'subscription($id: ID!) { deliveryUpdated(id: $id)')

// mask shows a device token's first and last characters only.
const mask = (t) => (t.length <= 12 ? '•'.repeat(t.length) : `${t.slice(0, 6)}…${t.slice(-4)}`)
const when = (t) => (t ? new Date(t).toLocaleString() : '—')

function Detail({ id }) {
  const [d, setD] = useState(null)
  const [error, setError] = useState('')
  const [isLive, setLive] = useState(false)
  useEffect(() => {
    setD(null)
    gql(deliveryQuery, { id })
      .then((r) => (r.delivery ? setD(r.delivery) : setError('No delivery with this id in your workspace.')))
      .catch((err) => setError(err.message))
    // Live while open: deliveryUpdated sends the delivery again on every change.
    let end = null
    let gone = false
    live(liveDeliveryQuery, { id }, (r) => { setD(r.deliveryUpdated); setLive(true) }, () => setLive(false))
      .then((f) => (gone ? f() : (end = f)))
    return () => { gone = true; if (end) end() }
  }, [id])
  if (error) return <p class="error" role="alert">{error}</p>
  if (!d) return <p class="loading">Loading the delivery…</p>
  return (
    <section class="detail">
      <p><a href="/deliveries" onClick={navigate}>← Delivery logs</a></p>
      <h2>{d.message ? d.message.name : 'Delivery'} to {d.personId}</h2>
      <p><span class={`badge ${d.status.toLowerCase()}`} data-status>{d.status}</span> {d.failureReason && <span class="reason">{d.failureReason}</span>}
        {isLive && <span class="live" title="Updates as they happen">● live</span>}</p>
      <p class="states">Created {when(d.createdAt)}{d.sendAt && ` · scheduled for ${when(d.sendAt)}`} · sent {when(d.sentAt)} · delivered {when(d.deliveredAt)} · opened {when(d.openedAt)} · converted {when(d.convertedAt)}</p>
      <h3>Devices (round {d.round + 1})</h3>
      <table class="devices">
        <thead><tr><th>Token</th><th>Platform</th><th>Status</th><th>Attempts</th><th>Last error</th><th>Delivered</th><th>Opened</th></tr></thead>
        <tbody>{d.devices.map((v) => (
          <tr data-token={mask(v.token)}><td class="token">{mask(v.token)}</td><td>{v.platform}</td><td><span class={`badge ${v.status.toLowerCase()}`}>{v.status}</span></td>
            <td>{v.attempts}</td><td>{v.lastError || '—'}</td><td>{when(v.deliveredAt)}</td><td>{when(v.openedAt)}</td></tr>
        ))}</tbody>
      </table>
      <h3>Rounds</h3>
      <ol class="rounds">{d.history.map((r) => (
        <li data-round={r.round}>round {r.round + 1}: <span class={`badge ${r.status.toLowerCase()}`}>{r.status}</span> {r.failureReason || ''} · {r.devicesAttempted} of {r.devicesTargeted} devices</li>
      ))}</ol>
      <h3>Rendered push</h3>
      {d.push ? (
        <dl class="push">
          {['title', 'body', 'link', 'image', 'sound'].map((k) => d.push[k] && <><dt>{k}</dt><dd data-push={k}>{d.push[k]}</dd></>)}
          {d.push.badge != null && <><dt>badge</dt><dd data-push="badge">{d.push.badge}</dd></>}
          <dt>data</dt><dd><pre data-push="data">{JSON.stringify(d.push.data, null, 2)}</pre></dd>
          <dt>options</dt><dd><pre data-push="options">{JSON.stringify(Object.fromEntries(Object.entries(d.push.options).filter(([, v]) => v !== null && v !== '' && v !== false)), null, 2)}</pre></dd>
        </dl>
      ) : <p class="empty">Not available: the round has not been planned, failed before sending, or its plan expired (7 days).</p>}
    </section>
  )
}

function Page() {
  const loc = usePath()
  const url = new URL(loc, location.origin)
  const m = url.pathname.match(/^\/campaigns\/([^/]+)$/)
  if (m) {
    const q = url.searchParams
    return <Overview id={decodeURIComponent(m[1])} granularity={q.get('granularity') === 'HOUR' ? 'HOUR' : 'DAY'} from={q.get('from') || ''} to={q.get('to') || ''} />
  }
  const dm = url.pathname.match(/^\/deliveries\/([^/]+)$/)
  if (dm) return <Detail id={decodeURIComponent(dm[1])} />
  const path = url.pathname.replace(/\/$/, '')
  if (path === '/deliveries') return <Logs params={url.searchParams} />
  if (path === '/messages') return <Messages />
  if (path === '/messages/new') return <Composer />
  const mm = path.match(/^\/messages\/([^/]+)$/)
  if (mm) return <Message id={decodeURIComponent(mm[1])} />
  if (path === '/broadcast') return <Broadcast messageId={url.searchParams.get('message') || ''} />
  const bm = path.match(/^\/broadcasts\/([^/]+)$/)
  if (bm) return <BroadcastStatus id={decodeURIComponent(bm[1])} />
  return <Campaigns />
}

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(apiKey()))
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />
  return (
    <div class="app">
      <header>
        <nav><strong>Herald</strong> <a href="/" onClick={navigate}>Campaigns</a> <a href="/deliveries" onClick={navigate}>Delivery logs</a> <a href="/messages" onClick={navigate}>Messages</a> <a href="/broadcast" onClick={navigate}>Broadcast</a></nav>
        <button class="signout" onClick={() => { setApiKey(''); endLive(); setSignedIn(false) }}>Sign out</button>
      </header>
      <main>
        <Page />
      </main>
    </div>
  )
}

render(<App />, document.getElementById('app'))
