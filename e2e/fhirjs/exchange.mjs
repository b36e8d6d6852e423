// exchange.mjs drives medfed's FHIR/SMART API the way a hospital's EHR
// would, with a standard FHIR client from npm (fhir-kit-client) and node's
// own fetch and crypto: SMART Backend Services tokens (private_key_jwt,
// RS384 at centre-a, ES384 at centre-b), PDQm, PCF Consent, MHD ITI-65 at
// one centre, ITI-67 and ITI-68 from another, BALP AuditEvent, mCSD
// Organization and Endpoint, and bad input that must be refused.
//
// Usage: node exchange.mjs PHASE CONFIG.json
//
// The phases run in this order, each one a process of its own that talks to
// one centre only (see "Certificates" below); what a later phase needs (the
// pseudonym, the document's id, a token) it reads from OUT/summary.json,
// which every phase updates:
//
//   requests       no network: writes the resources the driver sends (the
//                  ITI-65 Bundle, the Consent) to OUT, and the deliberately
//                  malformed ones to OUT/broken, for validate.mjs to check.
//   sign-assertion no network: writes two client assertions per centre to
//                  OUT/raw/assertion-KEY-N.jwt, for the Go test to verify
//                  against the JWKS it registered.
//   submit         centre a: discovery, /metadata, a registrar's token,
//                  PDQm Patient?identifier=NHS number -> the pseudonym,
//                  Patient/{id}, POST Consent, the ITI-65 transaction.
//   retrieve       centre b: a clinician's token (TREAT), ITI-67 polled (up
//                  to 60 s) until centre a's document is released, ITI-68 as
//                  a Binary and raw, compared byte for byte with what was
//                  submitted, client.resolve() of its subject and custodian,
//                  Consent?patient=, Organization and Endpoint.
//   audit          centre a: a privacy officer's token, AuditEvent?patient=,
//                  polled until it shows centre b's query.
//   prepare-expiry centre b: a clinician's token, used once (it works), kept
//                  in the summary for the phase "expired".
//   bad-a          centre a: a Bundle that is not JSON, a batch Bundle, one
//                  without a type, a wrong resourceType posted (twice), an
//                  unknown search parameter, client assertions with a wrong
//                  audience, replayed, expired; the token endpoint's RFC 6749
//                  answer to a wrong audience.
//   bad-b          centre b: an unknown ITI-67 search parameter; centre a's
//                  access token presented at centre b.
//   expired        centre b, once the test has moved its clock past the
//                  token's lifetime: the token of prepare-expiry.
//
// Each refusal must be a 4xx (not 404 or 405) OperationOutcome with an
// error issue that says what is wrong; the phase exits 1 listing every
// refusal that was not. That nothing was stored is the Go test's to check
// (the ledgers' sizes around the bad phases): it alone holds admin tokens.
//
// CONFIG.json, written by e2e/fhir_test.go (paths absolute):
//
//   {
//     "out": "/…/fhir-out",                    // where everything is written
//     "nhsNumber": "9434765919",                // system https://fhir.nhs.uk/Id/nhs-number
//     "consentDocument": "/…/consent.signed",   // the patient-signed contract's bytes
//     "payload": "/…/report.txt",               // the lab report submitted (text/plain)
//     "centres": {
//       "a": {"name": "centre-a", "base": "https://127.0.0.1:8101",
//             "clientId": "…", "keyFile": "/…/ehr-a.pem", "alg": "RS384", "kid": "…"},
//       "b": {"name": "centre-b", "base": "https://127.0.0.1:8102",
//             "clientId": "…", "keyFile": "/…/ehr-b.pem", "alg": "ES384", "kid": "…"}
//     },
//     "actors": {                               // the acting persons (IHE IUA claims)
//       "registrar":      {"centre": "a", "staffId": "<32 hex>", "role": "registrar",       "purpose": "TREAT", "scope": "system/Patient.rs …"},
//       "privacyOfficer": {"centre": "a", "staffId": "<32 hex>", "role": "privacy-officer", "purpose": "HOPERAT", "scope": "system/AuditEvent.rs"},
//       "clinician":      {"centre": "b", "staffId": "<32 hex>", "role": "clinician",       "purpose": "TREAT", "scope": "system/DocumentReference.rs …"}
//     }
//   }
//
// Output, in OUT:
//   PHASE-NN-STEP.json   every FHIR resource received, one per file
//                        (OperationOutcomes of refusals included);
//   sent/*.json          the well-formed resources sent;
//   raw/                 what is not a FHIR resource: the SMART
//                        configuration, token answers (access tokens
//                        removed), the raw ITI-68 bytes;
//   summary.json         {pseudonym, documentId, files: {STEP: FILE},
//                        statuses: {STEP: HTTP status}, refusals: {CASE:
//                        {centre, status, contentType, file, problem}},
//                        binary, audit, …, state: {…tokens for later phases}}.
//
// Certificates: each centre's API presents the certificate it made itself
// (api.crt in its data directory), its own authority. The Go test runs
// each phase with NODE_EXTRA_CA_CERTS naming the api.crt of the one centre
// the phase talks to. It cannot name both centres' at once: their
// certificates all have the subject "O=medfed, CN=medfed centre API", and
// OpenSSL, finding an authority by subject, then tries only the first of
// them (the others fail with DEPTH_ZERO_SELF_SIGNED_CERT).

