package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node"
)

// A centre's ledger is its legal record, and a backup is as old as it
// is: the entries appended since are lost with the disk. So each witness
// also keeps a mirror of the logs it witnesses, up to what it cosigned:
// chunks of their entries, sealed by each log's centre to itself (the
// witness reads nothing of them), which a centre restored from an old
// backup reads back and appends as they were (Recover), its root then
// matching the checkpoint its witnesses cosigned.

// ErrMirrorGap is returned for a mirror chunk that does not continue what
// this centre holds of the log: the error says where it ends.
var ErrMirrorGap = node.E(node.Conflict, "mirror chunk does not continue the mirror")

// ErrRecovered is returned when entries offered to Recover do not
// rebuild the history the witnesses cosigned.
var ErrRecovered = node.E(node.Conflict, "recovered entries do not match the cosigned history")

// MirrorError is a mirror row that fails its MAC, or a mirror with a gap.
type MirrorError struct {
	Origin string
	Start  int64
	Reason string
}

func (e *MirrorError) Error() string {
	return fmt.Sprintf("the mirror of %s at %d: %s", e.Origin, e.Start, e.Reason)
}

// MirrorChunk is a sealed run of a log's entries from Start.
type MirrorChunk struct {
	Start, Count int64
	Blob         []byte
}

// MaxMirrorChunk bounds a chunk's sealed bytes.
const MaxMirrorChunk = 1 << 20

func mirrorMACKey(key ed25519.PrivateKey) []byte {
	if len(key) != ed25519.PrivateKeySize {
		return nil
	}
	k, err := hkdf.Key(sha256.New, key.Seed(), nil, "medfed ledger mirror row MAC v1", 32)
	if err != nil {
		panic(err) // HKDF fails only for a length over 255 hashes
	}
	return k
}

func (l *Ledger) mirrorMAC(origin string, c MirrorChunk) []byte {
	m := hmac.New(sha256.New, l.macKey)
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(len(origin)))
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Start))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Count))
	sum := sha256.Sum256(c.Blob)
	m.Write(append(b, sum[:]...))
	return m.Sum(nil)
}

// mirrorEnd returns the index after the last entry mirrored of origin.
// Chunks are contiguous (AddMirror), so it is the end of the one that
// starts last: one step down the primary key, where MAX(start + count)
// read every chunk of the log at every mirror write.
func mirrorEnd(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, origin string) (int64, error) {
	var end int64
	err := q.QueryRowContext(ctx, "SELECT start + count FROM mirrors WHERE origin = ? ORDER BY start DESC LIMIT 1", origin).Scan(&end)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return end, err
}

// MirrorEnd returns the index after the last entry mirrored of origin
// (0: none).
func (l *Ledger) MirrorEnd(ctx context.Context, origin string) (int64, error) {
	return mirrorEnd(ctx, l.r, origin)
}

// AddMirror keeps chunk c of origin's log. It must continue what is held
// (ErrMirrorGap, with the end held, otherwise) and stay within the size
// this centre cosigned of the log: a member cannot fill its witnesses'
// disks beyond its own ledger.
func (l *Ledger) AddMirror(ctx context.Context, origin string, c MirrorChunk) (end int64, err error) {
	if c.Start < 0 || c.Count <= 0 || len(c.Blob) == 0 || len(c.Blob) > MaxMirrorChunk {
		return 0, fmt.Errorf("%w: a mirror chunk of %d entries from %d, %d bytes", node.ErrInvalid, c.Count, c.Start, len(c.Blob))
	}
	err = l.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if end, err = mirrorEnd(ctx, tx, origin); err != nil {
			return err
		}
		if c.Start != end {
			return fmt.Errorf("%w: it starts at %d, the mirror of %s ends at %d", ErrMirrorGap, c.Start, origin, end)
		}
		var cosigned int64
		switch err := tx.QueryRowContext(ctx, "SELECT size FROM witnessed WHERE origin = ?", origin).Scan(&cosigned); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		}
		if c.Start+c.Count > cosigned {
			return fmt.Errorf("%w: a mirror of %s to %d, beyond the %d entries this centre cosigned", node.ErrInvalid, origin, c.Start+c.Count, cosigned)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO mirrors (origin, start, count, blob, mac) VALUES (?, ?, ?, ?, ?)",
			origin, c.Start, c.Count, c.Blob, l.mirrorMAC(origin, c))
		return err
	})
	if err != nil {
		return end, err
	}
	return c.Start + c.Count, nil
}

