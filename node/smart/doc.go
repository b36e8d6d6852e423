// Package smart is a centre's OAuth 2.0 authorization server for SMART
// Backend Services: a hospital's EHR, registered once with its public
// keys (medfed client add), trades a signed JWT (RFC 7523, the SMART
// "client-confidential-asymmetric" profile) for a short-lived access
// token that node/api accepts on its /fhir routes.
//
// # Clients
//
// A client is registered with a JSON Web Key Set of public keys (RSA of
// at least 2048 bits for RS384, or EC P-384 for ES384, each with a kid),
// the system scopes it may ask for and the staff roles it may act for.
// The registrations live in clients.db in the centre's data directory.
// No ledger entry vouches for them, so, like staff.db, the store vouches
// for its own rows: each carries an HMAC-SHA256 of all its columns under
// the centre's row key for the file (centre.RowKey), and a seal, the HMAC
// of every row's ID and MAC, covers the table. A row written or changed
// by someone who holds the file but not the key, or one put back as it
// was before a revocation, authenticates no one, is reported to the
// centre's log and named by the full check (CheckClients).
//
// # Assertions
//
// A token request is authenticated by its client_assertion alone: a JWS
// signed with RS384 or ES384 (no other algorithm, "none" and the HMAC
// ones above all, is even parsed) by a key of the client's set, whose iss
// and sub name the client, whose aud is this token endpoint and whose exp
// is at most five minutes ahead. As soon as that holds, before the scope
// or the person it acts for is looked at, its jti is spent: recorded, in
// the same SQLite file and in one transaction with the check that it is
// new, so that a captured assertion cannot be played again, not even
// after the centre restarts, and two requests racing with one get one
// answer. SMART Backend Services asks that a jti never have been seen
// before, so a request refused after that point (for its scope, its IUA
// claims, too many live tokens) spends it too: the client signs a new
// assertion to try again, and whoever copied the refused one cannot send
// it again with other parameters. Only a request refused before its
// assertion is verified (for its grant_type or client_assertion_type, a
// parameter given twice, or an assertion that does not check out) spends
// nothing.
//
// A jti is kept until an hour after its assertion expired. Pruning goes
// by the centre's clock, which may jump ahead and back (node/clock does
// in the fault tests); what keeps a pruned jti from being replayed then
// is a floor, the latest expiry pruned, below which no assertion is
// taken whatever the clock says (the comment on consume, in token.go,
// tells why). The
// jti rows and the floor carry MACs, for the full check; the jti rows
// are not sealed, as they come and go with every request: deleting one
// is a change only someone with write access to the file can make.
//
// # The acting person
//
// An assertion may name the staff member the EHR acts for, in IHE IUA's
// extensions.ihe_iua claims: their medfed staff ID, their role and a
// purpose of use. The staff member must be live at this centre with that
// role, the client registered for the role, and the purpose one the role
// may have: HRESCH (research) for researchers, TREAT (treatment) for
// clinicians and registrars, HOPERAT (the centre's operations: reviewing
// its audit trail) for administrators and privacy officers. ETREAT
// (emergency treatment) is refused: break-glass needs a coded reason, goes
// on the ledger and is stopped when done, which is POST /v1/emergency
// with a staff token, and no /fhir route would take such a token. Without
// IUA claims, a token acts for no person: node/api decides what, if
// anything, such a token may reach.
//
// # Access tokens
//
// Access tokens are opaque ("mfa_" and 32 random bytes) and live five
// minutes unless configured otherwise. Only their SHA-256 is kept, in
// memory, with what they allow (Grant): they do not survive a restart of
// the centre, which costs a client one more assertion. A client holds at
// most MaxLiveTokens at once. Check looks at the client's registration,
// and the staff member's credential, on each use: a revocation counts at
// once, not when the token expires.
//
// No error and no log line carries a token, an assertion, or anything
// that names a patient; a refusal repeats what the caller sent (a scope,
// the host it asked) only when it cannot be a token or an assertion put
// in the wrong field.
package smart
