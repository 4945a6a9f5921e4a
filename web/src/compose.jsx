// compose.jsx: the push messages — their list, one message, and the
// composer, which has a field for every field of CreatePushMessageInput
// (and of its PushOptionsInput) and shows the API's refusals beside the
// field they name.
import { useEffect, useState } from 'preact/hooks'
import { gql } from './api.js'
import { go, navigate } from './nav.js'

const messagesQuery = `query($after: String) { pushMessages(first: 20, after: $after) {
  edges { node { id name title createdAt campaign { id name } } }
  pageInfo { hasNextPage endCursor } } }`

export function Messages() {
  const [rows, setRows] = useState(null)
  const [page, setPage] = useState({})
  const [error, setError] = useState('')
  async function load(after) {
    try {
      const d = await gql(messagesQuery, { after })
      setRows((r) => (after ? [...(r || []), ...d.pushMessages.edges] : d.pushMessages.edges))
      setPage(d.pushMessages.pageInfo)
    } catch (err) {
      setError(err.message)
    }
  }
  useEffect(() => { load(null) }, [])
  return (
    <section class="messages">
      <h2>Messages</h2>
      <p><a class="button" href="/messages/new" onClick={navigate}>New message</a></p>
      {error && <p class="error" role="alert">{error}</p>}
      {!rows && !error && <p class="loading">Loading messages…</p>}
      {rows && rows.length === 0 && <p class="empty">No messages yet: write one with New message.</p>}
      {rows && rows.length > 0 && (
        <table class="messages">
          <thead><tr><th>Message</th><th>Title</th><th>Campaign</th><th>Created</th><th></th></tr></thead>
          <tbody>{rows.map(({ node: m }) => (
            <tr key={m.id} data-message={m.id}>
              <td><a href={`/messages/${m.id}`} onClick={navigate}>{m.name}</a></td>
              <td>{m.title}</td>
              <td>{m.campaign ? <a href={`/campaigns/${m.campaign.id}`} onClick={navigate}>{m.campaign.name}</a> : '—'}</td>
              <td>{new Date(m.createdAt).toLocaleString()}</td>
              <td><a href={`/broadcast?message=${m.id}`} onClick={navigate}>Broadcast</a></td>
            </tr>
          ))}</tbody>
        </table>
      )}
      {page.hasNextPage && <button onClick={() => load(page.endCursor)}>More messages</button>}
    </section>
  )
}

// The composer's fields: [name, kind, label, choices]. A name is the
// GraphQL input path below `input` (options.* are PushOptionsInput's).
// Kinds: text, area (multi-line text), int, float, bool, enum, list (one
// string per line), json (parsed before sending).
const MESSAGE_FIELDS = [
  ['name', 'text', 'Name (yours, not shown to people)'],
  ['alias', 'text', 'Alias (transactional_message_id for /v1/send/push)'],
  ['title', 'text', 'Title'],
  ['body', 'area', 'Body'],
  ['link', 'text', 'Link (deep link or URL)'],
  ['image', 'text', 'Image URL'],
  ['sound', 'text', 'Sound'],
  ['badge', 'int', 'Badge'],
  ['data', 'json', 'Custom data (a JSON object)'],
]

const OPTION_GROUPS = [
  ['Delivery', [
    ['options.silent', 'bool', 'Silent: a background push with data only (no title, body, sound, badge or image)'],
    ['options.priority', 'enum', 'Priority', ['HIGH', 'NORMAL', 'LOW']],
    ['options.ttlSeconds', 'int', 'Time to live, seconds (0 to 2419200; 0 = now or never)'],
    ['options.collapseKey', 'text', 'Collapse key (replaces the delivery id)'],
  ]],
  ['iOS (APNS)', [
    ['options.pushType', 'enum', 'Push type', ['ALERT', 'BACKGROUND', 'VOIP', 'COMPLICATION', 'FILEPROVIDER', 'LOCATION', 'LIVEACTIVITY', 'PUSHTOTALK']],
    ['options.subtitle', 'text', 'Subtitle'],
    ['options.category', 'text', 'Category'],
    ['options.threadId', 'text', 'Thread id'],
    ['options.interruptionLevel', 'enum', 'Interruption level', ['PASSIVE', 'ACTIVE', 'TIME_SENSITIVE', 'CRITICAL']],
    ['options.relevanceScore', 'float', 'Relevance score (0 to 1)'],
    ['options.targetContentId', 'text', 'Target content id'],
    ['options.mutableContent', 'bool', 'Mutable content (set anyway with an image)'],
    ['options.contentAvailable', 'bool', 'Content available'],
    ['options.titleLocKey', 'text', 'Title localization key'],
    ['options.titleLocArgs', 'list', 'Title localization arguments (one per line)'],
    ['options.bodyLocKey', 'text', 'Body localization key'],
    ['options.bodyLocArgs', 'list', 'Body localization arguments (one per line)'],
    ['options.iosPayload', 'json', 'Raw APNS payload (JSON, merged over Herald\'s)'],
  ]],
  ['Android (FCM)', [
    ['options.channelId', 'text', 'Channel id'],
    ['options.notificationPriority', 'enum', 'Notification priority', ['MIN', 'LOW', 'DEFAULT', 'HIGH', 'MAX']],
    ['options.visibility', 'enum', 'Visibility', ['PRIVATE', 'PUBLIC', 'SECRET']],
    ['options.icon', 'text', 'Icon'],
    ['options.color', 'text', 'Color (#RRGGBB)'],
    ['options.tag', 'text', 'Tag'],
    ['options.clickAction', 'text', 'Click action'],
    ['options.directBoot', 'bool', 'Direct boot'],
    ['options.androidPayload', 'json', 'Raw FCM message fields (JSON: data, notification, android)'],
  ]],
  ['Web push', [
    ['options.webpushPayload', 'json', 'FCM webpush block (JSON)'],
  ]],
]

