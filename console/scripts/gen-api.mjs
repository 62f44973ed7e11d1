// Generates src/api/schema.d.ts from openapi.json (the host's document, unique operationIds).
import { readFileSync, writeFileSync } from 'node:fs'
import openapiTS, { astToString } from 'openapi-typescript'

const doc = JSON.parse(readFileSync(new URL('../openapi.json', import.meta.url), 'utf8'))
const ast = await openapiTS(doc)
writeFileSync(new URL('../src/api/schema.d.ts', import.meta.url), astToString(ast))
console.log('src/api/schema.d.ts written')
