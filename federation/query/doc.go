// Package query is the cross-centre query, /medfed/query/1 (a stream per
// request) and /medfed/query/2 (the same requests on streams kept open
// between them): a clinician's centre asks every centre holding a
// patient's records, in parallel, with a request it signs; each holder
// checks it, decides by the patient's consent, writes the access to its
// ledger, and only then answers with the records consent permits, each
// proven in its witnessed ledger and its payload sealed to the
// requester.
//
// A holder refuses, without deciding anything (so without an access
// entry), a request that is not a member's, not signed by the centre
// sending it, more than MaxSkew from its clock, or seen before (nonces
// are kept for 2×MaxSkew and read back from the ledger's access entries
// at start, so a replay across a restart is refused too). Every request it
// decides is on its ledger before the answer is sent, permitted or not.
// Records newer than the holder's latest final checkpoint cannot be
// proven yet: they are counted as pending, not sent. The others are proven
// in the final checkpoint the holder pinned, up to a second old, while it
// covers every one of them (the latest otherwise): a holder's ledger grows
// with every access, and each requester verifies a checkpoint's
// cosignatures once, not with nearly every answer.
//
// The requester checks every answer: the holder's signature, that it
// answers this request (nonce), the final checkpoint (the holder's
// signature and the charter's witness quorum of cosignatures), each
// entry's inclusion proof against it, that each entry is a record of this
// patient in a class asked for, and each payload against the keyed
// commitment in its entry. One failure rejects the holder's whole answer,
// which is reported with the holder's name, as are holders that are down,
// too slow or refuse. See seal.go for the payload encryption.
package query
