package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"
)

// WriteFloor measures the durable write that appends cannot avoid, what
// bounds their rate on this machine: rows as a ledger stores them
// inserted into a fresh SQLite file at path, opened as a ledger's writer
// is (WAL, synchronous FULL), perCommit rows to a transaction, as group
// commit shares one among that many concurrent appenders. It leaves out
// the rest of an append: encoding, stamping, tree hashes, the pseudonym
// index and the hand-over to the commit loop. It writes n rows of rowSize
// bytes, each with two stored hashes, and returns rows per second.
func WriteFloor(ctx context.Context, path string, n, perCommit, rowSize int) (float64, error) {
	if n <= 0 || perCommit <= 0 || rowSize <= 0 {
		return 0, fmt.Errorf("ledger write floor: %d rows of %d bytes, %d a commit: want all positive", n, rowSize, perCommit)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("ledger write floor: %s: want a file that does not exist yet (%v)", path, err)
	}
	db, err := openDB(path, write)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := migrate(ctx, db); err != nil {
		return 0, err
	}
	ins, err := prepareInserter(ctx, db, "entries", []string{"idx", "data", "hashes"}, 16)
	if err != nil {
		return 0, err
	}
	data := make([]byte, rowSize)
	hashes := make([]byte, 64)
	if _, err := rand.Read(data); err != nil {
		return 0, err
	}
	rows := make([]any, 0, 3*perCommit)
	start := time.Now()
	for first := 0; first < n; first += perCommit {
		rows = rows[:0]
		for i := first; i < min(first+perCommit, n); i++ {
			rows = append(rows, int64(i), data, hashes)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		if err := ins.insert(ctx, tx, rows); err != nil {
			return 0, errors.Join(err, tx.Rollback())
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
