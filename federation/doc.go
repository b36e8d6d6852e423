// Package federation holds a medfed federation's charter, the signed,
// versioned list of member centres and the federation's policy, and the
// join requests of centres that want to become members.
//
// A charter version is a Charter whose canonical Text members sign as a
// C2SP signed note (golang.org/x/mod/sumdb/note). Each signature's key name
// is the signer's libp2p peer ID, and members must use Ed25519 peer IDs,
// whose key is embedded in the ID: a charter alone is enough to check every
// signature on the next one, with no key distribution besides the chain
// itself. ParseCharter accepts only the canonical text, so a version has one
// hash, and each version records the hash of the one before.
//
// The founders all sign version 1 (VerifyFounding): a federation starts with
// the consent of every centre in it. After that, version n+1 needs the
// signatures of Policy.AdmissionQuorum of version n's council (VerifyNext),
// whether it adds a member, removes one or changes the policy, the council
// or the pseudonym key; a charter that names no council has every member on
// it. The quorum and council of the version being replaced count, not
// those of the draft, so a minority cannot lower the bar and pass a change
// in one step. Drafts are derived from the current version alone
// (Charter.WithMember, WithoutMember, WithPolicy, WithCouncil, WithOPRF),
// so council members who approve the same change independently sign
// byte-identical text and their signatures merge into one note (Sign,
// Merge, Approvals). Versions after the first are written as deltas over
// the version before (delta.go), so that a federation of thousands of
// members changes its charter with notes the size of the change.
//
// The charter also bounds what one operation costs whatever the number of
// members (sets.go): each log's witness set (Charter.Witnesses) and, read
// by package consent, each patient's consent set.
//
// A signature by anyone who is not on the council of the version being
// replaced is an error, not something to skip. It cannot count towards a quorum, so
// ignoring it would be harmless to the check, but a note that carries it
// was put together wrongly, for instance with the newcomer signing its own
// admission, or by someone outside the federation, and a centre that stored
// and forwarded it would spread a note other verifiers might read
// differently. Refusing it keeps one rule: every signature on a charter
// note is a vote that counts.
//
// A centre keeps the chain of charter notes on its ledger and checks it
// from version 1 (VerifyChain). A centre that wants to join makes a
// JoinRequest offline and signs it with its key (SignRequest); OpenRequest
// proves that the requester holds the key of the peer ID it asks to be
// admitted with. Founders send one to the first founder, who drafts
// version 1 from them.
//
// This part of the package is data and signatures only, with no I/O. The
// protocol parts, the connection gater that refuses peers the current
// charter does not list and the exchange that gathers approvals and spreads
// new versions over libp2p, live in other files of this package.
package federation
