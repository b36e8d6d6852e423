package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/stats"
)

// Errors a Ledger returns, besides node.ErrNotFound for an entry, a proof
// or a checkpoint it does not have. ErrInconsistent is a failure of the
// ledger itself: its storage was rewritten.
var (
	ErrClosed       = node.E(node.Unavailable, "ledger closed")
	ErrHalted       = node.E(node.Unavailable, "ledger halted: appending nothing, signing nothing")
	ErrInconsistent = node.E(node.Internal, "refusing to sign a checkpoint inconsistent with an earlier one")
)

// DefaultMaxBatch is the default number of entries in one group commit.
const DefaultMaxBatch = 4096

// Options configure a Ledger. Origin and Key are required.
type Options struct {
	// Origin names the log in its checkpoints: "medfed/<federation>/<centre>"
	// (see Origin). It is fixed when the ledger is created.
	Origin string
	// Key is the centre's Ed25519 key. It signs checkpoints; its public half
	// is all another centre needs to verify them.
	Key ed25519.PrivateKey
	// MaxBatch bounds the entries committed in one SQLite transaction.
	// Default DefaultMaxBatch. 1 commits every Append on its own.
	MaxBatch int
	// Now is the clock that stamps entries. Default time.Now.
	Now func() time.Time
	// Logger receives operational events. Default: discard.
	Logger *slog.Logger
}

// LogValue keeps the key out of logs.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("origin", o.Origin), slog.Int("max_batch", o.MaxBatch))
}

// Ledger is a centre's append-only transparency log. It is safe for
// concurrent use. At most one Ledger may have a file open: the caller holds
// the data directory's lock (package node/centre does).
type Ledger struct {
	origin   string
	signer   *ed25519Signer
	verifier note.Verifier
	maxBatch int
	now      func() time.Time
	log      *slog.Logger

	w         *sql.DB // the single writer connection
	r         *sql.DB // readers
	insert    *rowInserter
	hashQuery *sql.Stmt // hashQueryWidth rows' stored hashes, by index (read.go)
	index     *pseudonymIndex

	reqs   chan *appendReq
	queued atomic.Int64 // appends waiting to be taken into a commit
	quit   chan struct{}
	done   chan struct{}

	mu    sync.RWMutex // guards the committed state below
	size  int64
	root  tlog.Hash
	front frontier
	upper upperCache
	block hashBlock     // the hashes of the leaves of the block not complete yet
	tail  tail          // the latest entries' encodings (tail.go)
	grown chan struct{} // closed, and replaced, at each commit that appends

	signMu sync.Mutex // serialises Sign; guards latest and final
	latest SignedCheckpoint
	final  SignedCheckpoint

	halted atomic.Pointer[error] // why Append and Sign refuse; nil while they work

	witnessed witnessedCache // WitnessedLogs, asked at every views message
	macKey    []byte         // of the mirrors' rows

	stats ledgerStats

	closeOnce sync.Once
}

// ledgerStats count the commits for the operators' metrics.
type ledgerStats struct {
	appended stats.Counter    // entries committed since the ledger was opened
	failed   stats.Counter    // commits that failed
	sizes    *stats.Histogram // entries per commit
	seconds  *stats.Histogram // a commit's time, from its first append taken to its acknowledgement
}

// Stats is what a ledger's commits did since it was opened.
type Stats struct {
	Appended, FailedCommits uint64
	CommitSizes             stats.Snapshot // entries per commit
	CommitSeconds           stats.Snapshot // time from an append's take to its commit
}

// Stats returns the counts of the ledger's commits.
func (l *Ledger) Stats() Stats {
	return Stats{Appended: l.stats.appended.Load(), FailedCommits: l.stats.failed.Load(),
		CommitSizes: l.stats.sizes.Snapshot(), CommitSeconds: l.stats.seconds.Snapshot()}
}

type appendReq struct {
	// side, for a request of write rather than Append: a write of the
	// ledger's file beside the entries (a witness's state, a mirror, a
	// checkpoint), run in the batch's transaction under a savepoint.
	side     func(ctx context.Context, tx *sql.Tx) error
	encs     [][]byte
	subjects []Pseudonym
	first    int64
	err      error
	done     chan struct{}
	// stamped: encs carry their index and time already (Recover), and
	// root is what the tree's root must be once they are in.
	stamped bool
	root    tlog.Hash
}

