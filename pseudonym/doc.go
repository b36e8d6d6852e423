// Package pseudonym turns patient identifiers into federation pseudonyms
// that no centre can reverse alone.
//
// A pseudonym is H(domain || federation || OPRF_k(identifier)), where OPRF
// is the verifiable 2HashDH OPRF of RFC 9497 over ristretto255-SHA512 and
// the key k is Shamir-shared t-of-n among the federation's founding
// centres. A centre normalises the identifier (Rules), blinds it, and asks t
// share holders over /medfed/oprf/1 to evaluate the blinded element with
// their shares; each answer carries an RFC 9497 batch DLEQ proof against the
// holder's public share, so a wrong answer is detected and its holder
// named. The answers combine by point addition (each holder folds its
// Lagrange coefficient into its share) and unblind to k·H(identifier). No
// holder sees an identifier, and fewer than t holders cannot compute a
// pseudonym. Every holder counts and rate-limits the evaluations it performs
// per requesting centre and records each batch's count, never its elements.
//
// The arithmetic uses github.com/gtank/ristretto255 (on
// filippo.io/edwards25519); github.com/cloudflare/circl's RFC 9497
// implementation is the reference the tests check it against.
package pseudonym
