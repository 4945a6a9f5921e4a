// broadcast.jsx: send a message to many people (the broadcast mutation)
// and watch it fan out (broadcastUpdated: queued, done and total, live).
import { useEffect, useState } from 'preact/hooks'
import { gql, live } from './api.js'
import { count, percent } from './format.js'
import { go, navigate } from './nav.js'

const pickQuery = `{ pushMessages(first: 100) { edges { node { id name title campaign { name } } } } }`

export function Broadcast({ messageId }) {
  const [messages, setMessages] = useState(null)
  const [to, setTo] = useState('everyone')
  const [error, setError] = useState({})
  const [busy, setBusy] = useState(false)
  useEffect(() => {
    gql(pickQuery)
      .then(async (d) => {
        const ms = d.pushMessages.edges.map((e) => e.node)
        // A message older than the newest 100, linked to: add it.
        if (messageId && !ms.some((m) => m.id === messageId)) {
          const one = await gql('query($id: ID!) { pushMessage(id: $id) { id name title campaign { name } } }', { id: messageId }).catch(() => null)
          if (one && one.pushMessage) ms.unshift(one.pushMessage)
        }
        setMessages(ms)
      })
      .catch((err) => setError({ general: err.message }))
  }, [messageId])
  async function submit(e) {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    const input = { messageId: f.get('messageId'), audience: f.get('audience') }
    const bad = {}
    if (!input.messageId) bad['input.messageId'] = 'Pick a message.'
    if (to === 'list') {
      const ids = String(f.get('personIds')).split(/[\s,]+/).filter(Boolean)
      if (!ids.length) bad['input.personIds'] = 'List at least one person id, or send to everyone.'
      input.personIds = ids
    }
    const data = String(f.get('data') || '').trim()
    if (data) {
      try {
        input.data = JSON.parse(data)
      } catch (err) {
        bad['input.data'] = `not JSON: ${err.message}`
      }
    }
    if (f.get('sendAt')) input.sendAt = new Date(f.get('sendAt')).toISOString()
    setError(bad)
    if (Object.keys(bad).length) return
    setBusy(true)
    try {
      const d = await gql('mutation($in: BroadcastInput!) { broadcast(input: $in) { id } }', { in: input })
      go(`/broadcasts/${d.broadcast.id}`)
    } catch (err) {
      const path = err.field && err.field.replace(/\.\d+$/, '')
      setError(path && ['input.messageId', 'input.personIds', 'input.data', 'input.sendAt', 'input.audience'].includes(path) ? { [path]: err.message } : { general: err.message })
    } finally {
      setBusy(false)
    }
  }
  const fieldError = (path) => error[path] && <p class="field-error error" data-error-for={path}>{error[path]}</p>
  if (!messages && !error.general) return <p class="loading">Loading messages…</p>
  return (
    <section class="broadcast">
      <h2>Broadcast</h2>
      {messages && messages.length === 0 ? (
        <p class="empty">No messages to send yet: <a href="/messages/new" onClick={navigate}>write one</a> first.</p>
      ) : messages && (
        <form onSubmit={submit} noValidate>
          <div class="field">
            <label for="b-message">Message</label>
            <select id="b-message" name="messageId">
              <option value="">(pick one)</option>
              {messages.map((m) => <option value={m.id} selected={m.id === messageId}>{m.name}{m.campaign ? ` (${m.campaign.name})` : ''}: {m.title}</option>)}
            </select>
            {fieldError('input.messageId')}
          </div>
          <fieldset class="field">
            <legend>People</legend>
            <label class="check"><input type="radio" name="to" value="everyone" checked={to === 'everyone'} onChange={() => setTo('everyone')} /> Everyone in the workspace</label>
            <label class="check"><input type="radio" name="to" value="list" checked={to === 'list'} onChange={() => setTo('list')} /> These people</label>
            {to === 'list' && <textarea name="personIds" aria-label="Person ids, separated by spaces, commas or lines" rows={3} />}
            {fieldError('input.personIds')}
          </fieldset>
          <div class="field">
            <label for="b-audience">Devices</label>
            <select id="b-audience" name="audience">
              <option value="ALL_DEVICES">Every device of each person</option>
              <option value="LAST_USED">The device each person used last</option>
            </select>
            {fieldError('input.audience')}
          </div>
          <div class="field">
            <label for="b-data">Data for the templates (event.*, a JSON object; optional)</label>
            <textarea id="b-data" name="data" rows={2} />
            {fieldError('input.data')}
          </div>
          <div class="field">
            <label for="b-sendAt">Send at (optional; now when empty)</label>
            <input id="b-sendAt" type="datetime-local" name="sendAt" />
            {fieldError('input.sendAt')}
          </div>
          <button type="submit" disabled={busy}>{busy ? 'Sending…' : 'Send'}</button>
        </form>
      )}
      {error.general && <p class="error" role="alert">{error.general}</p>}
    </section>
  )
}

