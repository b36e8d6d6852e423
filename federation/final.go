package federation

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/node/ledger"
)

// ErrNotFinal is returned for a checkpoint that is not signed by its log
// and cosigned by the charter's witness quorum.
var ErrNotFinal = errors.New("checkpoint not final")

// OpenFinal checks that msg is a final checkpoint of member m's log: a
// note signed by m's log key and cosigned by enough other members that,
// with m, they make the charter's witness quorum. Proofs against it then
// stand for the federation, not only for m.
func OpenFinal(c Charter, m Member, msg []byte) (ledger.Checkpoint, error) {
	origin := ledger.Origin(c.Federation, m.Name)
	pub, err := m.PublicKey()
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	sc, err := ledger.OpenCheckpoint(msg, origin, pub)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %v", ErrNotFinal, err)
	}
	verifiers := []note.Verifier{}
	logVerifier, err := ledger.NewVerifier(origin, pub)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	verifiers = append(verifiers, logVerifier)
	for _, w := range c.Members {
		if w.ID == m.ID {
			continue
		}
		cv, err := NewCosignatureVerifier(w)
		if err != nil {
			return ledger.Checkpoint{}, err
		}
		verifiers = append(verifiers, cv)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %v", ErrNotFinal, err)
	}
	cosigners := map[string]bool{}
	for _, s := range n.Sigs {
		if s.Name != origin {
			cosigners[s.Name] = true
		}
	}
	if 1+len(cosigners) < c.Policy.WitnessQuorum {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %d of the %d signatures the charter wants", ErrNotFinal, 1+len(cosigners), c.Policy.WitnessQuorum)
	}
	return sc.Checkpoint, nil
}
