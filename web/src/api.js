// api.js: Herald's public GraphQL API, with the workspace API key kept for
// this tab only (sessionStorage) and sent as a Bearer token.

const KEY = 'herald.apiKey'

export const apiKey = () => sessionStorage.getItem(KEY) || ''
export const setApiKey = (k) => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY))

// GraphQLError carries extensions.code (UNAUTHENTICATED, BAD_USER_INPUT, …)
// and, for a bad input, extensions.field (e.g. input.options.priority).
export class GraphQLError extends Error {
  constructor(message, code, field) {
    super(message)
    this.code = code
    this.field = field
  }
}

const errorOf = (e) => new GraphQLError(e.message, e.extensions && e.extensions.code, e.extensions && e.extensions.field)

// gql posts a query and returns its data, or throws a GraphQLError.
export async function gql(query, variables = {}, key = apiKey()) {
  let resp
  try {
    resp = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    })
  } catch (e) {
    throw new GraphQLError(`Herald does not answer (${e.message}).`, 'NETWORK')
  }
  let body
  try {
    body = await resp.json()
  } catch {
    throw new GraphQLError(`Herald answered ${resp.status} ${resp.statusText}.`, 'HTTP')
  }
  if (body.errors && body.errors.length) {
    throw errorOf(body.errors[0])
  }
  return body.data
}

// live subscribes to a GraphQL subscription over graphql-ws (the
// graphql-transport-ws protocol on /graphql, the key in connection_init)
// and calls onData with each result's data, onError with a GraphQLError,
// onComplete when the server ends it.
// It returns the function that ends the subscription. The client is
// created on first use and shared by the tab's subscriptions; it
// reconnects by itself when Herald restarts.
let client = null
export async function live(query, variables, onData, onError = () => {}, onComplete = () => {}) {
  if (!client) {
    const { createClient } = await import('graphql-ws')
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
    client = createClient({
      url: `${proto}//${location.host}/graphql`,
      connectionParams: () => ({ Authorization: `Bearer ${apiKey()}` }),
      lazy: true,
      retryAttempts: 5,
    })
  }
  return client.subscribe({ query, variables }, {
    next: (r) => {
      if (r.errors && r.errors.length) onError(errorOf(r.errors[0]))
      else if (r.data) onData(r.data)
    },
    error: (e) => onError(new GraphQLError(e && e.message ? e.message : 'The live connection closed.', 'NETWORK')),
    complete: () => onComplete(),
  })
}

// endLive closes the shared connection (at sign-out: the next key gets a
// new one).
export function endLive() {
  if (client) client.dispose()
  client = null
}
