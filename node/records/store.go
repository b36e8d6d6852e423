package records

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medfed/medfed/node"
)

// The errors a caller is expected to handle, besides node.ErrNotFound for
// an unknown payload ID. Compare with errors.Is.
var (
	// ErrErased: the payload was crypto-shredded. It is of kind
	// node.NotFound too.
	ErrErased = node.E(node.NotFound, "records: payload erased")
	// ErrTooLarge is returned, wrapped with the sizes, for a payload over
	// Options.MaxPayload.
	ErrTooLarge = node.E(node.Invalid, "records: payload too large")
)

var (
	errEmpty  = node.E(node.Invalid, "records: empty payload")
	errClosed = node.E(node.Unavailable, "records: store is closed")
)

const (
	// DefaultMaxPayload is the payload size limit when Options.MaxPayload
	// is zero.
	DefaultMaxPayload = 16 << 20
	// maxMaxPayload keeps a sealed payload well under SQLite's default
	// 1e9-byte limit on one value.
	maxMaxPayload = 512 << 20

	keyFile = "records.key"
)

// File is the store's SQLite file in its directory.
const File = "records.db"

// Options configures a Store. The zero value means the defaults.
type Options struct {
	// MaxPayload is the largest payload Put accepts, in bytes: 0 means
	// DefaultMaxPayload (16 MiB); at most 512 MiB.
	MaxPayload int
	// Now is the clock for creation and erasure times; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.MaxPayload == 0:
		o.MaxPayload = DefaultMaxPayload
	case o.MaxPayload < 0 || o.MaxPayload > maxMaxPayload:
		return o, fmt.Errorf("records: Options.MaxPayload is %d, want 0 (default) or 1 to %d", o.MaxPayload, maxMaxPayload)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Store is a centre's off-ledger payload store. It is safe for concurrent
// use by multiple goroutines.
type Store struct {
	db         *sql.DB
	wrap       cipher.AEAD // AES-256-GCM under the centre key
	maxPayload int
	now        func() time.Time
	closed     atomic.Bool

	erasures    atomic.Uint64 // Erase calls whose delete has committed
	ckptMu      sync.Mutex
	ckptCovered uint64 // erasures covered by the last checkpoint; under ckptMu
}

// Open opens the store in dir, creating dir, the database dir/records.db and
// the centre key dir/records.key on first use.
//
// Open refuses, changing nothing, a records.db that is not a records store,
// a key file that group or others can access or that has the wrong length,
// and a records.db whose key file is missing.
func Open(dir string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dir, File)
	keyPath := filepath.Join(dir, keyFile)

	dbExists := true
	if _, err := os.Lstat(dbPath); errors.Is(err, fs.ErrNotExist) {
		dbExists = false
	} else if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}

	var key [keySize]byte
	if dbExists {
		if err := checkHeader(dbPath); err != nil {
			return nil, err
		}
	} else {
		// The key is made before the database, so a crash in between
		// leaves a key without a database, never the reverse.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		key, err = loadKey(keyPath)
		if errors.Is(err, fs.ErrNotExist) {
			key, err = createKey(keyPath)
		}
		if err != nil {
			return nil, err
		}
	}
	defer clear(key[:])

	source, err := dsn(dbPath, !dbExists)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", source)
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			db.Close()
		}
	}()

	ctx := context.Background()
	if err := checkIdentity(ctx, db, dbPath); err != nil {
		return nil, err
	}
	if dbExists {
		key, err = loadKey(keyPath)
		if errors.Is(err, fs.ErrNotExist) {
			// A new key could not open a single stored payload.
			return nil, fmt.Errorf("records: %s exists but its key file %s is missing; refusing to create a new key (restore the key file from its backup)", dbPath, keyPath)
		}
		if err != nil {
			return nil, err
		}
	}

	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return nil, fmt.Errorf("records: setting WAL mode: %w", err)
	}
	if mode != "wal" {
		return nil, fmt.Errorf("records: setting WAL mode: journal mode is %q", mode)
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	wrap, err := newAEAD(key[:])
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	ok = true
	return &Store{db: db, wrap: wrap, maxPayload: opts.MaxPayload, now: opts.Now}, nil
}

// Close closes the store. Calls after the first return nil; other methods
// called after Close return an error.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close()
}

