// Package records is a centre's off-ledger store of clinical payloads
// (documents, lab results, images).
//
// Payloads never go on the ledger: the ledger is replicated and append-only,
// and a patient may ask for their data to be erased. The ledger holds only a
// [Commitment] to each payload; the payload itself lives here, in one SQLite
// file (records.db) next to the centre's key file (records.key).
//
// # Keyed commitments
//
// A Commitment is HMAC-SHA256 of the payload keyed by a per-payload random
// [Opening]. A plain hash would let anyone who can read the ledger confirm a
// guess: clinical payloads are often low-entropy ("HIV test: negative"), so
// hashing every plausible value and comparing would reveal them. Without the
// Opening the commitment says nothing about the payload. The Opening is kept
// encrypted with the payload and handed to a recipient together with it, so
// the recipient can check what it received against the ledger.
//
// # Per-payload data keys
//
// Each payload is sealed with AES-256-GCM under its own random data key, and
// that data key is sealed ("wrapped") with AES-256-GCM under the centre key
// from records.key. The payload ID is the additional authenticated data of
// both seals, so a ciphertext or wrapped key copied onto another row does not
// open. Two consequences matter:
//
//   - Erasure is crypto-shredding: destroying one 60-byte wrapped key makes
//     the payload unreadable, even if a copy of its ciphertext survives
//     somewhere, and even to someone holding the centre key.
//   - A copy of records.db alone (a misplaced backup, a stolen disk image
//     without the key file) reveals no payload.
//
// Every seal draws a fresh random 96-bit GCM nonce. Under the centre key that
// is one nonce per payload, and GCM's limit of 2^32 messages per key with
// random nonces is far beyond any centre's volume.
//
// # The key file
//
// records.key holds 32 random bytes. Open creates it on first use with mode
// 0600, writing a temporary file, syncing it and linking it into place, so
// there is never a half-written key and two processes opening a fresh store
// at once cannot replace each other's key. Open refuses a key file that
// group or others can access, and refuses to create a new key when
// records.db already exists: a new key could not open any existing payload.
// Losing records.key loses every payload; back it up, separately from the
// database.
//
// # What erasure guarantees, and what it does not
//
// When [Store.Erase] returns nil, the ciphertext and the wrapped data key
// are gone from records.db and its write-ahead log as SQLite sees them:
// PRAGMA secure_delete overwrites deleted content with zeros, and a
// TRUNCATE checkpoint copies the zeroed pages into the database file and
// empties the log, which would otherwise keep old copies of the pages. A
// tombstone (ID and erasure time) remains so that [Store.Get] can report
// [ErrErased], an erasure, rather than an unknown ID.
//
// Erasure does not reach:
//
//   - Filesystem and device remnants: journaling and copy-on-write
//     filesystems, snapshots, SSD wear levelling and remapped blocks may keep
//     old blocks that SQLite has overwritten or truncated. Full-disk
//     encryption is the defence there.
//   - Backups: a backup of records.db taken before the erasure, together with
//     records.key, still decrypts the payload. Backups must expire, or be
//     kept under their own key that is destroyed on schedule.
//   - Copies already sent to other centres or patients, and process memory.
//
// The Commitment on the ledger stays, and every ledger proof over it stays
// valid; with the Opening destroyed it can no longer be opened.
package records
