// The patient portal's script. The patient's key is made here and never
// leaves this browser: a passkey (WebAuthn, P-256) or, as the fallback, a
// non-extractable Ed25519 key kept in IndexedDB. The centre prepares
// each document (a draft) and checks what comes back; this script signs
// only a draft of the kind the patient asked for, and a document only
// once they have read it in plain words and confirmed.

const $ = (id) => document.getElementById(id);
const store = "medfed.patient"; // what this browser remembers: never a private key

function b64(buf) {
  const bytes = new Uint8Array(buf);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
function unb64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

function load() {
  try {
    return JSON.parse(localStorage.getItem(store) || "null");
  } catch {
    return null;
  }
}
function save(state) {
  localStorage.setItem(store, JSON.stringify(state));
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
    credentials: "omit",
  });
  const text = await res.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = { error: text };
  }
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function say(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

// The browser key: an Ed25519 key pair, its private half non-extractable,
// kept in IndexedDB (a CryptoKey survives there without being exported).
function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("medfed", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("keys");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
async function idbPut(name, value) {
  const db = await idb();
  await new Promise((resolve, reject) => {
    const tx = db.transaction("keys", "readwrite");
    tx.objectStore("keys").put(value, name);
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
}
async function idbGet(name) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const req = db.transaction("keys").objectStore("keys").get(name);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function makePasskey() {
  const rpId = location.hostname;
  const cred = await navigator.credentials.create({
    publicKey: {
      rp: { id: rpId, name: "medfed patient portal" },
      user: { id: crypto.getRandomValues(new Uint8Array(16)), name: "patient", displayName: "Patient" },
      challenge: crypto.getRandomValues(new Uint8Array(32)),
      pubKeyCredParams: [{ type: "public-key", alg: -7 }],
      authenticatorSelection: { userVerification: "required", residentKey: "preferred" },
      attestation: "none",
    },
  });
  const spki = cred.response.getPublicKey();
  if (!spki) throw new Error("this browser does not export the passkey's public key");
  const answer = await post("/portal/enrol", { kind: "passkey", rpId, publicKey: b64(spki) });
  save({ kind: "passkey", rpId, spki: b64(spki), credId: b64(cred.rawId), key: answer.key, code: answer.code });
}

async function makeBrowserKey() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  await idbPut("patient", pair);
  const answer = await post("/portal/enrol", { kind: "ed25519", publicKey: b64(raw) });
  save({ kind: "ed25519", key: answer.key, code: answer.code, public: hex(raw) });
}

// What each draft must be, by its first two bytes: a patient request's
// version (2) and op, or a consent document's version (1) and kind; a
// passkey's have the version's 0x80 bit set. The script signs nothing
// else, whatever the server sent.
const drafts = {
  view: [2, 1], erase: [2, 2], records: [2, 3],
  contract: [1, 2], revocation: [1, 3], token: [1, 4], erasure: [1, 7], delegation: [1, 8],
};

// A note for the patient's records and a device's registration or
// revocation (version 1) name no kind after their version: what the key
// signs is made here from the draft under the context of what the
// patient asked for (draft checks that the centre's answer is that),
// never taken from the centre's bytes.
const contexts = {
  note: "medfed/device/v1 note",
  device: "medfed/device/v1 registration",
  "device-revocation": "medfed/device/v1 revocation",
};

// sign signs a draft as the key's kind requires and submits it.
async function signAndSubmit(state, draft) {
  const bytes = unb64(draft.draft);
  const passkeyBit = state.kind === "passkey" ? 0x80 : 0;
  let signed = unb64(draft.signed);
  let challenge = unb64(draft.challenge);
  if (contexts[draft.what]) {
    if (bytes[0] !== (1 | passkeyBit)) throw new Error(`the centre sent something other than the ${draft.what} to sign: nothing was signed`);
    signed = concat(text(contexts[draft.what]), new Uint8Array([0]), bytes);
    challenge = new Uint8Array(await crypto.subtle.digest("SHA-256", signed));
  } else {
    const want = drafts[draft.what];
    if (!want || bytes[0] !== (want[0] | passkeyBit) || bytes[1] !== want[1]) throw new Error(`the centre sent something other than the ${draft.what} to sign: nothing was signed`);
  }
  const body = { what: draft.what, draft: draft.draft, key: state.key };
  if (state.kind === "passkey") {
    const got = await navigator.credentials.get({
      publicKey: {
        challenge,
        rpId: state.rpId,
        allowCredentials: [{ type: "public-key", id: unb64(state.credId) }],
        userVerification: "required",
      },
    });
    body.passkey = {
      rpId: state.rpId,
      publicKey: state.spki,
      authenticatorData: b64(got.response.authenticatorData),
      clientDataJSON: b64(got.response.clientDataJSON),
      signature: b64(got.response.signature),
    };
  } else {
    const pair = await idbGet("patient");
    if (!pair) throw new Error("this browser no longer holds your key: ask a registrar to attest a new one");
    body.signature = b64(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, signed));
  }
  return post("/portal/submit", body);
}

// draft asks the centre for a draft of what; one of anything else is
// refused before the patient sees it.
async function draft(state, what, form, extra) {
  const d = await post("/portal/draft", { what, pseudonym: state.pseudonym, key: state.key, passkey: state.kind === "passkey", delegation: state.delegation, form, ...extra });
  if (d.what !== what) throw new Error(`the centre sent a ${d.what} for a ${what}: nothing will be signed`);
  return d;
}

// checked is the values of form f's ticked boxes named name.
function checked(f, name) {
  return Array.from(f.querySelectorAll(`input[name="${name}"]:checked`), (i) => i.value);
}

function formValues() {
  const f = $("consent-form");
  return {
    centres: checked(f, "centres"),
    roles: checked(f, "roles"),
    purposes: checked(f, "purposes"),
    classes: checked(f, "classes"),
    except: checked(f, "except"),
    from: f.elements.from.value,
    until: f.elements.until.value,
  };
}


// Opening the records a holder sealed to this browser: HPKE (RFC 9180)
// base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, as
// federation/patient.SealRecords seals them. The X25519 private key is
// non-extractable, kept in IndexedDB beside the signing key.
const text = (s) => new TextEncoder().encode(s);
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}
async function hmac(key, data) {
  // HKDF-Extract with no salt uses a key of 32 zero bytes, the same HMAC.
  const k = await crypto.subtle.importKey("raw", key.length ? key : new Uint8Array(32), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}
const labeledExtract = (suite, salt, label, ikm) => hmac(salt, concat(text("HPKE-v1"), suite, text(label), ikm));
async function labeledExpand(suite, prk, label, info, length) {
  // One block of HKDF-Expand is enough for every length here (at most 32).
  const t = await hmac(prk, concat(new Uint8Array([0, length]), text("HPKE-v1"), suite, text(label), info, new Uint8Array([1])));
  return t.slice(0, length);
}
const kemSuite = concat(text("KEM"), new Uint8Array([0, 0x20]));
const hpkeSuite = concat(text("HPKE"), new Uint8Array([0, 0x20, 0, 1, 0, 2]));

async function hpkeOpen(pair, publicRaw, info, sealed) {
  const enc = sealed.slice(0, 32);
  const peer = await crypto.subtle.importKey("raw", enc, { name: "X25519" }, false, []);
  const dh = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: peer }, pair.privateKey, 256));
  const eae = await labeledExtract(kemSuite, new Uint8Array(), "eae_prk", dh);
  const shared = await labeledExpand(kemSuite, eae, "shared_secret", concat(enc, publicRaw), 32);
  const pskIdHash = await labeledExtract(hpkeSuite, new Uint8Array(), "psk_id_hash", new Uint8Array());
  const infoHash = await labeledExtract(hpkeSuite, new Uint8Array(), "info_hash", info);
  const context = concat(new Uint8Array([0]), pskIdHash, infoHash);
  const secret = await labeledExtract(hpkeSuite, shared, "secret", new Uint8Array());
  const key = await labeledExpand(hpkeSuite, secret, "key", context, 32);
  const nonce = await labeledExpand(hpkeSuite, secret, "base_nonce", context, 12);
  const aes = await crypto.subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["decrypt"]);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, aes, sealed.slice(32)));
}

