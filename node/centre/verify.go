package centre

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// ErrNotInCharter is returned when the charter names no centre whose log
// the ledger is.
var ErrNotInCharter = node.E(node.Invalid, "ledger of no centre the charter lists")

// ErrUnwitnessed is returned for a ledger with signed checkpoints but no
// final one in a federation with witnesses: its own signatures prove
// nothing to anyone else (a centre that rewrote its ledger may have
// dropped what its witnesses cosigned).
var ErrUnwitnessed = node.E(node.Conflict, "no checkpoint cosigned by the witnesses")

// VerifyPublic checks the ledger file at path with public material only:
// the federation's charter chain (version 1 first, each version checked
// against the one before). The centre's key is the charter's, found by
// the ledger's origin, never the data directory's; every final
// checkpoint's cosignatures are checked against the witnesses' keys under
// some version of the charter. So a copy of the ledger with no private key
// beside it can be audited, and a centre that rewrote its ledger and
// signed it again is caught: its witnesses cosigned the old roots.
func VerifyPublic(ctx context.Context, path string, chain [][]byte) (ledger.Report, error) {
	versions, err := federation.VerifyVersions(chain)
	if err != nil {
		return ledger.Report{}, err
	}
	slices.Reverse(versions) // the newest first
	var (
		name   string
		member federation.Member
	)
	keyOf := func(origin string) (ed25519.PublicKey, error) {
		m, ok := memberOf(versions, origin)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNotInCharter, origin)
		}
		name, member = m.Name, m
		return m.PublicKey()
	}
	final := func(msg []byte) (ledger.Checkpoint, error) {
		var first error
		for _, v := range versions {
			m, ok := v.MemberByName(name)
			if !ok || m.ID != member.ID {
				continue
			}
			cp, err := federation.OpenFinal(v.Charter, m, msg)
			if err == nil {
				return cp, nil
			}
			if first == nil {
				first = err
			}
		}
		if first == nil {
			first = errors.New("no version of the charter lists the centre")
		}
		return ledger.Checkpoint{}, first
	}
	rep, err := ledger.VerifyWith(ctx, path, ledger.Trust{KeyOf: keyOf, Final: final})
	if err == nil && rep.Checkpoints > 0 && rep.Final == 0 && versions[0].Policy.WitnessQuorum > 1 {
		err = fmt.Errorf("%w: %d signed checkpoint(s), none final; ask a witness for the log's latest cosigned checkpoint", ErrUnwitnessed, rep.Checkpoints)
	}
	return rep, err
}

// memberOf returns the member whose log is origin, under the first of
// versions that lists one.
func memberOf(versions []federation.Signed, origin string) (federation.Member, bool) {
	for _, v := range versions {
		for _, m := range v.Members {
			if ledger.Origin(v.Federation, m.Name) == origin {
				return m, true
			}
		}
	}
	return federation.Member{}, false
}
