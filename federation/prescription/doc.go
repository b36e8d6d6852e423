// Package prescription is the prescription that cannot be filled twice,
// /medfed/prescription/1: a prescriber's centre issues it on its own
// ledger, and a dispensing member (a pharmacy) claims each supply from
// that centre, whose ledger alone says what was dispensed.
//
// A prescription is a record of data class "prescription" at the issuing
// centre: its payload, encrypted in the record store like any other, is
// the prescription's canonical content (Prescription: the medication as a
// dm+d or SNOMED CT code, the quantity, the repeats, the validity period,
// the dosage, the prescriber's staff ID, the issuer), and the record's
// ledger entry commits to it. So the query, consent, the patient's own
// view and FHIR release it as they release any record. The ledger never
// holds a medication code: a dispense entry and a cancellation entry name
// the prescription's index, a supply number, members, staff IDs and codes
// (node/ledger's Dispense and Cancellation).
//
// At issue the centre makes a random 16-byte secret and gives it to the
// patient inside the prescription's token (Token: the issuer's name, the
// index, the secret; printed as text or a barcode); only the secret's
// SHA-256 is in the payload. A member that guesses an index therefore
// cannot dispense, and learns nothing: a claim whose secret does not match
// is refused exactly as a claim of an index that holds no prescription.
//
// The claim is a request the pharmacy signs (federation, pharmacy,
// issuer, pharmacist, index, secret, nonce, time, like a query's), sent to
// the issuing centre, which refuses, before anything else, a non-member
// (at the stream), a member over the charter's member rate, a bad
// signature, and a claim for another centre or federation. Then, holding
// the prescription's own lock (claims of different prescriptions do not
// wait for each other; a cancellation takes the same lock), it reads the
// prescription's dispense and cancellation entries from its ledger and
// checks the secret. A supply already dispensed for the claim's nonce is
// confirmed again, however late the claim comes: the pharmacy's answer
// was lost. Otherwise it refuses a nonce it has seen (nonces are read
// back from its recent dispense entries at start, so a replay across a
// restart is refused too), a claim more than MaxSkew from its clock, and
// a prescription cancelled, out of its validity or with no supply left;
// each of these refusals settles the claim (settledBase: it is never
// dispensed). Else it appends the dispense entry and only then answers
// with a confirmation it signs (the supply number, the dispense entry's
// index, the prescription's content for the pharmacist). Nothing about a
// prescription is kept in memory between claims: the ledger is read under
// the lock each time, so a restart forgets nothing and two pharmacies
// claiming the last supply at the same moment get exactly one yes.
//
// The pharmacy checks the confirmation (the issuer's signature, that it
// answers its claim, that the content is the prescription the secret
// opens) and records the dispense on its own ledger, naming the issuer's
// entry. A claim whose every answer was lost stays pending on its disk
// (PendingClaims) and is sent again before the next claim of the same
// prescription and token, until it is confirmed or settled. A refusal carries the error's kind in its status byte, so the
// pharmacy's operator sees a conflict ("every supply ... is dispensed") as
// a conflict, not as a failure of the network.
package prescription
