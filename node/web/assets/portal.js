// The patient portal's script. The patient's key is made here and never
// leaves this browser: a passkey (WebAuthn, P-256) or, as the fallback, a
// non-extractable Ed25519 key kept in IndexedDB. The centre prepares
// each document (a draft) and checks what comes back; this script only
// signs what the patient has read and confirmed.

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
      authenticatorSelection: { userVerification: "preferred", residentKey: "preferred" },
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

// sign signs a draft as the key's kind requires and submits it.
async function signAndSubmit(state, draft) {
  const body = { what: draft.what, draft: draft.draft, key: state.key };
  if (state.kind === "passkey") {
    const got = await navigator.credentials.get({
      publicKey: {
        challenge: unb64(draft.challenge),
        rpId: state.rpId,
        allowCredentials: [{ type: "public-key", id: unb64(state.credId) }],
        userVerification: "preferred",
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
    body.signature = b64(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, unb64(draft.signed)));
  }
  return post("/portal/submit", body);
}

async function draft(state, what, form) {
  return post("/portal/draft", { what, pseudonym: state.pseudonym, key: state.key, passkey: state.kind === "passkey", form });
}

function formValues() {
  const f = $("consent-form");
  const all = (name) => Array.from(f.querySelectorAll(`input[name="${name}"]:checked`), (i) => i.value);
  return {
    centres: all("centres"),
    roles: all("roles"),
    purposes: all("purposes"),
    classes: all("classes"),
    except: all("except"),
    from: f.elements.from.value,
    until: f.elements.until.value,
  };
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
      textContent: `${h.Records.length} record(s) held. Every entry below is signed by ${h.Name} and was checked against its ledger of ${h.LedgerSize} entries.`,
    }));
    const table = document.createElement("table");
    const cap = Object.assign(document.createElement("caption"), { textContent: `Who looked, at ${h.Name}` });
    const head = document.createElement("thead");
    const hr = document.createElement("tr");
    for (const c of ["When", "Who", "Role", "Purpose", "Outcome", "Released"]) {
      hr.append(Object.assign(document.createElement("th"), { textContent: c, scope: "col" }));
    }
    head.append(hr);
    const body = document.createElement("tbody");
    for (const a of h.Accesses) {
      const tr = document.createElement("tr");
      if (a.Emergency) tr.className = "emergency";
      if (!a.Permitted) tr.classList.add("denied");
      const outcome = a.Emergency ? `emergency (${a.Reason || a.Event})` : a.Permitted ? "permitted" : `denied (${a.Basis})`;
      tr.append(cell(when(a.Time)), cell(a.Centre), cell(a.Role || ""), cell(a.Purpose), cell(outcome), cell(String(a.Released || 0)));
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
    parts.push(sec);
  }
  out.replaceChildren(...parts);
}

async function pollEnrolment(state) {
  for (;;) {
    try {
      const st = await post("/portal/enrolment", { code: state.code, key: state.key });
      if (st.attested) {
        state.pseudonym = st.pseudonym;
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
    await pollEnrolment(state);
    if (!state.pseudonym) return;
  }
  show("home");
  say("portal-status", `Signed in with your ${state.kind === "passkey" ? "passkey" : "browser key"}. Patient ${state.pseudonym}.`);
  document.body.dataset.patient = state.pseudonym;

  $("consent-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      showPreview(await draft(state, "contract", formValues()));
    } catch (e) {
      say("result", `Not prepared: ${e.message}`, true);
    }
  });
  $("revoke").addEventListener("click", async () => {
    try {
      showPreview(await draft(state, "revocation"));
    } catch (e) {
      say("result", `Not prepared: ${e.message}`, true);
    }
  });
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
      const del = await signAndSubmit(state, d);
      const what = d.what === "contract" ? "Your consent" : "Your withdrawal";
      say("result", `${what} was signed and delivered to ${del.Delivered.length} centre(s)` +
        (del.Confirmed ? ": it is in force everywhere." : ": a majority has not confirmed it yet; it is sent again."));
    } catch (e) {
      say("result", `Not signed: ${e.message}`, true);
    }
  });
  $("view").addEventListener("click", async () => {
    try {
      say("result", "Asking every centre…");
      showView(await signAndSubmit(state, await draft(state, "view")));
      say("result", "Every centre answered or is named as not reached.");
    } catch (e) {
      say("result", `Not answered: ${e.message}`, true);
    }
  });
}

run().catch((e) => say("portal-status", e.message, true));
