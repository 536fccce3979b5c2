// The GraphQL-over-HTTP spec's server audit (graphql-http) against a running server.
// Usage: node audit.mjs <graphql url> <token>. Exits 1 unless every MUST and SHOULD
// audit passes.
import { serverAudits } from 'graphql-http';

const [url, token] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
// MUST audits fail with `error`, SHOULD audits with `warn`; MAY audits only give a
// `notice` (printed, not failed).
let failed = 0;
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  counts[result.status] += 1;
  if (result.status !== 'ok') {
    if (result.status !== 'notice') failed += 1;
    const detail = result.response ? ` (HTTP ${result.response.status})` : '';
    console.log(`${result.status.toUpperCase()} ${audit.name}: ${result.reason}${detail}`);
  }
}
console.log(`graphql-http audits: ${counts.ok} ok, ${counts.notice} notice, ${counts.warn} warn, ${counts.error} error`);
process.exit(failed === 0 ? 0 : 1);