// Put seals payload under a fresh random data key, wraps the data key under
// the centre key and stores both. It returns once the row is committed
// durably, with the new ID, the Opening and the Commitment to record on the
// ledger.
func (s *Store) Put(ctx context.Context, payload []byte) (ID, Opening, Commitment, error) {
	if s.closed.Load() {
		return ID{}, Opening{}, Commitment{}, errClosed
	}
	if len(payload) == 0 {
		return ID{}, Opening{}, Commitment{}, errEmpty
	}
	if len(payload) > s.maxPayload {
		return ID{}, Opening{}, Commitment{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), s.maxPayload)
	}
	id, err := newID()
	if err != nil {
		return ID{}, Opening{}, Commitment{}, err
	}
	var o Opening
	if err := fillRandom(o[:]); err != nil {
		return ID{}, Opening{}, Commitment{}, err
	}
	wrapped, ciphertext, err := s.seal(id, o, payload)
	if err != nil {
		return ID{}, Opening{}, Commitment{}, err
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ID{}, Opening{}, Commitment{}, fmt.Errorf("records put: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO payloads (id, created_at) VALUES (?, ?)`, id[:], s.now().UnixNano()); err != nil {
		return ID{}, Opening{}, Commitment{}, fmt.Errorf("records put: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sealed (id, wrapped_key, ciphertext) VALUES (?, ?, ?)`, id[:], wrapped, ciphertext); err != nil {
		return ID{}, Opening{}, Commitment{}, fmt.Errorf("records put: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return ID{}, Opening{}, Commitment{}, fmt.Errorf("records put: %w", err)
	}
	return id, o, Commit(o, payload), nil
}

// Get returns the payload stored under id and its Opening. It returns
// ErrErased for an erased payload and node.ErrNotFound for an unknown ID.
func (s *Store) Get(ctx context.Context, id ID) ([]byte, Opening, error) {
	if s.closed.Load() {
		return nil, Opening{}, errClosed
	}
	var erasedAt sql.NullInt64
	var wrapped, ciphertext []byte
	err := s.db.QueryRowContext(ctx, `
		SELECT p.erased_at, s.wrapped_key, s.ciphertext
		FROM payloads AS p LEFT JOIN sealed AS s ON s.id = p.id
		WHERE p.id = ?`, id[:]).Scan(&erasedAt, &wrapped, &ciphertext)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, Opening{}, fmt.Errorf("records: payload %w", node.ErrNotFound)
	case err != nil:
		return nil, Opening{}, fmt.Errorf("records get: %w", err)
	case erasedAt.Valid:
		return nil, Opening{}, ErrErased
	case wrapped == nil || ciphertext == nil:
		return nil, Opening{}, fmt.Errorf("records: payload %s has no sealed data but no erasure either", id)
	}
	return s.open(id, wrapped, ciphertext)
}

// Erase crypto-shreds the payload stored under id: it deletes the
// ciphertext and the wrapped data key and keeps a tombstone, so that Get
// returns ErrErased. Erasing an erased payload returns nil, so a caller can
// retry after a crash or an error; an unknown ID is node.ErrNotFound.
func (s *Store) Erase(ctx context.Context, id ID) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := s.erase(ctx, id); err != nil {
		return err
	}
	// Crypto-shredding only works if the wrapped data key is really gone:
	// the centre key still exists, so any surviving copy of the wrapped key
	// still opens the payload. secure_delete zeroes the deleted cells, but
	// in WAL mode the zeroed pages go to the end of the log while the old
	// pages, key included, stay in the database file until a checkpoint,
	// and older frames stay in the log file until it is truncated.
	//
	// This runs for an already-erased payload too, so retrying an Erase
	// whose checkpoint failed finishes the job.
	return s.checkpoint(ctx, s.erasures.Add(1))
}

// errCheckpoint starts the error of an Erase whose delete committed but
// whose checkpoint did not complete.
const errCheckpoint = "records erase: payload deleted, but old copies of its pages may remain in the write-ahead log until a checkpoint completes (retry Erase)"

// checkpointTimeout bounds how long Erase retries a checkpoint that other
// connections keep busy.
const checkpointTimeout = 10 * time.Second

// checkpoint runs a TRUNCATE checkpoint, which copies every committed page
// into the database file and empties the log, unless one that started after
// erasure number seq committed has already succeeded: concurrent Erases
// share one checkpoint instead of queueing for one each.
func (s *Store) checkpoint(ctx context.Context, seq uint64) error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if s.ckptCovered >= seq {
		return nil
	}
	covers := s.erasures.Load()
	ctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	// SQLite answers busy at once, without its busy handler, while another
	// connection or process holds the checkpoint lock (an automatic
	// checkpoint after a commit, say), so retry with backoff.
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var busy, logFrames, checkpointed int
		err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed)
		if err != nil {
			return fmt.Errorf("%s: %w", errCheckpoint, err)
		}
		if busy == 0 {
			s.ckptCovered = covers
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: database busy: %w", errCheckpoint, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func (s *Store) erase(ctx context.Context, id ID) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("records erase: %w", err)
	}
	defer tx.Rollback()
	var erasedAt sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT erased_at FROM payloads WHERE id = ?`, id[:]).Scan(&erasedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("records: payload %w", node.ErrNotFound)
	case err != nil:
		return fmt.Errorf("records erase: %w", err)
	case erasedAt.Valid:
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sealed WHERE id = ?`, id[:]); err != nil {
		return fmt.Errorf("records erase: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE payloads SET erased_at = ? WHERE id = ?`, s.now().UnixNano(), id[:]); err != nil {
		return fmt.Errorf("records erase: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("records erase: %w", err)
	}
	return nil
}
