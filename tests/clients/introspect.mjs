// graphql-js's standard introspection query, as GraphiQL, Postman and code generators
// send it, then the schema built from the answer. Usage: node introspect.mjs <url> <token>
import { buildClientSchema, getIntrospectionQuery, printSchema } from 'graphql';

const [url, token] = process.argv.slice(2);
const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});
const response = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
  body: JSON.stringify({ query }),
});
const body = await response.json();
if (body.errors) {
  console.error(JSON.stringify(body.errors));
  process.exit(1);
}
const schema = buildClientSchema(body.data);
const queryFields = Object.keys(schema.getQueryType().getFields());
for (const field of ['kpis', 'trend', 'breakdown', 'orders', 'dailyReport']) {
  if (!queryFields.includes(field)) {
    console.error(`Query.${field} missing from the introspected schema`);
    process.exit(1);
  }
}
console.log(`introspected ${Object.keys(schema.getTypeMap()).length} types; SDL ${printSchema(schema).length} bytes`);
