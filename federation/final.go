package federation

import (
	"encoding/base64"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// ErrNotFinal is returned for a checkpoint that is not signed by its log
// and cosigned by the charter's witness quorum.
var ErrNotFinal = node.E(node.Invalid, "checkpoint not final")

// OpenFinal checks that msg is a final checkpoint of member m's log: a
// note signed by m's log key and cosigned by enough of the log's witness
// set (Charter.Witnesses) that, with m, they make the charter's witness
// quorum. Cosignatures by members outside the set do not count. Proofs against it then
// stand for the federation, not only for m.
func OpenFinal(c Charter, m Member, msg []byte) (ledger.Checkpoint, error) {
	origin := ledger.Origin(c.Federation, m.Name)
	pub, err := m.PublicKey()
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	// The log's own signature is checked by note.Open; the cosignatures
	// are left unverified by it, and checked here only until the quorum
	// is reached: a dozen cosignatures cost a dozen signature checks.
	logVerifier, err := ledger.NewVerifier(origin, pub)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	n, err := note.Open(msg, note.VerifierList(logVerifier))
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %v", ErrNotFinal, err)
	}
	cp, err := ledger.ParseCheckpoint(n.Text)
	if err != nil || cp.Origin != origin {
		return ledger.Checkpoint{}, fmt.Errorf("%w: not a checkpoint of %s's log", ErrNotFinal, m.Name)
	}
	inSet := map[peer.ID]Member{}
	for _, w := range c.Witnesses(m.Name) {
		inSet[w.ID] = w
	}
	signers := 1
	counted := map[string]bool{}
	for _, sig := range n.UnverifiedSigs {
		if signers >= c.Policy.WitnessQuorum {
			break
		}
		id, err := peer.Decode(sig.Name)
		// One spelling per member (a peer ID has several), counted once.
		if err != nil || id.String() != sig.Name || id == m.ID || counted[sig.Name] {
			continue
		}
		w, ok := inSet[id]
		if !ok {
			continue
		}
		cv, err := NewCosignatureVerifier(w)
		if err != nil || cv.KeyHash() != sig.Hash {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig.Base64)
		if err != nil || len(raw) < 4 || !cv.Verify([]byte(n.Text), raw[4:]) {
			continue
		}
		counted[sig.Name] = true
		signers++
	}
	if signers < c.Policy.WitnessQuorum {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %d valid signatures of the %d the charter wants", ErrNotFinal, signers, c.Policy.WitnessQuorum)
	}
	return cp, nil
}