import { createHash, createPrivateKey, randomUUID, sign } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'fhir-kit-client';

const NHS_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';
const PSEUDONYM_SYSTEM = 'urn:medfed:pseudonym';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FHIR_JSON = 'application/fhir+json';
const LOINC = 'http://loinc.org';
const MHD = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/';

const PHASES = {
  requests: { centre: null, run: phaseRequests },
  'sign-assertion': { centre: null, run: phaseSignAssertion },
  submit: { centre: 'a', run: phaseSubmit },
  retrieve: { centre: 'b', run: phaseRetrieve },
  audit: { centre: 'a', run: phaseAudit },
  'prepare-expiry': { centre: 'b', run: phasePrepareExpiry },
  'bad-a': { centre: 'a', run: phaseBadA },
  'bad-b': { centre: 'b', run: phaseBadB },
  expired: { centre: 'b', run: phaseExpired },
};

const [phaseName, configFile] = process.argv.slice(2);
if (!PHASES[phaseName] || !configFile) {
  console.error(`usage: node exchange.mjs PHASE CONFIG.json; PHASE one of ${Object.keys(PHASES).join(', ')}`);
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(configFile, 'utf8'));
const out = cfg.out;
mkdirSync(join(out, 'raw'), { recursive: true });
mkdirSync(join(out, 'sent'), { recursive: true });
const summaryFile = join(out, 'summary.json');
let summary = {};
try {
  summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
} catch {
  // the first phase
}
summary.files ??= {};
summary.statuses ??= {};
summary.refusals ??= {};
summary.state ??= {};
summary.phases ??= [];

const problems = []; // what went wrong without stopping the phase
let step = 0;

const log = (...args) => console.log(`exchange ${phaseName}:`, ...args);

try {
  const phase = PHASES[phaseName];
  if (phase.centre && !process.env.NODE_EXTRA_CA_CERTS) {
    log(`warning: NODE_EXTRA_CA_CERTS is not set: centre ${cfg.centres[phase.centre].name}'s certificate will not be trusted`);
  }
  await phase.run();
} catch (err) {
  problems.push(err?.stack ?? String(err));
} finally {
  summary.phases.push({ phase: phaseName, ok: problems.length === 0, problems });
  writeSummary();
}
if (problems.length > 0) {
  for (const p of problems) console.error(`exchange ${phaseName}: FAIL: ${p}`);
  process.exit(1);
}
log('ok');

// ---------------------------------------------------------------- phases

function phaseRequests() {
  const pseudonym = 'f'.repeat(64);
  const payload = readPayload();
  const signed = readFileSync(cfg.consentDocument);
  const bundle = iti65Bundle(pseudonym, payload);
  writeJSON(join(out, 'requests-iti65-bundle.json'), bundle);
  writeJSON(join(out, 'requests-consent.json'), consentResource(pseudonym, signed));
  writeJSON(join(out, 'requests-batch-bundle.json'), { ...bundle, type: 'batch' });
  mkdirSync(join(out, 'broken'), { recursive: true });
  const { type: _type, ...untyped } = bundle;
  writeJSON(join(out, 'broken', 'bundle-without-type.json'), untyped);
  log('request resources written');
}

function phaseSignAssertion() {
  for (const [key, centre] of Object.entries(cfg.centres)) {
    const actor = Object.values(cfg.actors).find((x) => x.centre === key);
    for (const n of [1, 2]) writeFileSync(join(out, 'raw', `assertion-${key}-${n}.jwt`), assertion(centre, actor));
  }
  log('client assertions written');
}

