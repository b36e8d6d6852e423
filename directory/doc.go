// Package directory is the Patient Directory: a private Kademlia DHT
// (go-libp2p-kad-dht, protocol /medfed/kad/1.0.0, every centre a server)
// that maps each patient pseudonym to every centre holding records about
// the patient, without a central owner.
//
// A centre holding records about a patient announces itself as a provider
// of the patient's directory key, CIDv1(raw, sha2-256("medfed/directory/v1"
// || federation || pseudonym)): a provider record goes to the members
// closest to the key. Every centre knows the members from the charter, so
// Announce places each record at the Replication (5) members closest to
// its key directly, grouped by member, from a keystore on disk: every
// announcement survives restarts, is read back at its replicas, and is
// reprovided before it expires. An announcement costs the same whatever
// the federation's size.
// Withdraw takes announcements back over /medfed/directory/withdraw/1,
// which Kademlia lacks.
//
// Membership is the charter's, so every centre knows every member: a
// lookup is one hop to the members closest to the key (Lookup), not
// Kademlia's walk (LookupWalk, kept to compare and cross-check). Routing
// tables, queries, stored records and lookup results admit current
// members only; the node's connection gater keeps everyone else out
// before that.
//
// The provider records this centre stores for others, its keystore and
// the time of its last reprovide live in one SQLite file through a
// go-datastore whose writes are grouped in the background (see store).
//
// Nothing here sees an identifier: keys are hashes of pseudonyms.
package directory