// Open opens the ledger stored at path, creating it on first use.
func Open(ctx context.Context, path string, opts Options) (*Ledger, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("ledger open: %w", err)
	}
	if _, err := checkFile(path); err != nil {
		return nil, fmt.Errorf("ledger open: %w", err)
	}
	signer, err := newSigner(opts.Origin, opts.Key)
	if err != nil {
		return nil, fmt.Errorf("ledger open: %w", err)
	}
	l := &Ledger{
		origin:   opts.Origin,
		signer:   signer,
		maxBatch: opts.MaxBatch,
		now:      opts.Now,
		log:      opts.Logger,
		reqs:     make(chan *appendReq),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		front:    frontier{},
		grown:    make(chan struct{}),
		macKey:   mirrorMACKey(opts.Key),
		stats:    ledgerStats{sizes: stats.NewHistogram(stats.SizeBounds...), seconds: stats.NewHistogram(stats.LatencyBounds...)},
	}
	if l.verifier, err = NewVerifier(opts.Origin, opts.Key.Public().(ed25519.PublicKey)); err != nil {
		return nil, fmt.Errorf("ledger open: %w", err)
	}
	if err := l.open(ctx, path, opts.Key.Public().(ed25519.PublicKey)); err != nil {
		if l.index != nil {
			l.index.close() // never started
		}
		l.closeDBs()
		return nil, fmt.Errorf("ledger open %s: %w", path, err)
	}
	l.index.start()
	go l.commitLoop()
	l.log.Info("ledger opened", "origin", l.origin, "size", l.size)
	return l, nil
}

func (o *Options) validate() error {
	if !validOrigin(o.Origin) {
		return errors.New("invalid origin")
	}
	if len(o.Key) != ed25519.PrivateKeySize {
		return errors.New("an Ed25519 private key is required")
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxBatch < 0 {
		return errors.New("negative MaxBatch")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (l *Ledger) open(ctx context.Context, path string, pub ed25519.PublicKey) error {
	var err error
	if l.w, err = openDB(path, write); err != nil {
		return err
	}
	if err := migrate(ctx, l.w); err != nil {
		return err
	}
	if err := l.claimMeta(ctx, pub); err != nil {
		return err
	}
	if l.r, err = openDB(path, readShared); err != nil {
		return err
	}
	if l.insert, err = prepareInserter(ctx, l.w, "entries", []string{"idx", "data", "hashes"}, 16); err != nil {
		return err
	}
	if l.hashQuery, err = l.r.PrepareContext(ctx, hashQuery); err != nil {
		return err
	}
	if err := l.loadState(ctx); err != nil {
		return err
	}
	if err := l.loadLatest(ctx); err != nil {
		return err
	}
	if l.index, err = openIndex(ctx, IndexPath(path), BlocksPath(path), l.log); err != nil {
		return err
	}
	return l.index.catchUp(ctx, l.r, l.size)
}

// claimMeta records origin and key on creation and refuses a ledger that
// belongs to another origin or key afterwards.
func (l *Ledger) claimMeta(ctx context.Context, pub ed25519.PublicKey) error {
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, kv := range []struct {
		key  string
		want []byte
	}{{"origin", []byte(l.origin)}, {"public_key", pub}} {
		var have []byte
		err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", kv.key).Scan(&have)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?)", kv.key, kv.want); err != nil {
				return err
			}
		case err != nil:
			return err
		case !bytes.Equal(have, kv.want):
			if kv.key == "origin" {
				return fmt.Errorf("ledger belongs to %q, not %q", have, kv.want)
			}
			return errors.New("ledger was created with another centre key")
		}
	}
	return tx.Commit()
}

// loadState rebuilds the in-memory frontier and hash cache from disk.
func (l *Ledger) loadState(ctx context.Context) error {
	var size sql.NullInt64
	if err := l.r.QueryRowContext(ctx, "SELECT MAX(idx) + 1 FROM entries").Scan(&size); err != nil {
		return err
	}
	l.size = size.Int64
	// The cache holds the upper hashes of leaves 2^cacheLevel-1, 2·2^cacheLevel-1, …
	step := int64(1) << cacheLevel
	rows, err := l.r.QueryContext(ctx, "SELECT idx, hashes FROM entries WHERE idx % ? = ? ORDER BY idx", step, step-1)
	if err != nil {
		return err
	}
	err = eachIndexed(rows, func(n int64, blob []byte) error {
		hs, err := splitHashes(blob)
		if err != nil {
			return fmt.Errorf("entry %d: %w", n, err)
		}
		if len(hs) <= cacheLevel {
			return fmt.Errorf("entry %d: %d stored hashes, want more than %d", n, len(hs), cacheLevel)
		}
		l.upper.add(n, hs)
		return nil
	})
	if err != nil {
		return err
	}
	// The block not complete yet, from its leaves' rows.
	rows, err = l.r.QueryContext(ctx, "SELECT idx, hashes FROM entries WHERE idx >= ? ORDER BY idx", l.size/blockLeaves*blockLeaves)
	if err != nil {
		return err
	}
	err = eachIndexed(rows, func(n int64, blob []byte) error {
		hs, err := splitHashes(blob)
		if err != nil {
			return fmt.Errorf("entry %d: %w", n, err)
		}
		l.block.put(n, hs)
		return nil
	})
	if err != nil {
		return err
	}
	// The frontier is what TreeHash reads for the current size.
	if l.size == 0 {
		l.root, _ = tlog.TreeHash(0, nil)
		return nil
	}
	rec := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := l.readStored(ctx, indexes)
		if err != nil {
			return nil, err
		}
		for i, x := range indexes {
			l.front[x] = hs[i]
		}
		return hs, nil
	})
	l.root, err = tlog.TreeHash(l.size, rec)
	return err
}

