import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { apiKey, gql, setApiKey } from './api.js'
import { count, percent } from './format.js'
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
              <td class="name">{c.name}</td>
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

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(apiKey()))
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />
  return (
    <div class="app">
      <header>
        <strong>Herald</strong>
        <button class="signout" onClick={() => { setApiKey(''); setSignedIn(false) }}>Sign out</button>
      </header>
      <main>
        <Campaigns />
      </main>
    </div>
  )
}

render(<App />, document.getElementById('app'))