async function phaseSubmit() {
  const a = cfg.centres.a;
  const smart = await discover(a);
  const fhir = fhirClient(a);
  const metadata = await call('GET /fhir/metadata', () => fhir.capabilityStatement());
  save('metadata', metadata, 'CapabilityStatement');
  check(metadata.fhirVersion === '4.0.1', `metadata: fhirVersion ${metadata.fhirVersion}, want 4.0.1`);
  try {
    const meta = await fhir.smartAuthMetadata();
    check(String(meta?.tokenUrl ?? '') === smart.token_endpoint, `fhir-kit-client's smartAuthMetadata found token URL ${meta?.tokenUrl}`);
  } catch (err) {
    problems.push(`fhir-kit-client's smartAuthMetadata: ${err?.errors?.map((e) => e.message).join('; ') ?? err.message}`);
  }

  const registrar = await mustToken('registrar', 'token-registrar');
  const client = fhirClient(a, registrar);

  // PDQm ITI-78: the NHS number in, the pseudonym out, and nothing else.
  const search = await call('PDQm Patient?identifier=', () =>
    client.search({ resourceType: 'Patient', searchParams: { identifier: `${NHS_SYSTEM}|${cfg.nhsNumber}` } }),
  );
  save('pdqm-search', search, 'Bundle');
  const patients = entries(search, 'Patient');
  if (patients.length !== 1) throw new Error(`PDQm: ${patients.length} Patients in the searchset, want 1: ${JSON.stringify(search)}`);
  const pseudonym = patients[0].id;
  if (!/^[0-9a-f]{64}$/.test(pseudonym ?? '')) throw new Error(`PDQm: Patient id ${pseudonym}, want a pseudonym (64 hex)`);
  summary.pseudonym = pseudonym;
  check(!JSON.stringify(search).includes(cfg.nhsNumber), 'PDQm: the answer carries the NHS number');
  const patient = await call('GET Patient/{id}', () => client.read({ resourceType: 'Patient', id: pseudonym }));
  save('patient-read', patient, 'Patient');
  check(patient.id === pseudonym, `Patient/${pseudonym} answered with id ${patient.id}`);

  // PCF: the patient's signature authenticates the Consent: no token.
  const signed = readFileSync(cfg.consentDocument);
  const consentBody = consentResource(pseudonym, signed);
  writeJSON(join(out, 'sent', 'consent.json'), consentBody);
  const consent = await call('POST Consent', () => fhirClient(a).create({ resourceType: 'Consent', body: consentBody }));
  save('consent-create', consent, 'Consent');
  check(status(consent) === 201, `POST Consent: status ${status(consent)}, want 201`);
  summary.consentId = consent.id;

  // MHD ITI-65: one SubmissionSet, one DocumentReference, one Binary.
  const payload = readPayload();
  const bundle = iti65Bundle(pseudonym, payload);
  writeJSON(join(out, 'sent', 'iti65-bundle.json'), bundle);
  const response = await call('ITI-65 transaction (POST [base]/ as fhir-kit-client sends it)', () => client.transaction({ body: bundle }));
  save('iti65-response', response, 'Bundle');
  check(response.type === 'transaction-response', `ITI-65: a Bundle of type ${response.type}`);
  const got = response.entry ?? [];
  check(got.length === bundle.entry.length, `ITI-65: ${got.length} response entries for ${bundle.entry.length} sent`);
  const locations = got.map((e) => e.response?.location ?? '');
  for (const [i, e] of got.entries()) {
    if (bundle.entry[i].resource.resourceType === 'List') {
      // The submission set is not kept as a resource: its documents are
      // records. The recipient says so rather than name a List it lacks.
      check(/^200\b/.test(e.response?.status ?? '') && e.response?.outcome?.resourceType === 'OperationOutcome' && !e.response?.location,
        `ITI-65: the SubmissionSet's entry ${i}: ${JSON.stringify(e.response)}, want 200 OK with an outcome and no location`);
      continue;
    }
    check(/^201\b/.test(e.response?.status ?? ''), `ITI-65: entry ${i} status ${e.response?.status}, want 201 Created`);
    check(locations[i] !== '', `ITI-65: entry ${i} has no location`);
  }
  const docLocation = locations.find((l) => /^DocumentReference\//.test(l)) ?? '';
  const m = /^DocumentReference\/([A-Za-z0-9.-]+)/.exec(docLocation);
  if (!m) throw new Error(`ITI-65: no DocumentReference location among ${JSON.stringify(locations)}`);
  summary.documentId = m[1];
  check(summary.documentId.startsWith(`${a.name}-`), `ITI-65: document id ${summary.documentId}, want ${a.name}-<index>`);
  summary.submitted = {
    locations,
    masterIdentifier: bundle.entry[1].resource.masterIdentifier.value,
    payloadSha256: createHash('sha256').update(payload).digest('hex'),
    payloadBytes: payload.length,
  };
  log(`pseudonym ${pseudonym.slice(0, 8)}…, document ${summary.documentId}`);
}

async function phaseRetrieve() {
  const b = cfg.centres.b;
  const { pseudonym, documentId } = need('pseudonym', 'documentId');
  await discover(b);
  const clinician = await mustToken('clinician', 'token-clinician');
  const client = fhirClient(b, clinician);

  // ITI-67: a federated query; centre a's record is released once it is
  // in a final checkpoint and the directory lists centre a as a holder.
  let search;
  let doc;
  const deadline = Date.now() + 60_000;
  for (;;) {
    search = await call('ITI-67 DocumentReference?patient=&status=current', () =>
      client.search({ resourceType: 'DocumentReference', searchParams: { patient: pseudonym, status: 'current' } }),
    );
    doc = entries(search, 'DocumentReference').find((d) => d.id === documentId);
    if (doc || Date.now() > deadline) break;
    await sleep(1000);
  }
  save('iti67-search', search, 'Bundle');
  if (!doc) {
    const said = entries(search, 'OperationOutcome').flatMap((o) => (o.issue ?? []).map((i) => i.diagnostics ?? i.details?.text));
    throw new Error(`ITI-67: document ${documentId} not released within 60 s; the holders said: ${said.join(' | ')}`);
  }
  const attachment = doc.content?.[0]?.attachment ?? {};
  check(String(attachment.url ?? '').startsWith(`${b.base}/fhir/Binary/`), `ITI-67: attachment.url ${attachment.url}, want ${b.base}/fhir/Binary/…`);

  const read = await call('GET DocumentReference/{id}', () => client.read({ resourceType: 'DocumentReference', id: documentId }));
  save('documentreference-read', read, 'DocumentReference');

  // ITI-68, as a FHIR Binary and as the raw bytes.
  const payload = readPayload();
  const binary = await call('ITI-68 GET attachment.url (Accept: application/fhir+json)', () => client.request(attachment.url));
  save('iti68-binary', binary, 'Binary');
  const fromBinary = Buffer.from(binary.data ?? '', 'base64');
  const raw = await fetch(attachment.url, { headers: { authorization: `Bearer ${clinician}`, accept: attachment.contentType ?? '*/*' } });
  const rawBytes = Buffer.from(await raw.arrayBuffer());
  writeFileSync(join(out, 'raw', 'iti68-raw.bin'), rawBytes);
  summary.statuses['iti68-raw'] = raw.status;
  summary.binary = {
    contentType: binary.contentType,
    bytesMatch: fromBinary.equals(payload),
    rawStatus: raw.status,
    rawContentType: raw.headers.get('content-type'),
    rawBytesMatch: rawBytes.equals(payload),
  };
  check(summary.binary.bytesMatch, `ITI-68: the Binary's data (${fromBinary.length} bytes) is not what was submitted (${payload.length} bytes)`);
  check(raw.status === 200, `ITI-68 raw: status ${raw.status}`);
  check(summary.binary.rawBytesMatch, `ITI-68 raw: ${rawBytes.length} bytes, not the ${payload.length} submitted`);
  check(String(summary.binary.rawContentType).startsWith('text/plain'), `ITI-68 raw: Content-Type ${summary.binary.rawContentType}`);

  // References a standard client follows.
  const inBundle = await client.resolve({ reference: `DocumentReference/${documentId}`, context: search });
  check(inBundle?.id === documentId, 'client.resolve() within the searchset did not find the document');
  const custodian = await call(`resolve ${doc.custodian?.reference}`, () => client.resolve({ reference: doc.custodian?.reference ?? '(none)' }));
  save('resolve-custodian', custodian, 'Organization');
  check(custodian.id === cfg.centres.a.name, `the custodian resolved to Organization/${custodian.id}, want ${cfg.centres.a.name}`);
  const subject = await call(`resolve ${doc.subject?.reference}`, () => client.resolve({ reference: doc.subject?.reference ?? '(none)' }));
  save('resolve-subject', subject, 'Patient');
  check(subject.id === pseudonym, `the subject resolved to Patient/${subject.id}`);

  const consents = await call('Consent?patient=', () => client.search({ resourceType: 'Consent', searchParams: { patient: pseudonym } }));
  save('consent-search', consents, 'Bundle');
  check(entries(consents, 'Consent').length >= 1, 'Consent?patient=: no Consent in force');

  // mCSD ITI-90: the charter's members.
  const orgs = await call('Organization search', () => client.search({ resourceType: 'Organization' }));
  save('organization-search', orgs, 'Bundle');
  const names = entries(orgs, 'Organization').map((o) => o.id);
  for (const c of Object.values(cfg.centres)) check(names.includes(c.name), `Organization search: ${c.name} missing from ${names.join(', ')}`);
  const self = await call(`GET Organization/${b.name}`, () => client.read({ resourceType: 'Organization', id: b.name }));
  save('organization-read', self, 'Organization');
  const endpoints = await call('Endpoint search', () => client.search({ resourceType: 'Endpoint' }));
  save('endpoint-search', endpoints, 'Bundle');
  const found = entries(endpoints, 'Endpoint');
  check(found.length >= 1, 'Endpoint search: no Endpoint');
  if (found[0]?.id) {
    const ep = await call(`GET Endpoint/${found[0].id}`, () => client.read({ resourceType: 'Endpoint', id: found[0].id }));
    save('endpoint-read', ep, 'Endpoint');
  }
  log(`document ${documentId} retrieved from ${b.name}, ${payload.length} bytes as submitted`);
}

async function phaseAudit() {
  const a = cfg.centres.a;
  const { pseudonym } = need('pseudonym');
  const officer = await mustToken('privacyOfficer', 'token-privacy-officer');
  const client = fhirClient(a, officer);
  const querier = cfg.centres.b.name;
  let search;
  let fromQuerier = [];
  const deadline = Date.now() + 20_000;
  for (;;) {
    search = await call('AuditEvent?patient=', () => client.search({ resourceType: 'AuditEvent', searchParams: { patient: pseudonym } }));
    fromQuerier = entries(search, 'AuditEvent').filter((e) => JSON.stringify(e.agent ?? []).includes(querier));
    if (fromQuerier.length > 0 || Date.now() > deadline) break;
    await sleep(1000);
  }
  save('audit-search', search, 'Bundle');
  summary.audit = { events: entries(search, 'AuditEvent').length, fromQuerier: fromQuerier.map((e) => e.id) };
  check(fromQuerier.length > 0, `AuditEvent?patient= at ${a.name}: no event names ${querier}'s query`);
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString().slice(0, 10);
  const dated = await call('AuditEvent?patient=&date=ge', () =>
    client.search({ resourceType: 'AuditEvent', searchParams: { patient: pseudonym, date: `ge${since}` } }),
  );
  save('audit-search-date', dated, 'Bundle');
  check(entries(dated, 'AuditEvent').length >= fromQuerier.length, 'AuditEvent?date=ge…: fewer events than without a date');
  log(`${summary.audit.events} AuditEvents, ${fromQuerier.length} of ${querier}'s query`);
}

async function phasePrepareExpiry() {
  const b = cfg.centres.b;
  const { pseudonym } = need('pseudonym');
  const token = await mustToken('clinician', 'token-clinician-expiring');
  const patient = await call('GET Patient/{id} with the token that will expire', () => fhirClient(b, token).read({ resourceType: 'Patient', id: pseudonym }));
  save('patient-read-before-expiry', patient, 'Patient');
  summary.state.expiringToken = token;
}

async function phaseBadA() {
  const a = cfg.centres.a;
  const b = cfg.centres.b;
  const { pseudonym } = need('pseudonym');
  const registrar = await mustToken('registrar', 'token-registrar-bad');
  summary.state.tokenA = registrar;
  const client = fhirClient(a, registrar);
  const bundle = iti65Bundle(pseudonym, Buffer.from('refused: never stored\n'));

  await refused('not-json-bundle', 'a', () =>
    client.request('', { method: 'POST', body: '{"resourceType": "Bundle", "type": "transaction", "entry": [', options: { headers: { 'content-type': FHIR_JSON } } }),
  );
  await refused('batch-bundle', 'a', () => client.batch({ body: { ...bundle, type: 'batch' } }));
  const { type: _type, ...untyped } = bundle;
  await refused('bundle-without-type', 'a', () => client.transaction({ body: untyped }));
  await refused('wrong-resource-type-transaction', 'a', () => client.transaction({ body: bundle.entry[1].resource }));
  await refused('wrong-resource-type-consent', 'a', () =>
    fhirClient(a).create({ resourceType: 'Consent', body: { resourceType: 'DocumentReference', ...withoutType(bundle.entry[1].resource) } }),
  );
  await refused('unknown-search-parameter-pdqm', 'a', () =>
    client.search({ resourceType: 'Patient', searchParams: { identifier: `${NHS_SYSTEM}|${cfg.nhsNumber}`, 'shoe-size': '42' } }),
  );

  // The token endpoint: OperationOutcomes, asked for with Accept.
  const actor = cfg.actors.registrar;
  const tokenA = `${a.base}/auth/token`;
  await refused('wrong-audience-assertion', 'a', () =>
    tokenRequest(a, actor, { assertion: assertion(a, actor, { aud: `${b.base}/auth/token` }), accept: FHIR_JSON }),
  );
  const once = assertion(a, actor, { aud: tokenA });
  const first = await tokenRequest(a, actor, { assertion: once, accept: 'application/json' });
  summary.statuses['replay-first-use'] = first.status;
  check(first.status === 200, `the assertion's first use: status ${first.status}: ${first.text.slice(0, 500)}`);
  await refused('replayed-assertion', 'a', () => tokenRequest(a, actor, { assertion: once, accept: FHIR_JSON }));
  const now = Math.floor(Date.now() / 1000);
  await refused('expired-assertion', 'a', () =>
    tokenRequest(a, actor, { assertion: assertion(a, actor, { aud: tokenA, iat: now - 600, exp: now - 300 }), accept: FHIR_JSON }),
  );

  // Without Accept naming FHIR, RFC 6749's JSON error.
  const plain = await tokenRequest(a, actor, { assertion: assertion(a, actor, { aud: `${b.base}/auth/token` }), accept: 'application/json' });
  let body = {};
  try {
    body = JSON.parse(plain.text);
  } catch {
    // reported below
  }
  writeJSON(join(out, 'raw', 'token-error-rfc6749.json'), body);
  const codes = ['invalid_client', 'invalid_grant', 'invalid_scope', 'invalid_request', 'unsupported_grant_type'];
  summary.tokenErrorJSON = { status: plain.status, error: body.error, description: body.error_description };
  check(
    (plain.status === 400 || plain.status === 401) && codes.includes(body.error) && typeof body.error_description === 'string',
    `the token endpoint's RFC 6749 error: status ${plain.status}: ${plain.text.slice(0, 500)}`,
  );
}

async function phaseBadB() {
  const b = cfg.centres.b;
  const { pseudonym } = need('pseudonym');
  const clinician = await mustToken('clinician', 'token-clinician-bad');
  await refused('unknown-search-parameter-iti67', 'b', () =>
    fhirClient(b, clinician).search({ resourceType: 'DocumentReference', searchParams: { patient: pseudonym, colour: 'blue' } }),
  );
  const tokenA = summary.state.tokenA;
  if (!tokenA) throw new Error('no token of centre a in the summary: run bad-a first');
  await refused('another-centres-token', 'b', () => fhirClient(b, tokenA).read({ resourceType: 'Patient', id: pseudonym }));
}

async function phaseExpired() {
  const b = cfg.centres.b;
  const { pseudonym } = need('pseudonym');
  const token = summary.state.expiringToken;
  if (!token) throw new Error('no expiring token in the summary: run prepare-expiry first');
  await refused('expired-access-token', 'b', () => fhirClient(b, token).read({ resourceType: 'Patient', id: pseudonym }));
}

// ------------------------------------------------------- the resources sent

function iti65Bundle(pseudonym, payload) {
  const list = `urn:uuid:${randomUUID()}`;
  const doc = `urn:uuid:${randomUUID()}`;
  const bin = `urn:uuid:${randomUUID()}`;
  const now = new Date().toISOString();
  return {
    resourceType: 'Bundle',
    meta: { profile: [`${MHD}IHE.MHD.Minimal.ProvideBundle`] },
    type: 'transaction',
    entry: [
      {
        fullUrl: list,
        resource: {
          resourceType: 'List',
          meta: { profile: [`${MHD}IHE.MHD.Minimal.SubmissionSet`] },
          extension: [{ url: `${MHD}ihe-sourceId`, valueIdentifier: { value: 'urn:oid:1.3.6.1.4.1.21367.2005.3.7' } }],
          identifier: [{ use: 'usual', system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` }],
          status: 'current',
          mode: 'working',
          code: { coding: [{ system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes', code: 'submissionset' }] },
          subject: { reference: `Patient/${pseudonym}` },
          date: now,
          entry: [{ item: { reference: doc } }],
        },
        request: { method: 'POST', url: 'List' },
      },
      {
        fullUrl: doc,
        resource: {
          resourceType: 'DocumentReference',
          meta: { profile: [`${MHD}IHE.MHD.Minimal.DocumentReference`] },
          masterIdentifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` },
          status: 'current',
          type: { coding: [{ system: LOINC, code: '11502-2', display: 'Laboratory report' }] },
          subject: { reference: `Patient/${pseudonym}` },
          date: now,
          content: [{ attachment: { contentType: 'text/plain', url: bin } }],
        },
        request: { method: 'POST', url: 'DocumentReference' },
      },
      {
        fullUrl: bin,
        resource: { resourceType: 'Binary', contentType: 'text/plain', data: payload.toString('base64') },
        request: { method: 'POST', url: 'Binary' },
      },
    ],
  };
}

function consentResource(pseudonym, signed) {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: LOINC, code: '59284-0', display: 'Patient Consent' }] }],
    patient: { reference: `Patient/${pseudonym}` },
    dateTime: new Date().toISOString(),
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    sourceAttachment: { contentType: 'application/vnd.medfed.consent', data: signed.toString('base64') },
  };
}

