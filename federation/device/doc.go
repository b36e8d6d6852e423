// Package device lets a patient's own devices contribute readings to a
// centre: a glucose meter, a heart-rate monitor, a blood-pressure
// monitor, a pulse oximeter, a scale, an app on the patient's phone.
//
// A device has an Ed25519 key of its own. The patient registers it at a
// centre with a statement signed by the key a member attested for them
// (Registration: the device's key, its type as a code, the data classes
// it may contribute, from when until when, a nonce), and ends it with
// another (Revocation). The centre checks that the key speaks for the
// patient (federation/consent's Authenticate, as for the patient's own
// requests), appends a device entry to its ledger and keeps the
// statement in its store (devices.db: each row MACed, the table sealed).
// The ledger holds the device's ID, never its key (ID: a hash of it),
// the classes, the term and the statement's hash: every reading a
// device adds is a record whose author is the device (ledger.AuthorDevice)
// and whose authority is a device entry before it on the same ledger,
// with no revocation entry between.
//
// The device posts batches of readings signed with its key (Batch: the
// patient's pseudonym, a nonce, the time, up to MaxReadings readings of
// up to MaxReading bytes each). The readings are opaque here: the API
// reads each as a FHIR Observation and says which data class its code
// maps to and when it was taken (Reading). Registry.Take refuses, and
// stores nothing for, a batch that is forged, addressed to another
// centre, stale or replayed, from a device not registered for the
// patient here, revoked or outside its term, of a class not registered,
// or past the device's rate; otherwise its readings become records, in
// one atomic append.
//
// A patient adds their own notes the same way (Note, Registry.AddNote):
// one Observation signed by the patient's own key, a passkey in the
// portal, which the centre checks speaks for them; stored as a record
// whose author is the patient (ledger.AuthorPatient), named by an ID of
// the key (NoteAuthor), each note once, at a device's rate.
//
// Why a package of its own, on the protocols floor: the statements are a
// patient's signed documents, like federation/patient's requests, and
// the registry depends only on small interfaces of the ledger and of
// consent's authentication; node/centre assembles it, node/api reads the
// Observations. Nothing here crosses between centres: readings reach
// other centres through the federated query, released by consent like
// any record.
package device