const broadcastFields = 'id total queued done createdAt sendAt canceled message { id name }'

export function BroadcastStatus({ id }) {
  const [b, setB] = useState(null)
  const [error, setError] = useState('')
  const [isLive, setLive] = useState(false)
  const [ended, setEnded] = useState(false)
  useEffect(() => {
    setB(null)
    setEnded(false)
    gql(`query($id: ID!) { broadcast(id: $id) { ${broadcastFields} } }`, { id })
      .then((d) => (d.broadcast ? setB((cur) => cur || d.broadcast) : setError('No broadcast with this id in your workspace.')))
      .catch((err) => setError(err.message))
    // Live: broadcastUpdated sends the progress as it changes and completes
    // when every delivery is done (or the broadcast is canceled).
    let end = null
    let gone = false
    live(`subscription($id: ID!) { broadcastUpdated(id: $id) { ${broadcastFields} } }`, { id },
      (r) => { setB(r.broadcastUpdated); setLive(true) },
      () => setLive(false),
      () => { setLive(false); setEnded(true) })
      .then((f) => (gone ? f() : (end = f)))
    return () => { gone = true; if (end) end() }
  }, [id])
  async function cancel() {
    try {
      const d = await gql(`mutation($id: ID!) { cancelBroadcast(id: $id) { ${broadcastFields} } }`, { id })
      setB(d.cancelBroadcast)
    } catch (err) {
      setError(err.message)
    }
  }
  if (error) return <p class="error" role="alert">{error}</p>
  if (!b) return <p class="loading">Loading the broadcast…</p>
  const scheduled = b.sendAt && new Date(b.sendAt) > new Date() && b.queued === 0
  const finished = b.canceled || (b.total > 0 ? b.done >= b.total : ended)
  const state = b.canceled ? 'Canceled' : scheduled ? `Scheduled for ${new Date(b.sendAt).toLocaleString()}` : finished ? 'Finished' : 'Sending'
  return (
    <section class="broadcast-status">
      <p><a href="/broadcast" onClick={navigate}>← Broadcast</a></p>
      <h2>Broadcast of {b.message ? <a href={`/messages/${b.message.id}`} onClick={navigate}>{b.message.name}</a> : 'a message'}
        {isLive && <span class="live" title="Updates as they happen">● live</span>}</h2>
      <p class="state" data-state={b.canceled ? 'canceled' : scheduled ? 'scheduled' : finished ? 'finished' : 'sending'}>{state}</p>
      <progress max={b.total || 1} value={b.done} aria-label={`${b.done} of ${b.total} deliveries done`} />
      <div class="funnel">
        <div class="figure" data-figure="total"><span class="label">People</span><span class="value">{count(b.total)}</span></div>
        <div class="figure" data-figure="queued"><span class="label">Queued</span><span class="value">{count(b.queued)}</span></div>
        <div class="figure" data-figure="done"><span class="label">Done</span><span class="value">{count(b.done)}</span>
          <span class="rate">{percent(b.total ? b.done / b.total : 0)} of people</span></div>
      </div>
      <p class="hint">Done: the person's devices were sent to, or the delivery failed before sending (no devices, unsubscribed, …). What happened next is in the deliveries.</p>
      {b.message && <p><a href={`/deliveries?message=${b.message.id}`} onClick={navigate}>The deliveries of this message</a></p>}
      {scheduled && !b.canceled && <button onClick={cancel}>Cancel the broadcast</button>}
    </section>
  )
}