function withoutType(resource) {
  const { resourceType: _t, ...rest } = resource;
  return rest;
}

// ------------------------------------------------------------ SMART tokens

// assertion signs a client assertion (RFC 7523) for centre's client by
// hand: header and claims base64url-encoded, signed with RS384 (RSASSA
// PKCS#1 v1.5, SHA-384) or ES384 (P-384, r||s as JWS wants it).
function assertion(centre, actor, { aud, jti = randomUUID(), iat, exp } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: centre.alg, typ: 'JWT', kid: centre.kid };
  const claims = { iss: centre.clientId, sub: centre.clientId, aud: aud ?? `${centre.base}/auth/token`, jti, iat: iat ?? now, exp: exp ?? now + 240 };
  if (actor?.staffId) {
    const iua = { subject_id: actor.staffId, subject_role: { system: 'urn:medfed:staff-role', code: actor.role } };
    if (actor.purpose) iua.purpose_of_use = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: actor.purpose };
    claims.extensions = { ihe_iua: iua };
  }
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64(header)}.${b64(claims)}`;
  const key = createPrivateKey(readFileSync(centre.keyFile));
  let signature;
  switch (centre.alg) {
    case 'RS384':
      if (key.asymmetricKeyType !== 'rsa') throw new Error(`RS384 wants an RSA key, ${centre.keyFile} holds ${key.asymmetricKeyType}`);
      signature = sign('sha384', Buffer.from(input), key);
      break;
    case 'ES384':
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') throw new Error(`ES384 wants a P-384 key in ${centre.keyFile}`);
      signature = sign('sha384', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
      break;
    default:
      throw new Error(`unknown alg ${centre.alg}`);
  }
  return `${input}.${signature.toString('base64url')}`;
}

// tokenRequest posts a client_credentials grant to centre's token endpoint.
async function tokenRequest(centre, actor, { assertion: jwt, scope = actor.scope, accept = 'application/json' }) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', scope, client_assertion_type: ASSERTION_TYPE, client_assertion: jwt });
  const res = await fetch(`${centre.base}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept },
    body,
  });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
}

