// api.js: Herald's public GraphQL API, with the workspace API key kept for
// this tab only (sessionStorage) and sent as a Bearer token.

const KEY = 'herald.apiKey'

export const apiKey = () => sessionStorage.getItem(KEY) || ''
export const setApiKey = (k) => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY))

// GraphQLError carries extensions.code (UNAUTHENTICATED, BAD_USER_INPUT, …).
export class GraphQLError extends Error {
  constructor(message, code) {
    super(message)
    this.code = code
  }
}

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
    const e = body.errors[0]
    throw new GraphQLError(e.message, e.extensions && e.extensions.code)
  }
  return body.data
}
