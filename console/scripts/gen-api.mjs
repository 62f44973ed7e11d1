// Generates src/api/schema.d.ts from openapi.json. The host's document repeats operationIds
// (`list`, `get`, … in several modules), and openapi-typescript keys operations by them, so
// one route's types would stand for another's: each operation is named after its method and
// path here instead.
import { readFileSync, writeFileSync } from 'node:fs'
import openapiTS, { astToString } from 'openapi-typescript'

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

const doc = JSON.parse(readFileSync(new URL('../openapi.json', import.meta.url), 'utf8'))
for (const [path, item] of Object.entries(doc.paths ?? {})) {
  for (const method of METHODS) {
    if (item[method]) item[method].operationId = `${method} ${path}`
  }
}
const ast = await openapiTS(doc)
writeFileSync(new URL('../src/api/schema.d.ts', import.meta.url), astToString(ast))
console.log('src/api/schema.d.ts written')
