// Package web is the people's interface to a centre, served by every
// medfed node on its HTTPS API listener from files embedded in the
// binary: nothing is fetched at run time, and nothing but Go builds it.
//
//   - The patient portal (/portal/): the patient's key is made in their
//     browser and never leaves it, a passkey (WebAuthn, P-256) first and
//     a non-extractable WebCrypto Ed25519 key kept in IndexedDB as the
//     fallback. The portal shows a short code that a registrar enters to
//     attest the key after checking the patient in person. The patient
//     fills in their consent as a form, reads it back in plain words and
//     signs it in the browser into the contract the CLI makes; they see
//     every holder and every access to their records, and revoke. The
//     portal holds no session: each thing the patient does is a document
//     or a request their key signs, which every holder checks.
//   - The staff console (/console/): staff sign in with their token and
//     get a session. Clinicians find a patient by NHS number or
//     pseudonym and see the care network (per holder: released, denied
//     with the reason, pending, unreachable), open a record, and break
//     the glass with a coded reason behind a deliberate confirmation, a
//     banner while it lasts, and a stop. Registrars register patients
//     and attest their keys (a second staff member approves a key that
//     replaces one); privacy officers read the emergency notifications.
//
// Security: session cookies are Secure, HttpOnly and SameSite=Strict and
// expire; every form that changes anything carries the session's CSRF
// token and is refused without it, or from another origin; the pages
// are sent with a Content-Security-Policy that allows no inline script
// and nothing from elsewhere; what a patient types goes to their own
// centre only. The pages work at phone width and with a keyboard alone.
package web
