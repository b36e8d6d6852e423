package directory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	mh "github.com/multiformats/go-multihash"
)

// keystore is the set of keys this centre announces: a row each in the
// store's file, under /keys/, laid out as go-libp2p-kad-dht's keystore laid
// them out, so that a file written before reads the same: the first
// keyRowBits bits of the key's Kademlia identifier (the SHA-256 of its
// multihash) as path components, the rest of it in base64url, and the
// multihash as the row's value, with its MAC as every row's.
//
// It reads and writes the table itself, not through the store's overlay
// (whose grouping is for provider records): a put is a transaction of its
// own, durable when it returns, and SQLite tells which of its keys are new
// (INSERT OR IGNORE ... RETURNING), so no key is looked up one at a time
// and nothing of the keystore is held in memory but its size. The kad-dht
// keystore it replaces looked each key up before writing the lot through
// the overlay in one transaction: at a million keys, a million queries
// and the whole set in memory, twice.
type keystore struct {
	s    *store
	size atomic.Int64
}

const (
	// keysNS is where the keystore's rows are.
	keysNS = "/keys/"
	// keyRowBits is how many leading bits of a key's Kademlia identifier
	// are path components of its row's key (kad-dht's DefaultPrefixBits).
	keyRowBits = 16
	// keyPageBits is the length of the prefixes the keystore is read by
	// (keyPage): 256 pages, a few thousand keys each for a centre of a
	// million patients.
	keyPageBits = 8
	// keysPerStatement bounds the rows one statement writes or deletes
	// (SQLite allows 32,766 parameters): each statement crosses cgo once.
	keysPerStatement = 1000
)

// openKeystore opens the keystore in s, counting its keys, and drops the
// size row the kad-dht keystore left at its last close (now counted).
func openKeystore(ctx context.Context, s *store) (*keystore, error) {
	k := &keystore{s: s}
	if _, err := s.db.ExecContext(ctx, "DELETE FROM kv WHERE k = ?", keysNS+"size"); err != nil {
		return nil, fmt.Errorf("directory keystore: %w", err)
	}
	var n int64
	// Only the rows of keys: each begins with a bit, 0 or 1.
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM kv WHERE k >= ? AND k < ?", keysNS+"0/", keysNS+"2").Scan(&n); err != nil {
		return nil, fmt.Errorf("directory keystore: %w", err)
	}
	k.size.Store(n)
	return k, nil
}

// keyRow returns the key of key's row.
func keyRow(key mh.Multihash) string {
	id := sha256.Sum256(key)
	var b strings.Builder
	b.Grow(len(keysNS) + 2*keyRowBits + base64.URLEncoding.EncodedLen(len(id)-keyRowBits/8))
	b.WriteString(keysNS)
	for i := range keyRowBits {
		bit := id[i/8] >> (7 - i%8) & 1
		b.WriteByte('0' + bit)
		b.WriteByte('/')
	}
	b.WriteString(base64.URLEncoding.EncodeToString(id[keyRowBits/8:]))
	return b.String()
}

// keyPage returns the range of row keys of page, the keys whose
// Kademlia identifiers begin with its keyPageBits bits.
func keyPage(page int) (lo, hi string) {
	var b strings.Builder
	b.WriteString(keysNS)
	for i := range keyPageBits {
		bit := byte(page>>(keyPageBits-1-i)) & 1
		b.WriteByte('0' + bit)
		b.WriteByte('/')
	}
	p := b.String()
	return p, p[:len(p)-1] + "0" // '0' follows '/'
}

// put adds keys and returns those that were not there, in the order of
// their rows; a key given twice counts once. It is durable when it
// returns.
func (k *keystore) put(ctx context.Context, keys []mh.Multihash) (fresh []mh.Multihash, err error) {
	if len(keys) == 0 {
		return nil, nil
	}
	type row struct {
		k   string
		key mh.Multihash
	}
	rows := make([]row, len(keys))
	for i, key := range keys {
		rows[i] = row{keyRow(key), key}
	}
	// In key order, each page of the B-tree is visited once.
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.k, b.k) })
	err = k.s.writeTx(ctx, func(tx *sql.Tx) error {
		m := newMacer(k.s.key)
		args := make([]any, 0, 3*min(len(rows), keysPerStatement))
		for chunk := range slices.Chunk(rows, keysPerStatement) {
			args = args[:0]
			for _, r := range chunk {
				args = append(args, r.k, []byte(r.key), m.mac(r.k, r.key))
			}
			q := insertKeys + strings.Repeat(",(?, ?, ?)", len(chunk)-1) + " RETURNING v"
			res, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			for res.Next() {
				var v []byte
				if err := res.Scan(&v); err != nil {
					res.Close()
					return err
				}
				fresh = append(fresh, mh.Multihash(v))
			}
			if err := errors.Join(res.Err(), res.Close()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("directory keystore: %w", err)
	}
	k.size.Add(int64(len(fresh)))
	return fresh, nil
}

const insertKeys = "INSERT OR IGNORE INTO kv (k, v, mac) VALUES (?, ?, ?)"

// delete removes keys, durably.
func (k *keystore) delete(ctx context.Context, keys []mh.Multihash) error {
	var gone int64
	err := k.s.writeTx(ctx, func(tx *sql.Tx) error {
		args := make([]any, 0, min(len(keys), keysPerStatement))
		for chunk := range slices.Chunk(keys, keysPerStatement) {
			args = args[:0]
			for _, key := range chunk {
				args = append(args, keyRow(key))
			}
			res, err := tx.ExecContext(ctx, deleteRows+strings.Repeat(",?", len(chunk)-1)+")", args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			gone += n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("directory keystore: %w", err)
	}
	k.size.Add(-gone)
	return nil
}

// page returns the keys of page (see keyPage), one of 1<<keyPageBits:
// the keystore is read a page at a time, never whole.
func (k *keystore) page(ctx context.Context, page int) ([]mh.Multihash, error) {
	lo, hi := keyPage(page)
	rows, err := k.s.scan.QueryContext(ctx, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("directory keystore: %w", err)
	}
	defer rows.Close()
	var out []mh.Multihash
	for rows.Next() {
		var row string
		var v []byte
		if err := rows.Scan(&row, &v); err != nil {
			return nil, fmt.Errorf("directory keystore: %w", err)
		}
		out = append(out, mh.Multihash(v))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory keystore: %w", err)
	}
	return out, nil
}

// has reports whether the keystore holds key.
func (k *keystore) has(ctx context.Context, key mh.Multihash) (bool, error) {
	var v []byte
	switch err := k.s.get.QueryRowContext(ctx, keyRow(key)).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("directory keystore: %w", err)
	}
	return true, nil
}

// len returns how many keys the keystore holds.
func (k *keystore) len() int { return int(k.size.Load()) }