// Title and body are required by the API but may be empty (a silent push).
const ALWAYS = new Set(['title', 'body'])

// readForm builds CreatePushMessageInput from the form, or the errors of
// the fields it cannot read (bad JSON, numbers), by input path.
export function readForm(form) {
  const input = {}
  const errors = {}
  const set = (path, v) => {
    const keys = path.split('.')
    let o = input
    for (const k of keys.slice(0, -1)) o = o[k] || (o[k] = {})
    o[keys[keys.length - 1]] = v
  }
  const fields = [...MESSAGE_FIELDS, ...OPTION_GROUPS.flatMap(([, f]) => f)]
  for (const [name, kind] of fields) {
    const el = form.elements.namedItem(name)
    if (kind === 'bool') {
      if (el.checked) set(name, true)
      continue
    }
    const raw = el.value.trim()
    if (raw === '') {
      if (ALWAYS.has(name)) set(name, '')
      continue
    }
    if (kind === 'int' || kind === 'float') {
      const n = Number(raw)
      if (!Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) errors[`input.${name}`] = kind === 'int' ? 'a whole number' : 'a number'
      else set(name, n)
    } else if (kind === 'json') {
      try {
        set(name, JSON.parse(raw))
      } catch (e) {
        errors[`input.${name}`] = `not JSON: ${e.message}`
      }
    } else if (kind === 'list') {
      set(name, raw.split('\n').map((x) => x.trim()).filter(Boolean))
    } else {
      set(name, el.value) // a template's spaces are its own
    }
  }
  const camp = form.elements.namedItem('campaignId').value
  if (camp) input.campaignId = camp
  return { input, errors }
}

function Field({ name, kind, label, choices, error }) {
  const id = `f-${name}`
  const err = error ? `${id}-error` : undefined
  const common = { id, name, 'aria-invalid': error ? 'true' : undefined, 'aria-describedby': err }
  let control
  if (kind === 'bool') control = <input type="checkbox" {...common} />
  else if (kind === 'enum') control = <select {...common}><option value="">(default)</option>{choices.map((c) => <option value={c}>{c}</option>)}</select>
  else if (kind === 'area' || kind === 'json' || kind === 'list') control = <textarea rows={kind === 'area' ? 3 : 2} {...common} />
  else control = <input type="text" inputmode={kind === 'int' ? 'numeric' : kind === 'float' ? 'decimal' : undefined} {...common} />
  return (
    <div class={`field ${kind === 'bool' ? 'bool' : ''}`}>
      {kind === 'bool' ? <label for={id}>{control} {label}</label> : <><label for={id}>{label}</label>{control}</>}
      {error && <p class="field-error error" id={err} data-error-for={`input.${name}`}>{error}</p>}
    </div>
  )
}