// mustToken gets an access token for the actor named in cfg.actors.
async function mustToken(name, stepName) {
  const actor = cfg.actors[name];
  const centre = cfg.centres[actor.centre];
  const res = await tokenRequest(centre, actor, { assertion: assertion(centre, actor) });
  summary.statuses[stepName] = res.status;
  let body;
  try {
    body = JSON.parse(res.text);
  } catch {
    throw new Error(`token for ${name} at ${centre.name}: status ${res.status}, not JSON: ${res.text.slice(0, 500)}`);
  }
  const { access_token: token, ...shown } = body;
  writeJSON(join(out, 'raw', `${phaseName}-${stepName}.json`), shown);
  if (res.status !== 200 || typeof token !== 'string' || token === '') {
    throw new Error(`token for ${name} at ${centre.name}: status ${res.status}: ${JSON.stringify(shown)}`);
  }
  check(String(body.token_type).toLowerCase() === 'bearer', `token for ${name}: token_type ${body.token_type}`);
  check(Number.isInteger(body.expires_in) && body.expires_in > 0 && body.expires_in <= 300, `token for ${name}: expires_in ${body.expires_in}`);
  const granted = String(body.scope ?? '').split(' ');
  const missing = actor.scope.split(' ').filter((s) => s && !granted.includes(s));
  check(missing.length === 0, `token for ${name}: scopes ${missing.join(' ')} not granted (granted: ${body.scope})`);
  check(body.extensions?.ihe_iua?.subject_id === actor.staffId, `token for ${name}: the IUA claims were not echoed: ${JSON.stringify(body.extensions)}`);
  log(`token for ${name} at ${centre.name}: ${body.scope}`);
  return token;
}

