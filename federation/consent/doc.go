// Package consent holds patients' consent: the documents they sign, the
// attestations that bind their keys to their pseudonyms, a deterministic
// evaluator that every holding centre applies the same way, and the
// service that moves documents between centres over /medfed/consent/1.
//
// # Documents
//
// Eight kinds of signed document, each a canonical binary encoding (see
// Parse) signed with Ed25519 under the context "medfed/consent/v1":
//
//   - an Attestation, signed by a member centre after checking the
//     patient's identity in person: this key is this pseudonym's;
//   - a Contract, signed by the patient, with FHIR Consent semantics: a
//     base policy (opt-in: permit unless a provision denies; opt-out: deny
//     unless a provision permits) and provisions that permit or deny, each
//     scoped by actor (centre, staff role, staff ID), action, purpose
//     (treatment, research, emergency), data class, validity period and
//     data period, with nested provisions as exceptions;
//   - a Revocation, signed by the patient, of a contract or a token;
//   - a Token, signed by the patient, for one grantee (a centre, or a staff
//     member at one), a scope and an expiry no later than the charter's
//     token-max-lifetime after issue, for 1 to 1000 uses;
//   - an Approval, signed by a member centre for a second staff member, of
//     an attestation that replaces the patient's key, or of a delegation a
//     registrar made or ended;
//   - a Veto, signed by the patient's key in force, of such an attestation
//     or delegation;
//   - an Erasure, signed by a patient's key in force for the key notice:
//     every holder is to erase the records it appended before it (see
//     "Erasure" below);
//   - a Delegation, signed by the patient (or, for a patient who cannot,
//     by a member centre for a registrar, with the evidence seen as a
//     code): a delegate's key, their relationship to the patient (a
//     code), a scope and a term (see "Delegates" below).
//
// None holds a name, an identifier or clinical data: patients are named by
// pseudonym, staff by their centre's pseudonymous staff ID.
//
// # Keys, rotation and loss
//
// A patient's first key counts once a member attests it. An attestation
// of another key replaces it only once a second staff member approved it
// and the charter's key-notice has passed from the approval without a
// veto by the key in force (see Patient); it then supersedes the old key:
// documents the old key signed before the replacement took effect still
// count, later ones do not. An erasure needs a key in force for at least
// the key notice (Service.Settled). When
// the key is lost or stolen, the registrar attests the new key as
// compromised-superseding: then nothing the old keys signed counts, ever
// (attesting an old key again does not revive it), and the patient's
// consent stands withdrawn until they sign a contract with the new key (a
// thief cannot widen access, and the patient loses nothing they cannot
// restore at the same visit). A plain rotation trusts the old key's
// documents dated before it: whoever may hold the old key, rotate it as
// compromised.
//
// # Delegates
//
// A delegate (a parent, a guardian, an attorney) holds a key of their
// own, named in a Delegation with a scope (consent, view, records,
// erasure), a not-before and an expiry. They sign contracts, tokens and
// revocations (consent scope) and erasures (erasure scope) with it, each
// naming the delegation it is signed under (Document.Via), so the ledger
// entry of every delegated act names its delegate, and the patient's view
// shows it. Such a document counts when the delegation was in force for
// its scope at its issue time; what a delegate signed in its term stays
// after the term ends, as a patient's documents stay after a plain key
// rotation, but nothing signed out of scope, before the term, after it or
// after a revocation counts, and a submission is refused unless the
// delegation is still in force as it arrives. A delegate's token lasts no
// longer than the delegation and ends with its revocation; a delegate's
// erasure needs the delegation in force for the key notice, as a key's
// does. View, records and erasure are also requests the patient's own
// service answers (federation/patient): Patient.MayAct and
// Service.AuthenticateDelegate say whether a key may make one, and under
// which delegation, which the request's access entry names (Ref). A
// delegate cannot name another delegate (no sub-delegation:
// whom the patient trusts is the patient's choice, or two registrars'),
// veto a key replacement, or revoke a delegation but their own (they may
// step down: a Revocation of their delegation, under it). The patient
// revokes a delegation like a contract. For a patient who cannot sign
// (a child with no key, an adult who lacks capacity) a registrar makes
// the delegation (Service.Delegate) and a second staff member approves
// it, as a key replacement; when the patient has a key in force it also
// waits the key notice, in which that key can veto it. A registrar ends
// a delegation the same way (Service.EndDelegation: a court ending a
// guardianship): a Revocation a member centre signs, naming the
// registrar and the evidence, that counts from a second staff member's
// approval; what the delegate signed before it stands, and a registrar
// ends no contract or token. A key reported
// lost or stolen voids the delegations it signed and all they let their
// delegates sign.
//
// # Deciding
//
// Decide is a pure function of the patient's standing (the newest valid
// contract, and whether it was revoked), the charter's policy and the
// request; every holder holding the same documents decides alike. Among
// the provisions that apply at one level a deny overrides a permit, and an
// applying nested provision overrides its parent; when none applies, the
// base policy decides. A patient with no contract falls under the
// charter's default: opt-in permits treatment and denies research (which
// always needs the patient's own consent); opt-out denies both. A revoked
// contract leaves everything denied. Emergency access is allowed when the
// charter allows it, unless a deny provision naming the emergency purpose
// applies; it needs a coded reason (free text would carry names and
// clinical details onto ledgers), is recorded at start and stop, and is
// notified to the patient and the holder's privacy officer through a feed
// (Service.Notifications). A token permits what is in its scope for its
// grantee whatever the contract says (the patient chose so); each use is
// one answer by one holder and is recorded on that holder's ledger before
// the permit is returned, so a single-use token lets its grantee query
// once at each holder.
//
// # Propagation, leases and freshness
//
// A document submitted at any member is checked, appended to that
// member's ledger and pushed, with the attestations it rests on, to every
// centre the directory lists as holding the patient's records, and to as
// many members of the patient's consent set as make a majority of it: the
// charter's Policy.ConsentReplicas members that rank first by a hash of the
// patient's pseudonym and the member (rendezvous hashing), every member in
// a charter that names no size; those that fail are replaced by the next
// in the set. Holders outside the set are told, not counted. Each verifies
// it and appends it to its own ledger before it answers. Every majority
// below is a majority of the patient's consent set, so that an operation
// costs the same in a federation of ten members or ten thousand.
//
// Consent does not rest on the directory being complete, nor on a push
// arriving. A centre decides for a patient only while it holds a lease
// on the patient's state from each member of a majority of the
// federation (itself included); without one it reads the state from a
// majority first, taking new leases (see fresh). A member that granted a
// lease sends every document it is pushed about that patient to the
// leaseholder before it answers the push (opNotify), and when it cannot
// reach the leaseholder it answers with how long until that lease runs
// out. Submit returns once a majority has answered and those waits have
// passed: Confirmed then means that a majority holds the document and
// that every centre holding a lease from any of them has it or no longer
// holds the lease. Since the majority the document reached and the
// majority a leaseholder's leases come from share a member, no centre
// decides on a state without a confirmed document: a holder the directory
// does not list, or one a push did not reach, either was told or has to
// read the state again before it releases anything, and one cut off from
// most members refuses (ErrStale). So a revocation confirmed is honoured
// nowhere; confirming it takes about one round trip when every
// leaseholder is reachable, and at most the lease term (DefaultLease)
// more when one is not (Delivery.Waited). A document that reached no
// majority (Confirmed false) may be missed: the CLI says so, and
// submitting it again is harmless.
//
// # Erasure
//
// An Erasure is delivered and confirmed like a revocation, and what a
// centre holding the patient's records does with it is erase them
// (Options.Erase): when it accepts it, whoever sent it; before any
// decision about the patient, until that succeeds (nothing erased is
// released); after a restart, for every erasure on its ledger; and from
// the erasure feed, which every centre reads, every two leases, from the
// next few members in turn round the federation (opErasures), so that a
// holder the directory does not list, that holds no lease and was not among
// the majority, still erases once it has read from a member that has it.
//
// Leases are spans on the monotonic clock, counted by the holder from
// before it asked and by the member from when it granted, so that the
// holder's runs out first and no clock jump lengthens one. A lease in its
// last third is renewed in the background. A push a leaseholder refused
// voids its lease. A restarted centre does not know the leases its
// earlier process granted; a lease file (Options.LeaseFile) says how far
// they could reach, and until then it is counted in a document's majority
// only when the other members fall short, its answer then waited out.
package consent
