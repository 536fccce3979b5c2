// A graphql-ws client (the graphql-transport-ws protocol), as a dashboard uses it.
// Usage: node subscribe.mjs <ws url> <token> <query> [variables JSON] [copies]
// Prints one JSON line per event: {"next": payload}, {"error": errors}, {"complete":
// true} or {"closed": code, "reason": text}; stops after the socket closes.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, query, variables, copies] = process.argv.slice(2);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
  lazy: false,
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => {
      print({ closed: event.code, reason: event.reason });
      process.exit(0);
    },
  },
});
// `copies` subscriptions of the same operation share the one connection.
for (let i = 0; i < Number(copies || 1); i += 1) {
  client.subscribe(
    { query, variables: variables ? JSON.parse(variables) : {} },
    {
      next: (value) => print({ next: value }),
      error: (error) => print({ error: Array.isArray(error) ? error : String(error?.message ?? error) }),
      complete: () => print({ complete: true }),
    },
  );
}
