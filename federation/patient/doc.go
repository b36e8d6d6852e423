// Package patient is what a patient asks of the federation directly,
// with a request signed by their own key, on /medfed/patient/1: to see
// which centres hold their records and every access to them (View), and
// to have every holder erase their records (Erase).
//
// A patient reaches the federation through one centre, the relay: their
// request names it, and holders take the request from it alone, so a
// holder that saw a request cannot replay it elsewhere to learn another
// centre's answer. The relay asks at once every centre the directory lists
// as a holder and, in a federation of at most 64 members
// (DefaultAskEvery), every member besides: there the directory is not
// trusted to list every holder, and the patient is to hear from each
// centre that may hold their records, or that it could not be reached.
// In a larger federation asking every member would make each request cost
// a message to each of thousands of centres: the relay asks the holders
// the directory lists at every replica of the patient's key, so that a
// holder is missed only if its announcement reached none of them (the
// holder's repair puts it back at each).
// Each centre asked checks that the relay is a member, the request fresh
// (within MaxSkew of its clock) and the signature by a key a member
// attested for the patient, neither superseded nor reported compromised
// (consent.Service.Authenticate, which syncs the patient's attestations
// first), or by a delegate's key within a delegation in force for the
// request's scope (consent.Service.AuthenticateDelegate: the access entry
// names the delegation), before it says anything, even that it holds nothing: a member
// cannot learn who holds a patient's records with a request the patient
// did not sign. Both operations are idempotent, so a replay by the relay
// within the window changes nothing and tells it nothing new.
//
// A holder answers with a signed Answer: for View, its ledger entries
// about the patient (records without payloads, accesses, erasures,
// transfers); for Erase, the erasure entries, after crypto-shredding every
// payload it held for the patient and withdrawing its directory
// announcement. A centre that holds nothing about the patient (for View,
// no entry about them but the consent documents every member may keep;
// for Erase, no record) answers that it holds nothing, and appends no
// entry of the request: asking every member costs the members that never
// saw the patient no access entry per request. Authenticating the request
// still reads the patient's consent state (a lease from a majority, and
// the patient's documents it lacked, appended as consent entries) at a
// member without a live lease: in a federation asked whole, a view costs
// about members × majority consent reads the first time. Every centre
// asked learns that the patient's pseudonym made a request, through which
// relay, and when; the relay alone learns the answers. The relay checks each answer (the signer, the
// request's nonce, entries about this patient) and reports every centre
// asked: answered with entries, holds nothing, or why it has no answer.
//
// In a federation part-way through an upgrade, a member not yet upgraded
// answers as a holder (with its view entry) whether it holds anything or
// not, and a relay not yet upgraded refuses a member's answer that it
// holds nothing (version 3): the patient is told that member could not
// be reached.
package patient
