// Package patient is what a patient asks of the federation directly,
// with a request signed by their own key, on /medfed/patient/1: to see
// which centres hold their records and every access to them (View), and
// to have every holder erase their records (Erase).
//
// A patient reaches the federation through one centre, the relay: their
// request names it, and holders take the request from it alone, so a
// holder that saw a request cannot replay it elsewhere to learn another
// centre's answer. The relay finds the holders in the directory and asks
// them all at once; each holder checks that the relay is a member, the
// request fresh (within MaxSkew of its clock) and the signature by a key
// a member attested for the patient, neither superseded nor reported
// compromised (consent.Service.Authenticate, which syncs the patient's
// attestations first). Both operations are idempotent, so a replay by the
// relay within the window changes nothing and tells it nothing new.
//
// A holder answers with a signed Answer: for View, its ledger entries
// about the patient (records without payloads, accesses, erasures,
// transfers); for Erase, the erasure entries, after crypto-shredding every
// payload it held for the patient and withdrawing its directory
// announcement. The relay checks each answer (the holder's signature, the
// request's nonce, entries about this patient) and reports every holder by
// name: answered, or why not.
package patient
