// Package ledger is a centre's tamper-evident ledger: an append-only RFC 6962
// Merkle log of typed entries, stored in SQLite, whose checkpoints the centre
// signs as C2SP signed notes.
//
// Every interaction, consent, access and erasure a centre handles becomes an
// Entry. Entries name patients only by pseudonym and hold no clinical
// payload: a record entry carries a keyed commitment to a payload stored off
// the ledger, so erasing the payload leaves every proof valid.
//
// Appends are group-committed: concurrent callers share one SQLite
// transaction (WAL, synchronous=FULL), and Append returns only once the
// caller's entries are durable. A checkpoint is signed only if it extends
// the last one signed, so the centre never signs two histories. Another
// centre needs only the centre's public key to check a checkpoint
// (OpenCheckpoint), an inclusion proof (VerifyInclusion) or a consistency
// proof (VerifyConsistency); Verify rechecks a whole ledger file offline.
//
// The ledger trusts its caller to be the only process writing the file;
// package node/centre holds the data directory's lock.
package ledger
