// GraphQL Code Generator against the running server's URL (schema by introspection,
// with the token as a header), typing one dashboard operation.
// Usage: node codegen.mjs <url> <token> <output .ts file>
import { generate } from '@graphql-codegen/cli';
import { readFileSync } from 'node:fs';

const [url, token, out] = process.argv.slice(2);
const document = `
  query DashboardKpis($range: DateRange!) {
    kpis(range: $range, metrics: [GMV, ORDERS, AOV]) {
      values { metric value previous change }
    }
  }`;
await generate(
  {
    schema: { [url]: { headers: { Authorization: `Bearer ${token}` } } },
    documents: [document],
    generates: { [out]: { plugins: ['typescript', 'typescript-operations'] } },
    silent: true,
  },
  true,
);
const text = readFileSync(out, 'utf8');
for (const needle of ['export type DashboardKpisQuery', 'export type Metric', 'DashboardKpisQueryVariables']) {
  if (!text.includes(needle)) {
    console.error(`generated types lack ${needle}`);
    process.exit(1);
  }
}
console.log(`generated ${text.length} bytes of TypeScript`);
