package ledger

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/medfed/medfed/node"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Entry returns the entry at index.
func (l *Ledger) Entry(ctx context.Context, index int64) (Entry, error) {
	l.mu.RLock()
	size := l.size
	encs, held := l.tail.get(index, index+1)
	l.mu.RUnlock()
	if index < 0 || index >= size {
		return Entry{}, fmt.Errorf("ledger entry %d: %w", index, node.ErrNotFound)
	}
	var data []byte
	if held {
		data = encs[0]
	} else if err := l.r.QueryRowContext(ctx, "SELECT data FROM entries WHERE idx = ?", index).Scan(&data); err != nil {
		return Entry{}, fmt.Errorf("ledger entry %d: %w", index, err)
	}
	e, err := Decode(data)
	if err != nil {
		return Entry{}, fmt.Errorf("ledger entry %d: %w", index, err)
	}
	return e, nil
}

// Entries returns the entries with index in [from, to), in order.
func (l *Ledger) Entries(ctx context.Context, from, to int64) ([]Entry, error) {
	l.mu.RLock()
	size := l.size
	encs, held := l.tail.get(from, to)
	l.mu.RUnlock()
	if from < 0 || to > size || from > to {
		return nil, fmt.Errorf("ledger entries [%d, %d) of %d: %w", from, to, size, node.ErrNotFound)
	}
	if held {
		out := make([]Entry, len(encs))
		for i, enc := range encs {
			e, err := Decode(enc)
			if err != nil {
				return nil, fmt.Errorf("ledger entry %d: %w", from+int64(i), err)
			}
			out[i] = e
		}
		return out, nil
	}
	rows, err := l.r.QueryContext(ctx, "SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger entries: %w", err)
	}
	return scanEntries(rows, int(to-from))
}

