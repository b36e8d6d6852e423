package directory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-base32"
	mh "github.com/multiformats/go-multihash"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// WithdrawProtocolID is the withdrawal protocol. Kademlia has no way to
// take a provider record back before it expires, so a centre that stops
// holding a patient's records tells the members storing its announcement
// to drop it: one request of key digests, answered with how many records
// were dropped. A member drops only records that name the sender.
const WithdrawProtocolID = "/medfed/directory/withdraw/1"

const (
	opWithdraw     byte = 1
	maxWithdraw         = 65536 // digests per request: 2 MiB
	maxReason           = 256
	withdrawTimout      = 30 * time.Second
)

// ErrWithdrawRefused is returned when a member refuses a withdrawal.
var ErrWithdrawRefused = node.E(node.Forbidden, "withdrawal refused")

// Withdraw stops announcing every pseudonym given: the keys leave the
// keystore (no more reprovides, and no more answers for this centre
// from it: memberRecords), any record of its own in the table goes
// (AnnounceEach's, or one of a medfed from before), and every member
// that stores the announcement is asked to drop it.
// Members that could not be reached keep their copy until it expires
// (at most 48 h after the last reprovide); the error names them.
func (d *Directory) Withdraw(ctx context.Context, ps ...ledger.Pseudonym) error {
	if len(ps) == 0 {
		return nil
	}
	keys := make([]mh.Multihash, len(ps))
	for i, p := range ps {
		keys[i] = multihash(digest(d.fed, p))
	}
	d.forgetRepairs(keys)
	if err := d.keys.delete(ctx, keys); err != nil {
		return fmt.Errorf("directory withdraw: %w", err)
	}
	if _, err := d.drop(ctx, d.host.ID(), keys); err != nil {
		return fmt.Errorf("directory withdraw: %w", err)
	}
	// The members storing a key are the replication factor's closest to
	// it; a directory file of the sweep provider's time may have put it at
	// further ones, and the members closest change as members come and
	// go: ask the bucket's worth.
	members := d.ring()
	to := map[peer.ID][]mh.Multihash{}
	for _, k := range keys {
		for _, p := range replicasOf(members, k, d.dht.BucketSize(), d.host.ID()) {
			to[p] = append(to[p], k)
		}
	}
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	for p, keys := range to {
		wg.Go(func() {
			if err := d.sendWithdraw(ctx, p, keys); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s: %v", p, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	d.log.Info("withdrew", "keys", len(keys), "members", len(to), "failed", len(failed))
	if len(failed) > 0 {
		slices.Sort(failed)
		return fmt.Errorf("directory withdraw: not withdrawn at %d of %d members, whose copies expire on their own: %s",
			len(failed), len(to), strings.Join(failed, "; "))
	}
	return nil
}

func (d *Directory) sendWithdraw(ctx context.Context, p peer.ID, keys []mh.Multihash) error {
	for chunk := range slices.Chunk(keys, maxWithdraw) {
		req := make([]byte, 0, 32*len(chunk))
		for _, k := range chunk {
			req = append(req, k[2:]...) // the digest: every key is sha2-256
		}
		cctx, cancel := context.WithTimeout(ctx, withdrawTimout)
		answer, err := wire.Ask(cctx, d.host, WithdrawProtocolID, p, opWithdraw, req, maxReason, maxReason)
		cancel()
		var refused *wire.Refused
		if errors.As(err, &refused) {
			return fmt.Errorf("%w: %s", ErrWithdrawRefused, refused.Reason)
		}
		if err != nil {
			return err
		}
		if len(answer) != 4 {
			return wire.Malformed("withdrawal answer", "%d bytes", len(answer))
		}
	}
	return nil
}

// withdrawServer answers /medfed/directory/withdraw/1: members only.
func (d *Directory) withdrawServer() *wire.Server {
	return &wire.Server{
		Name: "withdrawal", Limit: 32 * maxWithdraw, Timeout: withdrawTimout, Work: withdrawTimout, MaxReason: maxReason,
		Admit: func(from peer.ID) error {
			if !d.isMember(from) {
				return errors.New("not a member")
			}
			return nil
		},
		Serve: func(ctx context.Context, from peer.ID, op byte, req []byte) ([]byte, error) {
			n, err := d.serveWithdraw(ctx, from, op, req)
			if err != nil {
				return nil, err
			}
			d.log.Debug("withdrawal", "from", from, "records", n)
			return binary.BigEndian.AppendUint32(nil, uint32(n)), nil
		},
		Log: d.log,
	}
}

// serveWithdraw drops the records naming from for the digests in req.
func (d *Directory) serveWithdraw(ctx context.Context, from peer.ID, op byte, req []byte) (int, error) {
	if op != opWithdraw {
		return 0, wire.Malformed("withdrawal", "unknown operation %d", op)
	}
	keys, err := parseWithdraw(req)
	if err != nil {
		return 0, err
	}
	return d.drop(ctx, from, keys)
}

// parseWithdraw decodes a withdrawal: 1 to maxWithdraw SHA-256 digests.
func parseWithdraw(req []byte) ([]mh.Multihash, error) {
	if len(req) == 0 || len(req)%32 != 0 || len(req)/32 > maxWithdraw {
		return nil, wire.Malformed("withdrawal", "request of %d bytes is not a list of 1 to %d 32-byte digests", len(req), maxWithdraw)
	}
	keys := make([]mh.Multihash, 0, len(req)/32)
	for c := range slices.Chunk(req, 32) {
		keys = append(keys, multihash([32]byte(c)))
	}
	return keys, nil
}

// drop deletes the provider records of keys that name p, durably, and
// returns how many there were.
func (d *Directory) drop(ctx context.Context, p peer.ID, keys []mh.Multihash) (int, error) {
	b, err := d.recs.Batch(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		rk := recordKey(k, p)
		ok, err := d.recs.Has(ctx, rk)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
			if err := b.Delete(ctx, rk); err != nil {
				return 0, err
			}
		}
	}
	return n, b.Commit(ctx)
}

// recordKey is where the DHT's provider manager keeps the record of p
// providing k.
func recordKey(k mh.Multihash, p peer.ID) ds.Key {
	return ds.NewKey(records.ProvidersKeyPrefix + base32.RawStdEncoding.EncodeToString(k) +
		"/" + base32.RawStdEncoding.EncodeToString([]byte(p)))
}