// MirrorChunks returns the chunks of origin's mirror that hold entries
// from index from on, in order, up to about maxBytes of them (one at
// least).
func (l *Ledger) MirrorChunks(ctx context.Context, origin string, from int64, maxBytes int) ([]MirrorChunk, error) {
	rows, err := l.r.QueryContext(ctx, "SELECT start, count, blob, mac FROM mirrors WHERE origin = ? AND start + count > ? ORDER BY start", origin, from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		out  []MirrorChunk
		size int
	)
	for rows.Next() && (len(out) == 0 || size < maxBytes) {
		var (
			c   MirrorChunk
			mac []byte
		)
		if err := rows.Scan(&c.Start, &c.Count, &c.Blob, &mac); err != nil {
			return nil, err
		}
		if !hmac.Equal(mac, l.mirrorMAC(origin, c)) {
			return nil, &MirrorError{Origin: origin, Start: c.Start, Reason: "the row fails its MAC"}
		}
		out = append(out, c)
		size += len(c.Blob)
	}
	return out, rows.Err()
}

// CheckMirrors checks every mirror row's MAC, and that each log's mirror
// runs from index 0 without a gap or an overlap.
func (l *Ledger) CheckMirrors(ctx context.Context) error {
	rows, err := l.r.QueryContext(ctx, "SELECT origin, start, count, blob, mac FROM mirrors ORDER BY origin, start")
	if err != nil {
		return err
	}
	defer rows.Close()
	ends := map[string]int64{}
	for rows.Next() {
		var (
			origin string
			c      MirrorChunk
			mac    []byte
		)
		if err := rows.Scan(&origin, &c.Start, &c.Count, &c.Blob, &mac); err != nil {
			return err
		}
		switch {
		case !hmac.Equal(mac, l.mirrorMAC(origin, c)):
			return &MirrorError{Origin: origin, Start: c.Start, Reason: "the row fails its MAC"}
		case c.Start != ends[origin] || c.Count <= 0:
			return &MirrorError{Origin: origin, Start: c.Start, Reason: fmt.Sprintf("a gap or an overlap (the rows before end at %d)", ends[origin])}
		}
		ends[origin] = c.Start + c.Count
	}
	return rows.Err()
}

// Recover appends entries a mirror kept, as they were first appended
// (their encodings, index and time included), to a halted ledger: the
// first at the ledger's size, and the tree's root once they are in must
// be root, what the witnesses cosigned at that size. Nothing is appended
// otherwise (ErrRecovered).
func (l *Ledger) Recover(ctx context.Context, encs [][]byte, root tlog.Hash) error {
	if len(encs) == 0 {
		return errors.New("ledger recover: no entries")
	}
	if l.Halted() == nil {
		return errors.New("ledger recover: the ledger is not halted")
	}
	req := &appendReq{encs: make([][]byte, len(encs)), subjects: make([]Pseudonym, len(encs)), done: make(chan struct{}), stamped: true, root: root}
	for i, b := range encs {
		e, err := Decode(b)
		if err != nil {
			return fmt.Errorf("ledger recover: entry %d of %d: %w", i+1, len(encs), err)
		}
		if e.Time.IsZero() {
			return fmt.Errorf("ledger recover: %w: entry %d of %d has no time", ErrRecovered, i+1, len(encs))
		}
		req.encs[i], req.subjects[i] = b, e.Subject
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		return fmt.Errorf("ledger recover: %w", ctx.Err())
	case <-l.quit:
		return fmt.Errorf("ledger recover: %w", ErrClosed)
	}
	<-req.done
	if req.err != nil {
		return fmt.Errorf("ledger recover: %w", req.err)
	}
	return nil
}