// discover reads centre's SMART configuration from both places it is
// served, and checks what a backend-services client relies on.
async function discover(centre) {
  let first;
  for (const path of ['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration']) {
    const res = await fetch(centre.base + path, { headers: { accept: 'application/json' } });
    const text = await res.text();
    summary.statuses[`smart-configuration ${path}`] = res.status;
    if (res.status !== 200) throw new Error(`GET ${path} at ${centre.name}: status ${res.status}: ${text.slice(0, 500)}`);
    const conf = JSON.parse(text);
    writeJSON(join(out, 'raw', `${phaseName}-smart-configuration${path.startsWith('/fhir') ? '-fhir' : ''}.json`), conf);
    first ??= conf;
  }
  const has = (list, v) => Array.isArray(list) && list.includes(v);
  check(first.token_endpoint === `${centre.base}/auth/token`, `smart-configuration: token_endpoint ${first.token_endpoint}, want ${centre.base}/auth/token`);
  check(has(first.grant_types_supported, 'client_credentials'), 'smart-configuration: no client_credentials grant');
  check(has(first.token_endpoint_auth_methods_supported, 'private_key_jwt'), 'smart-configuration: no private_key_jwt');
  check(has(first.token_endpoint_auth_signing_alg_values_supported, centre.alg), `smart-configuration: ${centre.alg} not supported`);
  check(has(first.capabilities, 'client-confidential-asymmetric'), 'smart-configuration: no client-confidential-asymmetric capability');
  return first;
}

