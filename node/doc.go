// Package node is the ground floor of a medfed node: the vocabulary every
// other package shares. Its subpackages beside it are the rest of the
// ground floor (node/enum, node/ledger, node/records, node/wire), the centre that
// assembles the protocols above them (node/centre), and the adapters at
// its edge (node/api, node/admin).
//
// This package holds the kinds of error. Every package's errors wrap one
// of a small set of kinds ([Invalid], [Unauthenticated], [Forbidden],
// [NotFound], [Conflict], [Unavailable], and [Internal] for the rest), so
// that an adapter maps a kind to its own answer in one place (an HTTP
// status, an exit code) and an error that crosses a process boundary
// keeps its kind. It imports nothing of medfed's.
package node
