// Subscribes to deliveryUpdated with the graphql-ws npm client (protocol
// graphql-transport-ws) and prints each status it receives as a JSON line,
// until it sees the status named by the last argument.
// Usage: node client.mjs <ws url> <api key> <delivery id> <final status>
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, key, id, until] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${key}` },
  retryAttempts: 0,
});
const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(2); }, 30000);
try {
  const sub = client.iterate({
    query: 'subscription($id: ID!) { deliveryUpdated(id: $id) { id status } }',
    variables: { id },
  });
  for await (const r of sub) {
    if (r.errors) {
      console.log(JSON.stringify({ errors: r.errors }));
      process.exit(3);
    }
    const status = r.data.deliveryUpdated.status;
    console.log(JSON.stringify({ status }));
    if (status === until) break;
  }
} catch (err) {
  console.log(JSON.stringify({ error: String(err && (err.reason || err.message || err.code || err)) }));
  process.exit(4);
}
clearTimeout(timer);
await client.dispose();
process.exit(0);
