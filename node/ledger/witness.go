package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/medfed/medfed/node"
	"golang.org/x/mod/sumdb/tlog"
)

// Witnessed is the checkpoint of another centre's log that this centre, as
// its witness, last cosigned.
type Witnessed struct {
	Size    int64
	Root    tlog.Hash
	Note    []byte
	Blocked bool // set after equivocation: this centre cosigns it no more
}

// Evidence is a pair of checkpoints one log signed that cannot both be
// true.
type Evidence struct {
	Origin        string
	Held, Offered []byte // the signed notes
	Reason        string
	Seen          time.Time
}

// ErrBlocked is returned for a log this centre stopped witnessing because
// it signed two histories.
var ErrBlocked = node.E(node.Conflict, "log blocked after equivocation")

// Witness runs check on what this centre last cosigned of origin (found is
// false before the first time) and stores what check returns, in one
// transaction: a crash cannot separate the check from the state it allowed,
// so a witness never cosigns two histories however it is restarted. When
// check fails nothing changes. A blocked log is refused before check runs.
// The transaction is the next group commit's (see write): check runs on
// the ledger's single writer, so it must be quick and must not call the
// ledger.
func (l *Ledger) Witness(ctx context.Context, origin string, check func(prev Witnessed, found bool) (Witnessed, error)) error {
	err := l.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var prev Witnessed
		var root []byte
		var blocked bool
		err := tx.QueryRowContext(ctx, "SELECT size, root, note, blocked FROM witnessed WHERE origin = ?", origin).Scan(&prev.Size, &root, &prev.Note, &blocked)
		found := err == nil
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("witness %s: %w", origin, err)
		case blocked:
			return fmt.Errorf("witness %s: %w", origin, ErrBlocked)
		case len(root) != tlog.HashSize:
			return fmt.Errorf("witness %s: stored root of %d bytes", origin, len(root))
		default:
			prev.Root = tlog.Hash(root)
		}
		next, err := check(prev, found)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO witnessed (origin, size, root, note) VALUES (?, ?, ?, ?)
			ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note`,
			origin, next.Size, next.Root[:], next.Note); err != nil {
			return fmt.Errorf("witness %s: %w", origin, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.witnessed.changed()
	return nil
}

// RecordEvidence keeps a pair of conflicting checkpoints of origin and
// blocks the log: this centre cosigns none of its checkpoints until an
// operator acts.
func (l *Ledger) RecordEvidence(ctx context.Context, e Evidence) error {
	err := l.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO evidence (origin, held, offered, reason, seen) VALUES (?, ?, ?, ?, ?)",
			e.Origin, e.Held, e.Offered, e.Reason, l.now().UnixNano()); err != nil {
			return fmt.Errorf("recording evidence: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE witnessed SET blocked = 1 WHERE origin = ?", e.Origin); err != nil {
			return fmt.Errorf("recording evidence: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.witnessed.changed()
	return nil
}

// Evidence returns every pair of conflicting checkpoints seen, oldest first.
func (l *Ledger) Evidence(ctx context.Context) ([]Evidence, error) {
	rows, err := l.r.QueryContext(ctx, "SELECT origin, held, offered, reason, seen FROM evidence ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Evidence
	for rows.Next() {
		var e Evidence
		var seen int64
		if err := rows.Scan(&e.Origin, &e.Held, &e.Offered, &e.Reason, &seen); err != nil {
			return nil, err
		}
		e.Seen = time.Unix(0, seen).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// WitnessedLogs returns, by origin, the checkpoint this centre last
// cosigned of every log it witnesses, blocked ones included. The map is
// the caller's; the notes' bytes are shared, to be read only. What it
// reads is kept until the next cosignature or evidence: a witness asks it
// at every views message.
func (l *Ledger) WitnessedLogs(ctx context.Context) (map[string]Witnessed, error) {
	held, gen := l.witnessed.get()
	if held != nil {
		return held, nil
	}
	held, err := l.readWitnessed(ctx)
	if err != nil {
		return nil, err
	}
	l.witnessed.put(gen, held)
	return maps.Clone(held), nil
}

func (l *Ledger) readWitnessed(ctx context.Context) (map[string]Witnessed, error) {
	rows, err := l.r.QueryContext(ctx, "SELECT origin, size, root, note, blocked FROM witnessed")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Witnessed{}
	for rows.Next() {
		var origin string
		var w Witnessed
		var root []byte
		if err := rows.Scan(&origin, &w.Size, &root, &w.Note, &w.Blocked); err != nil {
			return nil, err
		}
		if len(root) != tlog.HashSize {
			return nil, fmt.Errorf("witnessed %s: stored root of %d bytes", origin, len(root))
		}
		w.Root = tlog.Hash(root)
		out[origin] = w
	}
	return out, rows.Err()
}

// witnessedCache holds the witnessed table as last read. A write bumps
// its generation and drops it; a read that began before a write does
// not store what it read.
type witnessedCache struct {
	mu   sync.Mutex
	gen  uint64
	held map[string]Witnessed // nil: not read since the last write
}

// get returns a copy of what is held (nil when nothing is) and the
// generation a read begun now would store under.
func (c *witnessedCache) get() (map[string]Witnessed, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		return nil, c.gen
	}
	return maps.Clone(c.held), c.gen
}

func (c *witnessedCache) put(gen uint64, held map[string]Witnessed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.held = held
	}
}

func (c *witnessedCache) changed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.held = nil
}