// EntriesOfKind returns every entry of kind k, in ledger order. It scans
// the ledger (in SQLite, reading one byte of each entry), so it is for rare
// kinds read at start, like charter entries; EachOfKind reads common ones.
func (l *Ledger) EntriesOfKind(ctx context.Context, k Kind) ([]Entry, error) {
	var out []Entry
	err := l.EachOfKind(ctx, k, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// EachOfKind calls f with every entry of kind k, in ledger order, one at a
// time, so that a reader of a common kind (a centre's records, at start)
// holds one entry in memory rather than all of them. An error from f stops
// the scan and is returned as it is.
func (l *Ledger) EachOfKind(ctx context.Context, k Kind, f func(Entry) error) error {
	rows, err := l.r.QueryContext(ctx, "SELECT data FROM entries WHERE substr(data, 2, 1) = ? AND idx < ? ORDER BY idx", []byte{byte(k)}, l.Size())
	if err != nil {
		return fmt.Errorf("ledger entries of kind %s: %w", k, err)
	}
	var ferr error // f's error, returned as it is
	err = eachEntry(rows, func(e Entry) error {
		ferr = f(e)
		return ferr
	})
	switch {
	case ferr != nil:
		return ferr
	case err != nil:
		return fmt.Errorf("ledger entries of kind %s: %w", k, err)
	}
	return nil
}

// EntriesFor returns every entry about patient p, in ledger order.
func (l *Ledger) EntriesFor(ctx context.Context, p Pseudonym) ([]Entry, error) {
	return l.EntriesForKinds(ctx, p)
}

// EntriesForKinds returns the entries about patient p of the kinds given
// (all when none), in ledger order. The kinds are filtered in SQLite, so a
// patient's many access entries cost nothing to a reader of records.
func (l *Ledger) EntriesForKinds(ctx context.Context, p Pseudonym, kinds ...Kind) ([]Entry, error) {
	idxs, err := l.index.lookup(ctx, p, l.Size())
	if err != nil {
		return nil, fmt.Errorf("ledger entries for %s: %w", p, err)
	}
	kindFilter := ""
	var kindArgs []any
	if len(kinds) > 0 {
		kindFilter = " AND substr(data, 2, 1) IN (?" + strings.Repeat(",?", len(kinds)-1) + ")"
		for _, k := range kinds {
			kindArgs = append(kindArgs, []byte{byte(k)})
		}
	}
	const chunk = 500
	out := make([]Entry, 0, len(idxs))
	for len(idxs) > 0 {
		n := min(len(idxs), chunk)
		args := make([]any, 0, n+len(kindArgs))
		for _, i := range idxs[:n] {
			args = append(args, i)
		}
		rows, err := l.r.QueryContext(ctx, "SELECT data FROM entries WHERE idx IN (?"+strings.Repeat(",?", n-1)+")"+kindFilter+" ORDER BY idx", append(args, kindArgs...)...)
		if err != nil {
			return nil, fmt.Errorf("ledger entries for %s: %w", p, err)
		}
		es, err := scanEntries(rows, n)
		if err != nil {
			return nil, fmt.Errorf("ledger entries for %s: %w", p, err)
		}
		for _, e := range es {
			if e.Subject != p {
				return nil, fmt.Errorf("ledger entries for %s: pseudonym index names entry %d about another patient", p, e.Index)
			}
		}
		out = append(out, es...)
		idxs = idxs[n:]
	}
	return out, nil
}

func scanEntries(rows *sql.Rows, capacity int) ([]Entry, error) {
	out := make([]Entry, 0, capacity)
	err := eachEntry(rows, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachEntry decodes rows of entry data one at a time, calls f with each,
// and closes rows.
func eachEntry(rows *sql.Rows, f func(Entry) error) error {
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return err
		}
		e, err := Decode(data)
		if err != nil {
			return fmt.Errorf("stored entry: %w", err)
		}
		if err := f(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// want is a stored hash to read from disk: its position in the request,
// its level, and the leaf whose row holds it.
type want struct {
	pos, level int
	n, leaf    int64
}

// readStored reads stored hashes by index: upper levels from memory, the
// rest from the entry rows that hold them.
func (l *Ledger) readStored(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var wants []want
	l.mu.RLock()
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		if h, ok := l.upper.get(level, n); ok {
			out[i] = h
			continue
		}
		// The hash is in the row of the leaf that completed its subtree.
		wants = append(wants, want{i, level, n, leafOf(level, n)})
	}
	// Below the upper cache: the block not complete yet is in memory,
	// and a complete one in one row. An inclusion proof's hashes are in
	// its leaf's block and, for a tree whose size is not a multiple of
	// 32, the tree's last block: one row read, two for an older tree.
	current, last := l.size/blockLeaves, l.block
	l.mu.RUnlock()
	var blocks [2]int64
	k := 0
	wants = slices.DeleteFunc(wants, func(w want) bool {
		if w.level >= cacheLevel {
			return false // a subtree the upper cache has not got: its row
		}
		b, pos := blockOf(w.level, w.n)
		switch {
		case b == current:
			out[w.pos] = last[pos]
			return true
		case k < len(blocks) && !slices.Contains(blocks[:k], b):
			blocks[k] = b
			k++
		}
		return false
	})
	for _, b := range blocks[:k] {
		var err error
		if wants, err = l.readBlock(b, wants, out); err != nil {
			return nil, err
		}
	}
	// An inclusion proof needs fewer than hashQueryWidth rows, so this
	// is one query; a consistency proof may take a few.
	var leaves [hashQueryWidth]int64
	var blobs [hashQueryWidth][]byte
	for len(wants) > 0 {
		k := 0
		for _, w := range wants {
			if k < len(leaves) && !slices.Contains(leaves[:k], w.leaf) {
				leaves[k] = w.leaf
				k++
			}
		}
		if err := l.queryHashRows(ctx, leaves[:k], blobs[:k]); err != nil {
			return nil, err
		}
		rest := wants[:0]
		for _, w := range wants {
			j := slices.Index(leaves[:k], w.leaf)
			if j < 0 {
				rest = append(rest, w)
				continue
			}
			blob := blobs[j]
			if len(blob) < (w.level+1)*tlog.HashSize || len(blob)%tlog.HashSize != 0 {
				return nil, fmt.Errorf("entry %d: stored hashes of %d bytes, want hash %d", w.leaf, len(blob), w.level)
			}
			copy(out[w.pos][:], blob[w.level*tlog.HashSize:])
		}
		wants = rest
	}
	return out, nil
}

// readBlock reads those of the stored hashes wants that are in block
// from the index's copy of it, and returns the others. When the index
// holds none (blocks went missing), its hashes are returned with the
// others, to read from their leaves' rows.
func (l *Ledger) readBlock(block int64, wants []want, out []tlog.Hash) ([]want, error) {
	if l.index == nil {
		return wants, nil // opening: the frontier is in the last block
	}
	blob, ok, err := l.index.block(block)
	if err != nil || !ok {
		return wants, err
	}
	if len(blob) != blockBytes {
		return nil, fmt.Errorf("hash block %d: %d bytes", block, len(blob))
	}
	return slices.DeleteFunc(wants, func(w want) bool {
		if w.level >= cacheLevel {
			return false
		}
		b, pos := blockOf(w.level, w.n)
		if b == block {
			copy(out[w.pos][:], blob[pos*tlog.HashSize:])
		}
		return b == block
	}), nil
}

// hashQueryWidth is how many rows one hash query reads: an inclusion proof
// needs at most cacheLevel rows below the cache, plus a few for the right
// edge of the tree.
const hashQueryWidth = 8

// hashQuery reads the stored hashes of hashQueryWidth entries as one row,
// a column each: one statement step and no temporary table, where "idx IN
// (...)" costs one step a row and sorts the list first.
var hashQuery = "SELECT " + strings.Repeat("(SELECT hashes FROM entries WHERE idx = ?), ", hashQueryWidth-1) +
	"(SELECT hashes FROM entries WHERE idx = ?)"

// queryHashRows reads the stored hashes of the given leaves (at most
// hashQueryWidth) into blobs.
func (l *Ledger) queryHashRows(ctx context.Context, leaves []int64, blobs [][]byte) error {
	var args [hashQueryWidth]any
	for i := range args {
		args[i] = leaves[min(i, len(leaves)-1)] // pad with a repeat
	}
	var raw [hashQueryWidth]sql.RawBytes
	var dest [hashQueryWidth]any
	for i := range dest {
		dest[i] = &raw[i]
	}
	rows, err := l.hashQuery.QueryContext(ctx, args[:]...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		return cmp.Or(rows.Err(), errors.New("hash query returned no row"))
	}
	if err := rows.Scan(dest[:]...); err != nil {
		return err
	}
	for i := range leaves {
		if raw[i] == nil {
			return fmt.Errorf("stored hashes of entry %d: %w", leaves[i], node.ErrNotFound)
		}
		blobs[i] = bytes.Clone(raw[i]) // raw is SQLite's, valid until Close
	}
	return rows.Close()
}

// eachIndexed calls f with every row of rows, an entry's index and a
// blob of it, and closes rows. The blob is SQLite's own buffer, valid only
// during the call: f copies what it keeps.
func eachIndexed(rows *sql.Rows, f func(n int64, blob []byte) error) error {
	defer rows.Close()
	for rows.Next() {
		var n int64
		var blob sql.RawBytes
		if err := rows.Scan(&n, &blob); err != nil {
			return err
		}
		if err := f(n, blob); err != nil {
			return err
		}
	}
	return rows.Err()
}

// eachRow is eachIndexed for rows of an index and two blobs.
func eachRow(rows *sql.Rows, f func(n int64, a, b []byte) error) error {
	defer rows.Close()
	for rows.Next() {
		var n int64
		var a, b sql.RawBytes
		if err := rows.Scan(&n, &a, &b); err != nil {
			return err
		}
		if err := f(n, a, b); err != nil {
			return err
		}
	}
	return rows.Err()
}

func splitHashes(blob []byte) ([]tlog.Hash, error) {
	if len(blob) == 0 || len(blob)%tlog.HashSize != 0 {
		return nil, fmt.Errorf("stored hashes of %d bytes", len(blob))
	}
	hs := make([]tlog.Hash, len(blob)/tlog.HashSize)
	for i := range hs {
		copy(hs[i][:], blob[i*tlog.HashSize:])
	}
	return hs, nil
}

func (l *Ledger) hashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return l.readStored(ctx, indexes)
	})
}

// ProveInclusion returns the proof that the entry at index is in the tree of
// the given size (size at most Size()).
func (l *Ledger) ProveInclusion(ctx context.Context, index, size int64) (tlog.RecordProof, error) {
	if size > l.Size() || index < 0 || index >= size {
		return nil, fmt.Errorf("ledger prove inclusion of %d in %d: %w", index, size, node.ErrNotFound)
	}
	p, err := tlog.ProveRecord(size, index, l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("ledger prove inclusion of %d in %d: %w", index, size, err)
	}
	return p, nil
}

// ProveConsistency returns the proof that the tree of size newer extends the
// tree of size older.
func (l *Ledger) ProveConsistency(ctx context.Context, older, newer int64) (tlog.TreeProof, error) {
	if newer > l.Size() || older < 0 || older > newer {
		return nil, fmt.Errorf("ledger prove consistency %d to %d: %w", older, newer, node.ErrNotFound)
	}
	if older == 0 || older == newer {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(newer, older, l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("ledger prove consistency %d to %d: %w", older, newer, err)
	}
	return p, nil
}

// RootAt returns the root of the tree of the first size entries.
func (l *Ledger) RootAt(ctx context.Context, size int64) (tlog.Hash, error) {
	if size < 0 || size > l.Size() {
		return tlog.Hash{}, fmt.Errorf("ledger root: size %d of a ledger of %d", size, l.Size())
	}
	return tlog.TreeHash(size, l.hashReader(ctx))
}

// Sign signs a checkpoint of every entry appended so far and stores it. It
// refuses, with ErrInconsistent, to sign a tree that does not extend the last
// checkpoint it signed: the centre never signs two conflicting histories,
// even if its database was altered underneath it. Signing an unchanged tree
// returns the existing checkpoint.
func (l *Ledger) Sign(ctx context.Context) (SignedCheckpoint, error) {
	l.signMu.Lock()
	defer l.signMu.Unlock()
	if err := l.Halted(); err != nil {
		return SignedCheckpoint{}, fmt.Errorf("ledger sign: %w", err)
	}
	head := l.Head()
	prev := l.latest
	if prev.Note != nil {
		switch {
		case head.Size < prev.Size:
			return SignedCheckpoint{}, fmt.Errorf("ledger sign: %w: size %d is below the signed %d", ErrInconsistent, head.Size, prev.Size)
		case head.Size == prev.Size && head.Root == prev.Root:
			return prev, nil
		}
		proof, err := l.ProveConsistency(ctx, prev.Size, head.Size)
		if err != nil {
			return SignedCheckpoint{}, fmt.Errorf("ledger sign: %w", err)
		}
		if err := VerifyConsistency(prev.Checkpoint, head, proof); err != nil {
			return SignedCheckpoint{}, fmt.Errorf("ledger sign: %w: %v", ErrInconsistent, err)
		}
	}
	msg, err := note.Sign(&note.Note{Text: head.Text()}, l.signer)
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("ledger sign: %w", err)
	}
	if err := l.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO checkpoints (size, root, note) VALUES (?, ?, ?)", head.Size, head.Root[:], msg)
		return err
	}); err != nil {
		return SignedCheckpoint{}, fmt.Errorf("ledger sign: %w", err)
	}
	l.latest = SignedCheckpoint{Checkpoint: head, Note: msg}
	l.log.Debug("checkpoint signed", "size", head.Size)
	return l.latest, nil
}

