// Package pseudonym turns patient identifiers into federation pseudonyms
// that no centre can reverse alone.
//
// A pseudonym is H(domain || federation || OPRF_k(identifier)), where OPRF
// is the verifiable 2HashDH OPRF of RFC 9497 over ristretto255-SHA512 and
// the key k is Shamir-shared t-of-n among the federation's key committee
// (its founders, to begin with). A centre normalises the identifier (Rules), blinds it, and asks t
// share holders over /medfed/oprf/1 to evaluate the blinded element with
// their shares; each answer carries an RFC 9497 batch DLEQ proof against the
// holder's public share, so a wrong answer is detected and its holder
// named. The answers combine by point addition (each holder folds its
// Lagrange coefficient into its share) and unblind to k·H(identifier). No
// holder sees an identifier, and fewer than t holders cannot compute a
// pseudonym. Every holder counts and rate-limits the evaluations it performs
// per requesting centre and records each batch's count, never its elements.
//
// Nobody need ever hold k. The founding committee generates it with a
// distributed key generation (NewDKG; Gennaro, Jarecki, Krawczyk and
// Rabin's, six broadcast rounds with complaints), in which every member
// deals a secret and k is the sum of the secrets of those that dealt
// correctly; a faulty member is disqualified, or its secret rebuilt in the
// open, and cannot bias k. Resharing (NewReshare; Desmedt and Jajodia's
// redistribution with Feldman-verified subshares, three rounds) moves the
// same k to a new committee and threshold: any t holders deal their shares
// afresh, and a dealing that would change k is refused, so the pseudonyms
// of every patient stay what they were. A federation whose key one centre
// dealt (Deal, the founding ceremony before the DKG) migrates by
// resharing. Both ceremonies are state machines that take and return
// bytes; both end in the Public and Share a dealt key has. Ceremonies
// carries them between centres over /medfed/oprf-ceremony/1 (transport.go),
// round by round, each run under an ID that binds what it is about, and
// checks at the end that the participants stepped on the same messages,
// the broadcast the state machines need.
//
// A client starts each request's evaluating sets at a random holder, so
// that evaluations spread over the whole committee.
//
// The arithmetic uses github.com/gtank/ristretto255 (on
// filippo.io/edwards25519); github.com/cloudflare/circl's RFC 9497
// implementation is the reference the tests check it against.
package pseudonym
