// Package centre assembles one medfed centre and offers its operations as
// one typed Go API.
//
// A [Centre] is the centre at rest: its identity, ledger and off-ledger
// records under its data directory's lock, usable offline (founding,
// joining, verifying). [Start] opens it and builds a running [Node] on top:
// the libp2p host (the only one in medfed) and the federation's services
// on it (membership and witnessing, the directory, pseudonyms, consent,
// queries, the patient's requests), each given small interfaces of what
// it uses.
//
// The Node's operations take and return typed values (pseudonyms, staff
// IDs, roles and purposes, outcomes) and return errors that wrap the kinds
// of package node. They know nothing of HTTP, JSON or sockets: the
// adapters at the edge (node/api, node/admin) parse their wire formats
// into these types and write the answers in their own shapes.
//
// A node is described by a [Config]; [DefaultConfig] fills in everything but
// the centre's name, its federation and its data directory, and
// [Config.Validate] names every field that is wrong. Reading configuration
// from files, the environment or flags is the command's job, not this
// package's.
package centre