// ------------------------------------------------------------- FHIR calls

function fhirClient(centre, token) {
  return new Client({ baseUrl: `${centre.base}/fhir`, customHeaders: token ? { authorization: `Bearer ${token}` } : {} });
}

// call runs one request that must succeed, and says which one failed
// and how if it did not.
async function call(what, fn) {
  try {
    return await fn();
  } catch (err) {
    if (err?.response) {
      const data = typeof err.response.data === 'string' ? err.response.data : JSON.stringify(err.response.data);
      if (err.response.data?.resourceType) writeJSON(join(out, 'raw', `${phaseName}-failed-${++step}.json`), err.response.data);
      throw new Error(`${what}: ${err.config?.method ?? ''} ${err.config?.url ?? ''}: HTTP ${err.response.status}: ${data.slice(0, 2000)}`);
    }
    const cause = err?.cause ? ` (${err.cause.code ?? err.cause.message})` : '';
    throw new Error(`${what}: ${err?.message ?? err}${cause}`);
  }
}

// refused runs one request that must be refused with a 4xx
// OperationOutcome, and records how it was answered. fn is a
// fhir-kit-client call (which throws on a non-2xx answer) or
// tokenRequest.
async function refused(name, centreKey, fn) {
  let res;
  try {
    const r = await fn();
    if (r && typeof r.status === 'number' && typeof r.text === 'string') {
      res = r;
    } else {
      res = { status: status(r) ?? 200, contentType: contentType(r), body: r };
    }
  } catch (err) {
    if (!err?.response) {
      const cause = err?.cause ? ` (${err.cause.code ?? err.cause.message})` : '';
      throw new Error(`${name}: ${err?.message ?? err}${cause}`);
    }
    res = { status: err.response.status, contentType: err.config?.headers?.get?.('content-type') ?? '', body: err.response.data };
  }
  let body = res.body;
  if (body === undefined) {
    try {
      body = JSON.parse(res.text);
    } catch {
      body = res.text;
    }
  }
  const record = { centre: cfg.centres[centreKey].name, status: res.status, contentType: res.contentType ?? '' };
  const why = [];
  if (res.status < 400 || res.status >= 500) why.push(`status ${res.status}, want 4xx`);
  if (res.status === 404 || res.status === 405) why.push(`status ${res.status}: the route, not the input, was refused`);
  if (body && typeof body === 'object' && body.resourceType) {
    record.file = save(`bad-${name}`, body);
  }
  if (body?.resourceType !== 'OperationOutcome') {
    why.push(`not an OperationOutcome: ${(typeof body === 'string' ? body : JSON.stringify(body)).slice(0, 300)}`);
  } else {
    const issues = body.issue ?? [];
    if (!issues.some((i) => i.severity === 'error' || i.severity === 'fatal')) why.push('no issue of severity error');
    if (!issues.some((i) => (i.diagnostics ?? i.details?.text ?? '').trim() !== '')) why.push('no issue says what is wrong (diagnostics or details.text)');
    record.issues = issues.map((i) => `${i.severity} ${i.code}: ${i.diagnostics ?? i.details?.text ?? ''}`);
  }
  if (!String(record.contentType).startsWith(FHIR_JSON)) why.push(`Content-Type ${record.contentType}, want ${FHIR_JSON}`);
  record.problem = why.join('; ');
  summary.refusals[name] = record;
  if (why.length > 0) problems.push(`${name} at ${record.centre}: ${record.problem}`);
  log(`${name}: ${res.status} ${why.length ? 'NOT AS WANTED' : 'refused'}${record.issues ? ': ' + record.issues[0] : ''}`);
}