export function Composer() {
  const [camps, setCamps] = useState([])
  const [errors, setErrors] = useState({})
  const [general, setGeneral] = useState('')
  const [busy, setBusy] = useState(false)
  const [preview, setPreview] = useState({ title: '', body: '', subtitle: '' })
  useEffect(() => {
    gql('{ campaigns(first: 100) { edges { node { id name } } } }')
      .then((d) => setCamps(d.campaigns.edges.map((e) => e.node)))
      .catch((err) => setGeneral(err.message))
  }, [])
  function onInput(e) {
    const f = e.currentTarget.elements
    setPreview({ title: f.namedItem('title').value, body: f.namedItem('body').value, subtitle: f.namedItem('options.subtitle').value })
  }
  async function submit(e) {
    e.preventDefault()
    const form = e.currentTarget
    const { input, errors: bad } = readForm(form)
    setGeneral('')
    setErrors(bad)
    if (Object.keys(bad).length) return focusError(form, Object.keys(bad)[0])
    setBusy(true)
    try {
      const d = await gql('mutation($in: CreatePushMessageInput!) { createPushMessage(input: $in) { id } }', { in: input })
      go(`/messages/${d.createPushMessage.id}`)
    } catch (err) {
      // A refusal naming a field (input.options.priority) goes beside it.
      const path = err.field && err.field.replace(/\.\d+$/, '')
      if (path && form.elements.namedItem(path.replace(/^input\./, ''))) {
        setErrors({ [path]: err.message.replace(`${err.field}: `, '') })
        focusError(form, path)
      } else setGeneral(err.message)
    } finally {
      setBusy(false)
    }
  }
  return (
    <section class="composer">
      <p><a href="/messages" onClick={navigate}>← Messages</a></p>
      <h2>New message</h2>
      <p class="hint">Text fields are Liquid templates over customer.* (the person's attributes) and event.* / trigger.* (the send's data); the preview shows them as written.</p>
      <div class="compose">
        <form onSubmit={submit} onInput={onInput} noValidate>
          <div class="field">
            <label for="f-campaignId">Campaign</label>
            <select id="f-campaignId" name="campaignId"><option value="">(none)</option>{camps.map((c) => <option value={c.id}>{c.name}</option>)}</select>
          </div>
          {MESSAGE_FIELDS.map(([name, kind, label]) => <Field name={name} kind={kind} label={label} error={errors[`input.${name}`]} />)}
          {OPTION_GROUPS.map(([group, fields], i) => (
            <details open={i === 0 || fields.some(([name]) => errors[`input.${name}`])}>
              <summary>{group} options</summary>
              {fields.map(([name, kind, label, choices]) => <Field name={name} kind={kind} label={label} choices={choices} error={errors[`input.${name}`]} />)}
            </details>
          ))}
          {general && <p class="error" role="alert">{general}</p>}
          <button type="submit" disabled={busy}>{busy ? 'Saving…' : 'Create message'}</button>
        </form>
        <aside class="preview" aria-label="Preview">
          <div class="phone">
            <strong>{preview.title || 'Title'}</strong>
            {preview.subtitle && <span>{preview.subtitle}</span>}
            <p>{preview.body || 'Body'}</p>
          </div>
        </aside>
      </div>
    </section>
  )
}

// focusError opens the field's group and moves the focus to it.
function focusError(form, path) {
  setTimeout(() => {
    const el = form.elements.namedItem(path.replace(/^input\./, ''))
    if (!el) return
    const d = el.closest('details')
    if (d) d.open = true
    el.focus()
  }, 0)
}

const messageQuery = `query($id: ID!) { pushMessage(id: $id) { id name alias title body link image sound badge data createdAt
  campaign { id name }
  options { silent priority ttlSeconds collapseKey pushType category threadId mutableContent contentAvailable interruptionLevel
    relevanceScore targetContentId subtitle titleLocKey titleLocArgs bodyLocKey bodyLocArgs channelId notificationPriority
    visibility icon color tag clickAction directBoot iosPayload androidPayload webpushPayload } } }`

// set keeps the options that differ from the default.
const set = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== '' && v !== false && !(Array.isArray(v) && !v.length)))

export function Message({ id }) {
  const [m, setM] = useState(null)
  const [error, setError] = useState('')
  useEffect(() => {
    setM(null)
    gql(messageQuery, { id })
      .then((d) => (d.pushMessage ? setM(d.pushMessage) : setError('No message with this id in your workspace.')))
      .catch((err) => setError(err.message))
  }, [id])
  if (error) return <p class="error" role="alert">{error}</p>
  if (!m) return <p class="loading">Loading the message…</p>
  return (
    <section class="message">
      <p><a href="/messages" onClick={navigate}>← Messages</a></p>
      <h2>{m.name}</h2>
      <p>
        <a class="button" href={`/broadcast?message=${m.id}`} onClick={navigate}>Broadcast this message</a>{' '}
        <a href={`/deliveries?message=${m.id}`} onClick={navigate}>Its deliveries</a>
      </p>
      <dl class="push">
        <dt>campaign</dt><dd>{m.campaign ? <a href={`/campaigns/${m.campaign.id}`} onClick={navigate}>{m.campaign.name}</a> : '—'}</dd>
        {['alias', 'title', 'body', 'link', 'image', 'sound'].map((k) => m[k] && <><dt>{k}</dt><dd data-message-field={k}>{m[k]}</dd></>)}
        {m.badge != null && <><dt>badge</dt><dd data-message-field="badge">{m.badge}</dd></>}
        <dt>data</dt><dd><pre data-message-field="data">{JSON.stringify(m.data, null, 2)}</pre></dd>
        <dt>options</dt><dd><pre data-message-field="options">{JSON.stringify(set(m.options), null, 2)}</pre></dd>
        <dt>created</dt><dd>{new Date(m.createdAt).toLocaleString()}</dd>
      </dl>
    </section>
  )
}