// sealKey returns this browser's X25519 key pair for the records, made
// the first time.
async function sealKey() {
  let pair = await idbGet("seal");
  if (!pair) {
    pair = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    await idbPut("seal", pair);
  }
  return { pair, publicRaw: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

// readRecords parses the opened plaintext: u32 count, then for each
// record u64 index, u8 state (0 erased, 1 present, 2 too large to send)
// and, when present, a u32-length payload.
function readRecords(b) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let i = 0;
  const n = v.getUint32(i);
  i += 4;
  const out = [];
  for (let k = 0; k < n; k++) {
    const index = Number(v.getBigUint64(i));
    i += 8;
    const state = b[i++];
    let payload = null;
    if (state === 1) {
      const len = v.getUint32(i);
      i += 4;
      payload = b.slice(i, i + len);
      i += len;
    }
    out.push({ index, state, payload });
  }
  if (i !== b.length) throw new Error("the sealed records do not parse");
  return out;
}

// openDocument reads a payload's envelope (a document an EHR sent through
// FHIR keeps its content type there), as the centres do.
const magic = concat(new Uint8Array([0]), text("MFDOC1"), new Uint8Array([0]));
function openDocument(p) {
  if (p.length < magic.length || !magic.every((x, i) => p[i] === x)) return { type: "application/octet-stream", data: p };
  let n = 0;
  let shift = 0;
  let i = magic.length;
  for (;;) {
    if (i >= p.length || shift > 28) throw new Error("a document's envelope is cut short");
    const c = p[i++];
    n += (c & 0x7f) * 2 ** shift;
    shift += 7;
    if (c < 0x80) break;
  }
  if (i + n > p.length) throw new Error("a document's envelope is cut short");
  const head = JSON.parse(new TextDecoder().decode(p.slice(i, i + n)));
  return { type: String(head.contentType || "application/octet-stream"), data: p.slice(i + n) };
}

// readPrescription reads a prescription's payload as its issuing centre
// encoded it (federation/prescription's Encode); null for a payload that
// is not one (a scanned paper prescription, say).
const rxMagic = text("medfed/prescription/v1\n");
function readPrescription(p) {
  if (p.length < rxMagic.length || !rxMagic.every((x, i) => p[i] === x)) return null;
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  let i = rxMagic.length;
  const need = (n) => {
    if (i + n > p.length) throw new Error("a prescription is cut short");
  };
  const take = (n) => {
    need(n);
    i += n;
    return p.slice(i - n, i);
  };
  const u8 = () => take(1)[0];
  const str = (n) => new TextDecoder("utf-8", { fatal: true }).decode(take(n));
  const time = () => {
    need(8);
    const t = Number(v.getBigUint64(i));
    i += 8;
    return new Date(t * 1000);
  };
  take(u8()); // the issuing centre's peer ID
  take(16); // the prescriber's staff ID
  const system = { 1: "dm+d", 2: "SNOMED CT" }[u8()] || "code";
  const code = str(u8());
  const display = str(u8());
  need(4);
  const quantity = v.getUint32(i);
  i += 4;
  const unit = str(u8());
  const repeats = u8();
  const from = time();
  const until = time();
  need(2);
  const dosageLength = v.getUint16(i);
  i += 2;
  const dosage = str(dosageLength);
  take(32); // the hash of the token's secret
  if (i !== p.length) throw new Error("a prescription does not parse");
  return { system, code, display, quantity, unit, repeats, from, until, dosage };
}

// showPrescription lists a prescription's content as facts.
function showPrescription(rx) {
  const dl = document.createElement("dl");
  dl.className = "facts rx";
  const supplies = rx.repeats ? `${rx.repeats + 1} (the first and ${rx.repeats} repeat(s))` : "1";
  for (const [k, v] of [
    ["Medication", `${rx.display} (${rx.system} ${rx.code})`],
    ["Each supply", `${rx.quantity} ${rx.unit}`],
    ["Dosage", rx.dosage || "as directed"],
    ["Supplies", supplies],
    ["Valid", `${when(rx.from)} to ${when(rx.until)}`],
  ]) {
    dl.append(Object.assign(document.createElement("dt"), { textContent: k }), Object.assign(document.createElement("dd"), { textContent: v }));
  }
  return dl;
}

async function getRecords(state) {
  const { pair, publicRaw } = await sealKey();
  const res = await signAndSubmit(state, await draft(state, "records", undefined, { seal: b64(publicRaw) }));
  const nonce = unb64(res.Nonce);
  const parts = [];
  for (const h of res.Holders) {
    const sec = document.createElement("section");
    sec.className = "holder";
    sec.append(Object.assign(document.createElement("h3"), { textContent: h.Name }));
    if (h.Status === "failed" || !h.Sealed) {
      sec.append(Object.assign(document.createElement("p"), { textContent: `Could not be reached: ${h.Error || "no answer"}. It may hold records.` }));
      parts.push(sec);
      continue;
    }
    const info = concat(text("medfed/patient/v1 records"), new Uint8Array([0]), text(h.ID), new Uint8Array([0]), nonce);
    let opened;
    try {
      opened = readRecords(await hpkeOpen(pair, publicRaw, info, unb64(h.Sealed)));
    } catch (e) {
      sec.append(Object.assign(document.createElement("p"), { className: "error", textContent: `What ${h.Name} sent does not open here: ${e.message}` }));
      parts.push(sec);
      continue;
    }
    const ul = document.createElement("ul");
    ul.className = "records";
    for (const r of opened) {
      const meta = h.Records.find((m) => m.Index === r.index) || {};
      const li = document.createElement("li");
      const title = `${meta.Class || "record"} of ${meta.Occurred ? when(meta.Occurred) : "an unknown date"}`;
      li.append(Object.assign(document.createElement("h4"), { textContent: title }));
      if (r.state === 0) {
        li.append(Object.assign(document.createElement("p"), { textContent: "Erased: only the fact that it existed remains." }));
      } else if (r.state === 2) {
        li.append(Object.assign(document.createElement("p"), { textContent: `Too large to send this way: ask ${h.Name} for a copy.` }));
      } else {
        let rx = null;
        try {
          rx = meta.Class === "prescription" ? readPrescription(r.payload) : null;
        } catch (e) {
          li.append(Object.assign(document.createElement("p"), { className: "error", textContent: `A prescription that does not read: ${e.message}` }));
        }
        if (rx) {
          li.append(showPrescription(rx));
          ul.append(li);
          continue;
        }
        let doc;
        try {
          doc = openDocument(r.payload);
        } catch (e) {
          doc = { type: "application/octet-stream", data: r.payload };
        }
        if (doc.type.startsWith("text/") || doc.type === "application/octet-stream") {
          li.append(Object.assign(document.createElement("pre"), { className: "doc", textContent: new TextDecoder().decode(doc.data) }));
        }
        const a = document.createElement("a");
        // Downloaded as bytes, whatever type the holder gave them: a
        // record is never opened as a page of this origin.
        a.href = URL.createObjectURL(new Blob([doc.data], { type: "application/octet-stream" }));
        a.download = `${h.Name}-record-${r.index}`;
        a.textContent = `Download record ${r.index} from ${h.Name} (${doc.type}, ${doc.data.length} bytes)`;
        li.append(a);
      }
      ul.append(li);
    }
    sec.append(opened.length ? ul : Object.assign(document.createElement("p"), { textContent: "No records here." }));
    if (h.Next) sec.append(Object.assign(document.createElement("p"), { className: "notice", textContent: `${h.Name} has more records than one answer carries: not all are shown.` }));
    parts.push(sec);
  }
  if (!parts.length) parts.push(Object.assign(document.createElement("p"), { textContent: "No centre holds records about you." }));
  $("records-result").replaceChildren(...parts);
}

// notifications lists what a patient is told of: every emergency access,
// and every change to who speaks for them.
function notifications(res) {
  const items = [];
  for (const h of res.Holders) {
    for (const a of h.Accesses || []) {
      if (a.Emergency && a.Event === "emergency-start") items.push({ t: a.Time, text: `Emergency access at ${h.Name} by ${a.Centre} (${a.Reason || "no reason"})` });
    }
    for (const k of h.KeyEvents || []) items.push({ t: k.Time, text: `${k.Event.replace("key-", "Key ")} by ${k.Centre}, recorded at ${h.Name}` });
  }
  items.sort((x, y) => (x.t < y.t ? 1 : -1));
  const ul = document.createElement("ul");
  ul.className = "notifications";
  for (const n of items) ul.append(Object.assign(document.createElement("li"), { textContent: `${when(n.t)}: ${n.text}` }));
  $("notifications").replaceChildren(Object.assign(document.createElement("h3"), { textContent: `Notifications (${items.length})` }), ul);
}

function tokenValues() {
  const f = $("token-form");
  return { centre: f.elements.centre.value, purposes: checked(f, "token-purposes"), classes: checked(f, "token-classes"), hours: Number(f.elements.hours.value), uses: Number(f.elements.uses.value) };
}

function delegateValues() {
  const f = $("delegate-form");
  return {
    key: f.elements["delegate-key"].value.trim(),
    relationship: f.elements["delegate-relationship"].value,
    scope: checked(f, "delegate-scope"),
    days: Number(f.elements["delegate-days"].value),
  };
}

function deviceValues() {
  const f = $("device-form");
  return {
    key: f.elements["device-key"].value.trim(),
    type: f.elements["device-type"].value,
    classes: checked(f, "device-classes"),
    days: Number(f.elements["device-days"].value),
  };
}

function showDevices(state) {
  const parts = (state.devices || []).map((d) => {
    const div = document.createElement("div");
    div.className = "device";
    div.append(Object.assign(document.createElement("p"), {
      textContent: `Device ${d.id} (${d.type}), may add your ${d.classes.join(", ")} until ${when(d.expires)}${d.revoked ? " (revoked)" : ""}`,
    }));
    if (!d.revoked) {
      const b = Object.assign(document.createElement("button"), { type: "button", className: "danger", textContent: "Revoke this device" });
      b.dataset.device = d.key;
      div.append(b);
    }
    return div;
  });
  $("devices").replaceChildren(...parts);
}

function showTokens(state) {
  const list = state.tokens || [];
  const parts = list.map((t) => {
    const div = document.createElement("div");
    div.className = "token";
    div.append(Object.assign(document.createElement("p"), { textContent: `Token for ${t.centre}, ${t.uses} use(s), until ${when(t.expires)}${t.revoked ? " (withdrawn)" : ""}` }));
    const label = Object.assign(document.createElement("label"), { textContent: `Token ${t.id}, to hand over`, htmlFor: `tok-${t.id}` });
    const area = Object.assign(document.createElement("textarea"), { id: `tok-${t.id}`, readOnly: true, rows: 3, value: t.token });
    div.append(label, area);
    if (!t.revoked) {
      const b = Object.assign(document.createElement("button"), { type: "button", className: "danger", textContent: "Withdraw this token" });
      b.dataset.token = t.id;
      div.append(b);
    }
    return div;
  });
  $("tokens").replaceChildren(...parts);
}

let pending = null; // the draft shown for confirmation

function showPreview(d) {
  pending = d;
  const ul = $("preview");
  ul.replaceChildren(...d.preview.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
  $("confirm").hidden = false;
  $("confirm-h").focus();
}

function cell(text) {
  return Object.assign(document.createElement("td"), { textContent: text });
}

function when(t) {
  return new Date(t).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

// showDelegations lists who acts for the patient, as the view's answer
// says (a delegate sees their own delegation alone), each with its end:
// the patient ends a delegation, a delegate steps down from theirs.
function showDelegations(state, list) {
  const parts = (list || []).map((g) => {
    const div = document.createElement("div");
    div.className = "delegation";
    const who = state.delegation ? "You act" : `Your ${g.Relationship} acts`;
    const by = g.Registrar ? `, named by a registrar at ${g.Registrar}` : "";
    div.append(Object.assign(document.createElement("p"), {
      textContent: `${who} for ${state.delegation ? "the patient" : "you"} (${g.Scope.join(", ")}) until ${when(g.Expires)}${by}: ${g.Status}.`,
    }));
    if (!["revoked", "expired", "vetoed by the patient"].includes(g.Status)) {
      const b = Object.assign(document.createElement("button"), { type: "button", className: "danger", textContent: state.delegation ? "Step down" : "End this delegation" });
      b.dataset.delegation = g.ID;
      div.append(b);
    }
    return div;
  });
  if (parts.length) parts.unshift(Object.assign(document.createElement("h3"), { textContent: state.delegation ? "Your delegation" : "Who acts for you" }));
  $("delegations").replaceChildren(...parts);
}

// showView draws every holder and every access to the patient's records.
function showView(res) {
  const out = $("view-result");
  const parts = [];
  const summary = document.createElement("p");
  const failed = res.Holders.filter((h) => h.Status === "failed").map((h) => h.Name);
  summary.textContent =
    `${res.Asked} centre(s) asked: ${res.Holders.length - failed.length} hold entries about you` +
    (failed.length ? `; not reached (they may hold records): ${failed.join(", ")}` : "") + ".";
  parts.push(summary);
  for (const h of res.Holders) {
    const sec = document.createElement("section");
    sec.className = "holder";
    const title = document.createElement("h3");
    title.textContent = h.Name;
    sec.append(title);
    if (h.Status === "failed") {
      sec.append(Object.assign(document.createElement("p"), { textContent: `Could not be reached: ${h.Error || "no answer"}` }));
      parts.push(sec);
      continue;
    }
    sec.append(Object.assign(document.createElement("p"), {
      textContent: `${h.Records.length} record(s) held. Every entry below is signed by ${h.Name}; those marked proven are in its ledger's checkpoint that the other centres cosigned, by an inclusion proof your centre checked.`,
    }));
    const table = document.createElement("table");
    const cap = Object.assign(document.createElement("caption"), { textContent: `Who looked, at ${h.Name}` });
    const head = document.createElement("thead");
    const hr = document.createElement("tr");
    for (const c of ["When", "Who", "Role", "Purpose", "Outcome", "Released", "Proof"]) {
      hr.append(Object.assign(document.createElement("th"), { textContent: c, scope: "col" }));
    }
    head.append(hr);
    const body = document.createElement("tbody");
    for (const a of h.Accesses) {
      const tr = document.createElement("tr");
      if (a.Emergency) tr.className = "emergency";
      if (!a.Permitted) tr.classList.add("denied");
      const outcome = a.Event === "lookup" ? "asked where your records are" : a.Emergency ? `emergency (${a.Reason || a.Event})` : a.Permitted ? "permitted" : `denied (${a.Basis})`;
      const proof = a.Index < (h.Proven || 0) ? "proven" : "not yet cosigned";
      tr.append(cell(when(a.Time)), cell(a.Centre), cell(a.Role || ""), cell(a.Purpose), cell(outcome), cell(String(a.Released || 0)), cell(proof));
      body.append(tr);
    }
    table.append(cap, head, body);
    const scroll = document.createElement("div");
    scroll.className = "scroll";
    scroll.append(table);
    sec.append(h.Accesses.length ? scroll : Object.assign(document.createElement("p"), { textContent: "No one has looked at your records here." }));
    for (const k of h.KeyEvents || []) {
      sec.append(Object.assign(document.createElement("p"), { className: "notice", textContent: `${when(k.Time)}: ${k.Event} by ${k.Centre}` }));
    }
    // What became of the prescriptions, and the devices registered here.
    const events = [
      ...(h.Dispenses || []).map((d) => [d.Time, `supply ${d.Fill} of ${d.Issuer}'s prescription ${d.Prescription} dispensed by ${d.Pharmacy}`]),
      ...(h.Cancellations || []).map((c) => [c.Time, `prescription ${c.Prescription} cancelled by its prescriber (${c.Reason})`]),
      ...(h.Devices || []).map((d) => [d.Time, `device ${d.Device} registered for ${d.Classes.join(", ")} until ${when(d.Expires)}`]),
      ...(h.DeviceRevocations || []).map((r) => [r.Time, `device ${r.Device} revoked`]),
    ];
    if (events.length) {
      const ul = document.createElement("ul");
      ul.className = "events";
      for (const [t, what] of events.sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
        ul.append(Object.assign(document.createElement("li"), { textContent: `${when(t)}: ${what}` }));
      }
      sec.append(ul);
    }
    if (h.Next) sec.append(Object.assign(document.createElement("p"), { className: "notice", textContent: `${h.Name} has more entries than one answer carries: not all are shown.` }));
    parts.push(sec);
  }
  out.replaceChildren(...parts);
}

async function pollEnrolment(state) {
  while (!state.pseudonym) {
    try {
      const st = await post("/portal/enrolment", { code: state.code, key: state.key });
      if (st.attested) {
        state.pseudonym = st.pseudonym;
        if (st.delegation) state.delegation = st.delegation;
        save(state);
        return;
      }
    } catch (e) {
      say("portal-status", e.message, true);
      return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function show(section) {
  for (const id of ["setup", "waiting", "home"]) $(id).hidden = id !== section;
}

async function run() {
  let state = load();
  if (!state) {
    show("setup");
    say("portal-status", "No key on this device yet.");
    await new Promise((resolve) => {
      const make = (fn) => async () => {
        try {
          say("portal-status", "Making your key…");
          await fn();
          resolve();
        } catch (e) {
          say("portal-status", `Your key was not made: ${e.message}`, true);
        }
      };
      $("make-passkey").addEventListener("click", make(makePasskey));
      $("make-browser-key").addEventListener("click", make(makeBrowserKey));
    });
    state = load();
  }
  if (!state.pseudonym) {
    show("waiting");
    $("code").textContent = state.code;
    $("key-id").textContent = state.key;
    say("portal-status", "Waiting for a registrar to attest your key…");
    // Or the patient who named this key their delegate gave its holder
    // their patient number and the delegation: what the key signs then
    // names it, and each centre checks the delegation.
    $("act-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const p = $("act-patient").value.trim().toLowerCase();
      const id = $("act-delegation").value.trim().toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(p) || !/^[0-9a-f]{32}$/.test(id)) {
        say("portal-status", "A patient number is 64 letters and digits, a delegation 32: check what you were given.", true);
        return;
      }
      state.pseudonym = p;
      state.delegation = id;
      save(state);
    });
    await pollEnrolment(state);
    if (!state.pseudonym) return;
  }
  show("home");
  const keyKind = state.kind === "passkey" ? "passkey" : "browser key";
  if (state.delegation) {
    // A delegate signs for the patient under the delegation: what is
    // the patient's own to sign (notes, devices) is not offered.
    say("portal-status", `Signed in with your ${keyKind}. You act for patient ${state.pseudonym}, under delegation ${state.delegation}: what you sign names it.`);
    for (const id of ["note-h", "device-h", "delegate-h"]) $(id).closest(".card").hidden = true;
    document.body.dataset.delegation = state.delegation;
    // Stepping down needs no view: the button is there from the start.
    const down = Object.assign(document.createElement("button"), { type: "button", className: "danger", textContent: "Step down from this delegation" });
    down.dataset.delegation = state.delegation;
    $("delegations").replaceChildren(down);
  } else {
    say("portal-status", `Signed in with your ${keyKind}. Patient ${state.pseudonym}.`);
  }
  document.body.dataset.patient = state.pseudonym;

  // prepare asks for a draft of what and shows it for confirmation;
  // target, when given, is what a revocation withdraws.
  const prepare = async (what, form, extra, target) => {
    try {
      const d = await draft(state, what, form, extra);
      if (target) d.target = target;
      showPreview(d);
    } catch (e) {
      say("result", `Not prepared: ${e.message}`, true);
    }
  };
  const onSubmit = (id, fn) =>
    $(id).addEventListener("submit", (ev) => {
      ev.preventDefault();
      fn();
    });
  onSubmit("consent-form", () => prepare("contract", formValues()));
  $("revoke").addEventListener("click", () => prepare("revocation"));
  $("cancel").addEventListener("click", () => {
    pending = null;
    $("confirm").hidden = true;
  });
  $("sign").addEventListener("click", async () => {
    if (!pending) return;
    const d = pending;
    pending = null;
    $("confirm").hidden = true;
    try {
      say("result", "Signing…");
      const got = await signAndSubmit(state, d);
      if (d.what === "token") {
        const f = tokenValues();
        state.tokens = [...(state.tokens || []), { id: got.id, token: got.token, expires: got.expires, uses: got.uses, centre: f.centre }];
        save(state);
        showTokens(state);
        say("result", "Your token is signed: hand it to the team it is for.");
        return;
      }
      if (d.what === "erase") {
        showView(got);
        say("result", "The centres reachable now erased your records. Now sign the erasure that reaches the others.");
        showPreview(await draft(state, "erasure"));
        return;
      }
      if (d.what === "device" || d.what === "device-revocation") {
        const kept = (state.devices || []).filter((x) => x.key !== got.Key);
        state.devices = [...kept, { key: got.Key, id: got.Device, type: got.Type, classes: got.Classes, expires: got.Expires, revoked: got.State === "revoked" }];
        save(state);
        showDevices(state);
        if (d.what === "device") $("device-form").reset();
        say("result", d.what === "device" ? `Your device ${got.Device} is registered: it is ${got.State}.` : `Your device ${got.Device} is revoked: it adds nothing more.`);
        return;
      }
      if (d.what === "note") {
        $("note-text").value = "";
        say("result", `Your note was signed and added to your records here (entry ${got.First}).`);
        return;
      }
      if (d.what === "revocation" && d.target && d.target === state.delegation) {
        // Stepped down: this browser acts for no one now.
        localStorage.removeItem(store);
        $("home").hidden = true;
        say("portal-status", "You stepped down from the delegation: you act for the patient no more. Reload this page to start again.");
        say("result", `Your withdrawal was signed and delivered to ${got.Delivered.length} centre(s).`);
        return;
      }
      if (d.what === "revocation" && d.target) {
        for (const b of $("delegations").querySelectorAll("button[data-delegation]")) {
          if (b.dataset.delegation === d.target) b.replaceWith(Object.assign(document.createElement("p"), { textContent: "(ended)" }));
        }
        for (const t of state.tokens || []) if (t.id === d.target) t.revoked = true;
        save(state);
        showTokens(state);
      }
      if (d.what === "delegation") {
        $("delegate-form").reset();
        $("delegate-handover").textContent = `Give them your patient number ${state.pseudonym} and the delegation ${d.id}.`;
      }
      const what = { contract: "Your consent", revocation: "Your withdrawal", erasure: "Your erasure", delegation: "Your delegation" }[d.what];
      say("result", `${what} was signed and delivered to ${got.Delivered.length} centre(s)` +
        (got.Confirmed ? ": it is in force everywhere." : ": a majority has not confirmed it yet; it is sent again."));
    } catch (e) {
      say("result", `Not signed: ${e.message}`, true);
    }
  });
  $("view").addEventListener("click", async () => {
    try {
      say("result", "Asking every centre…");
      const res = await signAndSubmit(state, await draft(state, "view"));
      notifications(res);
      showView(res);
      showDelegations(state, res.Delegations);
      say("result", "Every centre answered or is named as not reached.");
    } catch (e) {
      say("result", `Not answered: ${e.message}`, true);
    }
  });
  $("records").addEventListener("click", async () => {
    try {
      say("result", "Asking every centre for your records…");
      await getRecords(state);
      say("result", "Your records are below, opened in this browser.");
    } catch (e) {
      say("result", `Not received: ${e.message}`, true);
    }
  });
  onSubmit("token-form", () => prepare("token", undefined, { token: tokenValues() }));
  onSubmit("note-form", () => prepare("note", undefined, { note: $("note-text").value }));
  onSubmit("device-form", () => prepare("device", undefined, { device: deviceValues() }));
  onSubmit("delegate-form", () => prepare("delegation", undefined, { delegate: delegateValues() }));
  // The lists' buttons withdraw what they name: a token, a delegation,
  // a device.
  for (const [list, key] of [["tokens", "token"], ["delegations", "delegation"], ["devices", "device"]]) {
    $(list).addEventListener("click", (ev) => {
      const id = ev.target.dataset && ev.target.dataset[key];
      if (!id) return;
      if (key === "device") prepare("device-revocation", undefined, { deviceKey: id });
      else prepare("revocation", undefined, { target: id }, id);
    });
  }
  $("erase").addEventListener("click", () => prepare("erase"));
  showTokens(state);
  showDevices(state);
}

run().catch((e) => say("portal-status", e.message, true));