function status(resource) {
  return resource ? Client.httpFor(resource).response?.status : undefined;
}

function contentType(resource) {
  return (resource && Client.httpFor(resource).response?.headers.get('content-type')) ?? '';
}

function entries(bundle, type) {
  return (bundle?.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === type);
}

// ------------------------------------------------------------------ output

// save writes a FHIR resource received to OUT and notes it in the
// summary under stepName; with want, it checks the resource type and that
// it came as application/fhir+json.
function save(stepName, resource, want) {
  const file = `${phaseName}-${String(++step).padStart(2, '0')}-${stepName}.json`;
  writeJSON(join(out, file), resource);
  summary.files[stepName] = file;
  const st = status(resource);
  if (st !== undefined) summary.statuses[stepName] = st;
  if (want) {
    check(resource?.resourceType === want, `${stepName}: a ${resource?.resourceType}, want a ${want}`);
    const ct = contentType(resource);
    check(ct.startsWith(FHIR_JSON), `${stepName}: Content-Type ${ct}, want ${FHIR_JSON}`);
  }
  return file;
}

function writeJSON(path, value) {
  writeFileSync(path + '.tmp', JSON.stringify(value, null, 2) + '\n');
  renameSync(path + '.tmp', path);
}

function writeSummary() {
  writeJSON(summaryFile, summary);
}

function need(...keys) {
  for (const k of keys) {
    if (!summary[k]) throw new Error(`summary.json has no ${k}: run the earlier phases first`);
  }
  return summary;
}

function readPayload() {
  return readFileSync(cfg.payload);
}

function check(ok, what) {
  if (!ok) problems.push(what);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
