package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/medfed/medfed/node"
)

// applicationID marks a SQLite file as a medfed ledger ("mfLG").
const applicationID = 0x6d664c47

// ErrNotLedger is returned when a file exists but is not a medfed ledger.
var ErrNotLedger = node.E(node.Invalid, "not a medfed ledger")

// migrations are applied in order, each in its own transaction; the
// database's user_version counts how many have run.
var migrations = []string{
	// 1: entries with their stored tree hashes, and every checkpoint the
	// centre ever signed. The pseudonym index is a file of its own (index.go).
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value BLOB NOT NULL
	) STRICT;
	CREATE TABLE entries (
		idx       INTEGER PRIMARY KEY, -- leaf index, 0 to size-1
		data      BLOB NOT NULL,       -- canonical entry encoding (the leaf)
		hashes    BLOB NOT NULL        -- tlog.StoredHashes for this leaf, 32 bytes each
	) STRICT;
	CREATE TABLE checkpoints (
		size INTEGER PRIMARY KEY,
		root BLOB NOT NULL,
		note BLOB NOT NULL
	) STRICT;`,
	// 2: this centre as a witness of other centres' logs: the checkpoint it
	// last cosigned of each, and evidence of any that signed two histories.
	`CREATE TABLE witnessed (
		origin  TEXT PRIMARY KEY,
		size    INTEGER NOT NULL,
		root    BLOB NOT NULL,
		note    BLOB NOT NULL,
		blocked INTEGER NOT NULL DEFAULT 0 -- 1 after equivocation: cosign no more
	) STRICT;
	CREATE TABLE evidence (
		id      INTEGER PRIMARY KEY,
		origin  TEXT NOT NULL,
		held    BLOB NOT NULL,
		offered BLOB NOT NULL,
		reason  TEXT NOT NULL,
		seen    INTEGER NOT NULL -- Unix nanoseconds
	) STRICT;`,
	// 3: a checkpoint is final once the witness quorum cosigned it; the
	// note with those cosignatures is kept beside the centre's own.
	`ALTER TABLE checkpoints ADD COLUMN cosigned BLOB;`,
	// 4: this centre as a mirror of the logs it witnesses: their entries,
	// sealed by each log's centre to itself, so that a centre restored
	// from an old backup gets back what it appended since (mirror.go).
	`CREATE TABLE mirrors (
		origin TEXT NOT NULL,
		start  INTEGER NOT NULL, -- the first entry's index
		count  INTEGER NOT NULL,
		blob   BLOB NOT NULL,    -- sealed by the log's centre: opaque here
		mac    BLOB NOT NULL,    -- this centre's MAC of the row
		PRIMARY KEY (origin, start)
	) STRICT;`,
}

// access says how a connection may use the database file.
type access int

const (
	write        access = iota // the single writer
	writeDerived               // the writer of a file rebuilt from the ledger
	readShared                 // readers beside the writer, in this process
	readFile                   // read-only, opening nothing for writing (verify, checks)
)

// dsn builds a go-sqlite3 connection string. Every connection gets WAL,
// synchronous=FULL (a commit is on disk when it returns: group commit makes
// the fsync cheap per entry, so we take the durable setting), foreign keys
// and a busy timeout.
func dsn(path string, a access) string {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath()}
	q := url.Values{}
	switch a {
	case readFile:
		q.Set("mode", "ro")
		q.Set("_query_only", "true")
	case readShared:
		q.Set("_query_only", "true")
	case write, writeDerived:
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		if a == writeDerived {
			q.Set("_synchronous", "NORMAL")
		}
		q.Set("_txlock", "immediate")
	}
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", "10000")
	// 8 MiB of page cache a connection: the B-tree's inner pages, a
	// million entries' taking about 1 MiB; its leaves come from the
	// system's file cache, which a centre's resident memory does not
	// count. At 64 MiB, the connections that had read a million entries
	// (the start-up announce, a verify) held hundreds of MiB for good.
	q.Set("_cache_size", "-8192")
	// And its last 32 statements prepared: an entry or index read skips
	// SQLite's parse and plan, which in a profile of the query suite took
	// as much CPU as the reads' steps (1.7 s against 1.8).
	q.Set("_stmt_cache_size", "32")
	u.RawQuery = q.Encode()
	return u.String()
}

// checkFile refuses a file that exists but is not a medfed ledger, reading
// it without writing a byte (a read-write open would already switch its
// journal mode).
func checkFile(path string) (exists bool, err error) {
	return checkApp(path, applicationID)
}

func checkApp(path string, app int64) (exists bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s: %w (not a regular file)", path, ErrNotLedger)
	}
	db, err := sql.Open("sqlite3", dsn(path, readFile))
	if err != nil {
		return false, err
	}
	defer db.Close()
	var id int64
	if err := db.QueryRow("PRAGMA application_id").Scan(&id); err != nil {
		return false, fmt.Errorf("%s: %w: %v", path, ErrNotLedger, err)
	}
	if id == 0 && fi.Size() == 0 {
		return false, nil // an empty file: SQLite makes it a new database
	}
	if id != app {
		return false, fmt.Errorf("%s: %w (application id %#x)", path, ErrNotLedger, id)
	}
	return true, nil
}

// migrate brings the schema up to date, one transaction per migration.
func migrate(ctx context.Context, db *sql.DB) error {
	return migrateDB(ctx, db, migrations, applicationID)
}

func migrateDB(ctx context.Context, db *sql.DB, migrations []string, app int64) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this medfed (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if i == 0 {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", app)); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

func openDB(path string, a access) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", dsn(abs, a))
	if err != nil {
		return nil, err
	}
	if a == write || a == writeDerived {
		db.SetMaxOpenConns(1) // one writer; group commit serialises anyway
	}
	db.SetConnMaxLifetime(0)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(time.Minute) // and its cache with it
	return db, nil
}

// rowInserter inserts many rows with few statement executions: each
// execution of a prepared statement crosses database/sql and cgo, which
// cost as much as SQLite's own work for a small row.
type rowInserter struct {
	wide   *sql.Stmt // inserts width rows at once
	narrow *sql.Stmt // inserts one row
	width  int
	cols   int
}

// prepareInserter prepares "INSERT INTO table (cols) VALUES (...)" for
// width rows and for one row.
func prepareInserter(ctx context.Context, db *sql.DB, table string, cols []string, width int) (*rowInserter, error) {
	row := "(?" + strings.Repeat(", ?", len(cols)-1) + ")"
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	r := &rowInserter{width: width, cols: len(cols)}
	var err error
	if r.wide, err = db.PrepareContext(ctx, head+row+strings.Repeat(", "+row, width-1)); err != nil {
		return nil, err
	}
	if r.narrow, err = db.PrepareContext(ctx, head+row); err != nil {
		r.wide.Close()
		return nil, err
	}
	return r, nil
}

// chunk is how many values one execution of the wide statement takes.
func (r *rowInserter) chunk() int { return r.width * r.cols }

// insert inserts rows (each len(cols) values, flattened into args) in tx.
func (r *rowInserter) insert(ctx context.Context, tx *sql.Tx, args []any) error {
	wide, narrow := tx.StmtContext(ctx, r.wide), tx.StmtContext(ctx, r.narrow)
	chunk := r.width * r.cols
	for len(args) >= chunk {
		if _, err := wide.ExecContext(ctx, args[:chunk]...); err != nil {
			return err
		}
		args = args[chunk:]
	}
	for len(args) > 0 {
		if _, err := narrow.ExecContext(ctx, args[:r.cols]...); err != nil {
			return err
		}
		args = args[r.cols:]
	}
	return nil
}

func (r *rowInserter) Close() error {
	if r == nil {
		return nil
	}
	return errors.Join(r.wide.Close(), r.narrow.Close())
}