// LatestCheckpoint returns the last checkpoint the centre signed, and false
// if it has signed none.
func (l *Ledger) LatestCheckpoint() (SignedCheckpoint, bool) {
	l.signMu.Lock()
	defer l.signMu.Unlock()
	return l.latest, l.latest.Note != nil
}

// Checkpoint returns the stored checkpoint of the given size.
func (l *Ledger) Checkpoint(ctx context.Context, size int64) (SignedCheckpoint, error) {
	var msg []byte
	err := l.r.QueryRowContext(ctx, "SELECT note FROM checkpoints WHERE size = ?", size).Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return SignedCheckpoint{}, fmt.Errorf("ledger checkpoint %d: %w", size, node.ErrNotFound)
	}
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("ledger checkpoint %d: %w", size, err)
	}
	return l.openNote(msg)
}

// MarkFinal stores the cosigned note of the checkpoint of the given size,
// which the caller has checked carries the witness quorum. Its text must be
// the checkpoint this centre signed.
func (l *Ledger) MarkFinal(ctx context.Context, size int64, cosigned []byte) error {
	sc, err := l.Checkpoint(ctx, size)
	if err != nil {
		return err
	}
	final, err := l.openNote(cosigned)
	if err != nil || final.Checkpoint != sc.Checkpoint {
		return fmt.Errorf("ledger mark final %d: the cosigned note is not this checkpoint", size)
	}
	if err := l.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE checkpoints SET cosigned = ? WHERE size = ?", cosigned, size)
		return err
	}); err != nil {
		return fmt.Errorf("ledger mark final %d: %w", size, err)
	}
	l.signMu.Lock()
	if size >= l.final.Size {
		l.final = SignedCheckpoint{Checkpoint: sc.Checkpoint, Note: cosigned}
	}
	l.signMu.Unlock()
	return nil
}

// LatestFinal returns the latest checkpoint the witness quorum cosigned,
// with their cosignatures, and false if none is final yet. Later proofs are
// made against it.
func (l *Ledger) LatestFinal() (SignedCheckpoint, bool) {
	l.signMu.Lock()
	defer l.signMu.Unlock()
	return l.final, l.final.Note != nil
}
