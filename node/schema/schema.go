// Package schema brings a SQLite file's schema up to date: a list of
// steps, each taking the schema from one version to the next, the
// version counted in PRAGMA user_version. Each step runs in its own write
// transaction, which reads the version again, so that two processes
// opening one file at once do not apply a step twice.
package schema

import (
	"context"
	"database/sql"
	"fmt"
)

// A Step changes the schema from one version to the next, inside its
// transaction.
type Step func(ctx context.Context, tx *sql.Tx) error

// SQL is a step of statements.
func SQL(statements string) Step {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, statements)
		return err
	}
}

// Migrate applies the steps the file has not had yet, in order. A file
// of a version beyond the steps (made by a newer medfed) is refused.
func Migrate(ctx context.Context, db *sql.DB, steps []Step) error {
	for {
		done, err := next(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// next applies the one step the file needs next, if any.
func next(ctx context.Context, db *sql.DB, steps []Step) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, err
	}
	switch {
	case version < 0 || version > len(steps):
		return false, fmt.Errorf("schema version %d is newer than this program supports (%d)", version, len(steps))
	case version == len(steps):
		return true, nil
	}
	if err := steps[version](ctx, tx); err != nil {
		return false, fmt.Errorf("to version %d: %w", version+1, err)
	}
	// PRAGMA takes no bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, fmt.Errorf("to version %d: %w", version+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("to version %d: %w", version+1, err)
	}
	return false, nil
}
