// Generates src/api/schema.d.ts from openapi.json, the host's document (`cargo xtask openapi`
// writes it; the tests fail while it is not current), so a route or schema change that breaks
// the console breaks its type check, not a person's page.
import { readFileSync, writeFileSync } from 'node:fs'
import openapiTS, { astToString } from 'openapi-typescript'

const doc = JSON.parse(readFileSync(new URL('../openapi.json', import.meta.url), 'utf8'))
const ast = await openapiTS(doc)
writeFileSync(new URL('../src/api/schema.d.ts', import.meta.url), astToString(ast))
console.log('src/api/schema.d.ts written')
