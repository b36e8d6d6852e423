// Package atna sends a centre's audit trail to an audit record
// repository, as IHE ATNA's Record Audit Event (ITI-20) does: every
// access to a patient's records (emergency access and directory lookups
// among them), every consent document and revocation accepted, every
// payload erased and every record transferred, as it reaches the centre's
// ledger, becomes one syslog message (RFC 5424) sent over TLS (RFC 5425)
// to a collector such as rsyslog or a SIEM.
//
// # Messages
//
// Each message carries one ledger entry, in one of two formats: the
// DICOM audit message (PS3.15 A.5, the XML RFC 3881 began), which ATNA
// repositories read, or a FHIR R4 AuditEvent in JSON, which package
// node/api builds (BALP's shape for accesses) and the command passes in
// (see FHIR). Its structured data names the entry by the ledger's origin
// and the entry's index, [medfed@32473 ledger="…" index="…"]: a stable,
// unique id by which a collector can drop a message it already has. A
// message names the patient by pseudonym only, as the ledger does; no
// national identifier, name or clinical payload is ever in one, or in
// this package's logs.
//
// # The outbox
//
// The ledger is durable already, and appended in order, so the outbox is
// a cursor: the index of the next entry to send, kept in a file of the
// exporter's directory (cursor.go says why a file and not a table). The
// exporter reads the entries from the cursor on, sends those of the
// audited kinds, and moves the cursor past them only once it knows they
// were written to a connection that is still open: the collector never
// writes on a syslog connection, so a read that ends (rather than timing
// out) before or right after a batch is written means the collector
// closed it, and the batch is sent again on a new connection. A collector
// that is down is retried with a backoff, capped; the entries wait in the
// ledger meanwhile, and nothing is lost.
//
// Delivery is exactly once in the normal sequence: the collector stopped
// gracefully and started again, while the exporter waits or retries. In
// the worst race, a collector that dies having read a batch but before
// the exporter's read after it can see the close, the batch is sent
// twice: at least once, then, and the structured data's id lets the
// collector deduplicate. A cursor that could not be written after a
// delivery is held in memory and written again before the next batch; a
// process that dies in between sends that batch again when it restarts.
package atna