func (l *Ledger) loadLatest(ctx context.Context) error {
	var cosigned []byte
	err := l.r.QueryRowContext(ctx, "SELECT cosigned FROM checkpoints WHERE cosigned IS NOT NULL ORDER BY size DESC LIMIT 1").Scan(&cosigned)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		if l.final, err = l.openNote(cosigned); err != nil {
			return fmt.Errorf("latest final checkpoint: %w", err)
		}
	}
	var msg []byte
	err = l.r.QueryRowContext(ctx, "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	sc, err := l.openNote(msg)
	if err != nil {
		return fmt.Errorf("latest stored checkpoint: %w", err)
	}
	l.latest = sc
	return nil
}

func (l *Ledger) openNote(msg []byte) (SignedCheckpoint, error) {
	n, err := note.Open(msg, note.VerifierList(l.verifier))
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return SignedCheckpoint{}, err
	}
	if c.Origin != l.origin {
		return SignedCheckpoint{}, fmt.Errorf("%w: origin %q", ErrBadCheckpoint, c.Origin)
	}
	return SignedCheckpoint{Checkpoint: c, Note: msg}, nil
}

// Close stops accepting appends, waits for the commit in progress and
// closes the database. Appends that were acknowledged are durable.
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.done
		err = errors.Join(l.index.stop(), l.closeDBs())
	})
	return err
}

func (l *Ledger) closeDBs() error {
	var errs []error

	errs = append(errs, l.insert.Close())
	if l.hashQuery != nil {
		errs = append(errs, l.hashQuery.Close())
	}
	for _, db := range []*sql.DB{l.r, l.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// Origin returns the ledger's checkpoint origin.
func (l *Ledger) Origin() string { return l.origin }

// PublicKey returns the key that verifies the ledger's checkpoints.
func (l *Ledger) PublicKey() ed25519.PublicKey {
	return l.signer.key.Public().(ed25519.PublicKey)
}

// Size returns the number of durable entries.
func (l *Ledger) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Grown returns a channel closed when the ledger next grows: what a
// publisher waits on to sign a checkpoint as soon as there is something to
// sign, rather than at a fixed tick.
func (l *Ledger) Grown() <-chan struct{} {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.grown
}

// Head returns the current size and root hash (not necessarily signed).
func (l *Ledger) Head() Checkpoint {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return Checkpoint{Origin: l.origin, Size: l.size, Root: l.root}
}

// Append adds entries to the ledger, in order and atomically, and returns
// the index of the first. It returns only once they are durable. Concurrent
// appends share SQLite transactions (group commit), so the cost of a commit
// is spread over every entry waiting for it.
//
// ctx bounds the wait for a place in a commit; once an append is part of a
// commit it runs to completion, so an acknowledged index is never lost and
// an unacknowledged one is never reported as failed when it succeeded.
func (l *Ledger) Append(ctx context.Context, entries ...Entry) (int64, error) {
	if len(entries) == 0 {
		return 0, errors.New("ledger append: no entries")
	}
	if err := l.Halted(); err != nil {
		return 0, fmt.Errorf("ledger append: %w", err)
	}
	req := &appendReq{
		encs:     make([][]byte, len(entries)),
		subjects: make([]Pseudonym, len(entries)),
		done:     make(chan struct{}),
	}
	for i, e := range entries {
		e.Index, e.Time = 0, time.Time{}
		enc, err := e.Encode()
		if err != nil {
			return 0, fmt.Errorf("ledger append: entry %d of %d: %w", i+1, len(entries), err)
		}
		req.encs[i], req.subjects[i] = enc, e.Subject
	}
	if err := l.submit(ctx, req); err != nil {
		return 0, fmt.Errorf("ledger append: %w", err)
	}
	if req.err != nil {
		return 0, fmt.Errorf("ledger append: %w", req.err)
	}
	return req.first, nil
}

// Halt makes Append and Sign refuse with reason, which wraps ErrHalted,
// until Resume: what a centre does while it may be behind a checkpoint its
// witnesses cosigned (a restore from backup), since an entry appended then
// would sit at an index they already hold another entry for. An append
// already in its commit completes.
func (l *Ledger) Halt(reason error) {
	err := fmt.Errorf("%w: %w", ErrHalted, reason)
	l.halted.Store(&err)
}

// Resume undoes Halt.
func (l *Ledger) Resume() { l.halted.Store(nil) }

// Halted returns why the ledger is halted, or nil.
func (l *Ledger) Halted() error {
	if p := l.halted.Load(); p != nil {
		return *p
	}
	return nil
}
