package atna

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/medfed/medfed/node/durable"
)

// CursorFile is the name of the outbox's cursor in the exporter's
// directory.
//
// The outbox is the ledger itself, from the cursor on: the ledger is
// durable and appended in order, so what remains to send is a suffix of
// it and one number says where it starts. That number is kept in a file
// replaced atomically (written beside it, synced, renamed over it, the
// directory synced), not in a SQLite table: one row written after each
// batch needs no second database with its own migrations, WAL and locks,
// and a rename is as atomic and as durable as a commit. The file also
// names the ledger's origin, so that a directory moved to another centre
// is refused rather than trusted.
const CursorFile = "atna-cursor.json"

// cursorState is the file's content.
type cursorState struct {
	Origin string `json:"origin"`
	Next   int64  `json:"next"`
}

// loadCursor returns the next index to send recorded in dir for the
// ledger of origin: zero, the ledger's start, when there is no file yet.
func loadCursor(dir, origin string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, CursorFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("atna cursor: %w", err)
	}
	var s cursorState
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, fmt.Errorf("atna cursor %s: %w", CursorFile, err)
	}
	switch {
	case s.Origin != origin:
		return 0, fmt.Errorf("atna cursor %s: it is the cursor of the ledger %q, not of %q", CursorFile, s.Origin, origin)
	case s.Next < 0:
		return 0, fmt.Errorf("atna cursor %s: negative index", CursorFile)
	}
	return s.Next, nil
}

// saveCursor records next as the next index to send, atomically: after
// a crash the file holds this cursor or the one before, never a mixture.
func saveCursor(dir, origin string, next int64) error {
	b, err := json.Marshal(cursorState{Origin: origin, Next: next})
	if err != nil {
		return fmt.Errorf("atna cursor: %w", err)
	}
	if err := durable.Replace(filepath.Join(dir, CursorFile), append(b, '\n')); err != nil {
		return fmt.Errorf("atna cursor: %w", err)
	}
	return nil
}
