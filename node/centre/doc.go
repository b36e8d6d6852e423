// Package node assembles one medfed centre: its identity, ledger, off-ledger
// records and, in later versions, its libp2p host and services.
//
// A node is described by a [Config]; [DefaultConfig] fills in everything but
// the centre's name, its federation and its data directory, and
// [Config.Validate] names every field that is wrong. Reading configuration
// from files, the environment or flags is the command's job, not this
// package's.
package centre
