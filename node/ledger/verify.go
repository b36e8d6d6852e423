package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Report is the result of a clean verification.
type Report struct {
	Origin      string
	Size        int64
	Root        tlog.Hash
	Checkpoints int   // signed checkpoints checked
	Final       int   // of them, final ones whose cosignatures were checked
	LatestFinal int64 // the size of the latest final checkpoint; 0 when none
}

// Trust is what a verification rests on: the centre's public key and,
// to check its final checkpoints, Final, which opens a cosigned note as
// the federation's witnesses' (federation.OpenFinal). With Final nil, a
// cosigned note is checked for the centre's signature and root only.
type Trust struct {
	Key ed25519.PublicKey
	// KeyOf, when Key is nil, returns the key of the centre whose log has
	// the ledger's origin (from the charter).
	KeyOf func(origin string) (ed25519.PublicKey, error)
	Final func(cosigned []byte) (Checkpoint, error)
}

// TamperError says where verification first failed. Index is the first
// entry that does not check out, or -1 when the fault is in a checkpoint of
// size Checkpoint.
type TamperError struct {
	Index      int64
	Checkpoint int64
	Reason     string
	// Table is the table the fault was found in: entries, checkpoints, or
	// the pseudonym index's postings or watermark (IndexPath's file), or
	// blocks, its hash blocks (BlocksPath's file).
	Table string
}

// InIndex reports whether the fault is in the pseudonym index's files
// (IndexPath, BlocksPath), not the ledger's.
func (e *TamperError) InIndex() bool {
	return e.Table == "postings" || e.Table == "blocks" || e.Table == "watermark"
}

func (e *TamperError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("entry %d: %s", e.Index, e.Reason)
	}
	return fmt.Sprintf("checkpoint of size %d: %s", e.Checkpoint, e.Reason)
}

func badEntry(i int64, format string, args ...any) error {
	return &TamperError{Index: i, Checkpoint: -1, Reason: fmt.Sprintf(format, args...), Table: "entries"}
}

func badCheckpoint(size int64, format string, args ...any) error {
	return &TamperError{Index: -1, Checkpoint: size, Reason: fmt.Sprintf(format, args...), Table: "checkpoints"}
}

// badIndex is an entry the pseudonym index's table misstates.
func badIndex(i int64, table, format string, args ...any) error {
	return &TamperError{Index: i, Checkpoint: -1, Reason: fmt.Sprintf(format, args...), Table: table}
}

// Verify checks the ledger file at path offline, writing nothing: it
// recomputes every leaf hash and every stored tree hash from the entries, and
// checks every stored checkpoint's signature with pub (the centre's public
// key, the trust anchor: a key read from the file itself would prove
// nothing) and its root against the entries. It returns a *TamperError
// naming the first bad entry or checkpoint.
func Verify(ctx context.Context, path string, pub ed25519.PublicKey) (Report, error) {
	return VerifyWith(ctx, path, Trust{Key: pub})
}

// VerifyWith is Verify resting on trust: with trust.Final, every final
// checkpoint's cosignatures are checked too, so that a centre that
// rewrote its ledger and signed it again is caught by anyone holding the
// charter (the witnesses cosigned the old roots).
func VerifyWith(ctx context.Context, path string, trust Trust) (Report, error) {
	if _, err := os.Stat(path); err != nil {
		return Report{}, fmt.Errorf("ledger verify: %w", err)
	}
	if _, err := checkFile(path); err != nil {
		return Report{}, fmt.Errorf("ledger verify: %w", err)
	}
	db, err := openDB(path, readFile)
	if err != nil {
		return Report{}, fmt.Errorf("ledger verify: %w", err)
	}
	defer db.Close()
	// One read transaction: a live node may append while we read.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Report{}, fmt.Errorf("ledger verify: %w", err)
	}
	defer tx.Rollback()
	rep, err := verifyTx(ctx, tx, trust, path)
	if err != nil {
		var te *TamperError
		if errors.As(err, &te) {
			return rep, err
		}
		return rep, fmt.Errorf("ledger verify: %w", err)
	}
	return rep, nil
}

type storedCheckpoint struct {
	size     int64
	root     []byte
	note     []byte
	cosigned []byte
}

// verifyTx checks the ledger in tx, and the index of the ledger at path.
func verifyTx(ctx context.Context, tx *sql.Tx, trust Trust, path string) (Report, error) {
	pub := trust.Key
	var rep Report
	var origin, key []byte
	if err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'origin'").Scan(&origin); err != nil {
		return rep, fmt.Errorf("reading origin: %w", err)
	}
	rep.Origin = string(origin)
	if pub == nil {
		if trust.KeyOf == nil {
			return rep, errors.New("no key to verify the ledger with")
		}
		var err error
		if pub, err = trust.KeyOf(rep.Origin); err != nil {
			return rep, err
		}
	}
	if err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'public_key'").Scan(&key); err != nil {
		return rep, fmt.Errorf("reading public key: %w", err)
	}
	if !bytes.Equal(key, pub) {
		return rep, fmt.Errorf("the ledger names another public key than the centre's")
	}
	verifier, err := NewVerifier(rep.Origin, pub)
	if err != nil {
		return rep, err
	}
	cps, final, err := readCheckpoints(ctx, tx, rep.Origin, verifier, trust.Final)
	if err != nil {
		return rep, err
	}
	rep.Checkpoints, rep.Final = len(cps), len(final)
	if len(final) > 0 {
		rep.LatestFinal = final[len(final)-1]
	}

	postings, err := openPostings(ctx, IndexPath(path), BlocksPath(path))
	if err != nil {
		return rep, err
	}
	defer postings.close()
	if postings.watermark > 0 {
		var size int64
		if err := tx.QueryRowContext(ctx, "SELECT ifnull(max(idx) + 1, 0) FROM entries").Scan(&size); err != nil {
			return rep, err
		}
		if postings.watermark > size {
			return rep, badIndex(size, "watermark", "missing: the pseudonym index covers %d entries", postings.watermark)
		}
	}

	// Reading rows (cgo) and hashing them run on separate cores.
	ctx, cancel := context.WithCancel(ctx)
	batches, readErr := streamEntries(ctx, tx)
	defer func() { // on an early return, let the reader finish with tx first
		cancel()
		for range batches {
		}
	}()
	front := frontier{}
	var (
		n     int64
		block hashBlock
	)
	for batch := range batches {
		for _, r := range batch.rows {
			data, blob := batch.buf[r.data:r.hashes], batch.buf[r.hashes:r.end]
			if r.idx != n {
				return rep, badEntry(n, "missing (next stored entry is %d)", r.idx)
			}
			e, hs, err := checkLeaf(n, data, blob, front)
			if err != nil {
				return rep, err
			}
			if block.put(n, hs) {
				if err := postings.checkBlock(n/blockLeaves, &block); err != nil {
					return rep, err
				}
			}
			if err := postings.check(ctx, n, e.Subject); err != nil {
				return rep, err
			}
			n++
			for len(cps) > 0 && cps[0].Size == n {
				if root, _ := tlog.TreeHash(n, front); root != cps[0].Root {
					return rep, badCheckpoint(n, "signed root does not match entries 0 to %d", n-1)
				}
				cps = cps[1:]
			}
		}
	}
	if err := <-readErr; err != nil {
		return rep, err
	}
	if len(cps) > 0 {
		return rep, badEntry(n, "missing: a checkpoint of size %d was signed", cps[0].Size)
	}
	if err := postings.finish(ctx); err != nil {
		return rep, err
	}
	rep.Size = n
	rep.Root, err = tlog.TreeHash(n, front)
	return rep, err
}

// entryBatch holds consecutive entry rows, their bytes in one buffer.
type entryBatch struct {
	buf  []byte
	rows []entryRow
}

type entryRow struct {
	idx               int64
	data, hashes, end int // offsets in buf
}

// streamEntries reads every entry row in index order into batches. The
// error channel yields the read's outcome once the batches are done.
func streamEntries(ctx context.Context, tx *sql.Tx) (<-chan entryBatch, <-chan error) {
	const batchRows = 1024
	batches := make(chan entryBatch, 4)
	errc := make(chan error, 1)
	go func() {
		defer close(batches)
		errc <- func() error {
			rows, err := tx.QueryContext(ctx, "SELECT idx, data, hashes FROM entries ORDER BY idx")
			if err != nil {
				return err
			}
			defer rows.Close()
			b := entryBatch{}
			send := func() bool {
				select {
				case batches <- b:
					b = entryBatch{buf: make([]byte, 0, len(b.buf)), rows: make([]entryRow, 0, batchRows)}
					return true
				case <-ctx.Done():
					return false
				}
			}
			var data, blob sql.RawBytes
			for rows.Next() {
				r := entryRow{}
				if err := rows.Scan(&r.idx, &data, &blob); err != nil {
					return err
				}
				r.data = len(b.buf)
				b.buf = append(b.buf, data...)
				r.hashes = len(b.buf)
				b.buf = append(b.buf, blob...)
				r.end = len(b.buf)
				b.rows = append(b.rows, r)
				if len(b.rows) == batchRows && !send() {
					return ctx.Err()
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(b.rows) > 0 && !send() {
				return ctx.Err()
			}
			return nil
		}()
	}()
	return batches, errc
}

// checkLeaf verifies one stored entry row against its recomputed hashes,
// and returns the entry and the hashes.
func checkLeaf(n int64, data, blob []byte, front frontier) (Entry, []tlog.Hash, error) {
	e, err := Decode(data)
	if err != nil {
		return e, nil, badEntry(n, "%v", err)
	}
	if e.Index != n {
		return e, nil, badEntry(n, "holds the entry of index %d", e.Index)
	}
	hs, err := front.appendLeaf(n, data)
	if err != nil {
		return e, nil, badEntry(n, "%v", err)
	}
	if !bytes.Equal(blob, hashesBlob(hs)) {
		return e, nil, badEntry(n, "stored tree hashes do not match the entries")
	}
	return e, hs, nil
}

// checkBlock compares the stored copy of complete hash block b, when the
// index holds one (those above its watermark are in memory only, and
// those of a file cut short missing: Open rebuilds them), with its hashes
// recomputed from the entries.
func (pc *postingCheck) checkBlock(b int64, want *hashBlock) error {
	if pc.blockf == nil || b >= pc.watermark/blockLeaves {
		return nil
	}
	if pc.stored == nil {
		pc.stored = make([]byte, blockBytes)
	}
	switch _, err := pc.blockf.ReadAt(pc.stored, b*int64(blockBytes)); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return fmt.Errorf("hash block %d: %w", b, err)
	}
	if !bytes.Equal(pc.stored, want.blob()) {
		return badIndex(b*blockLeaves, "blocks", "the pseudonym index's hash block of entries %d to %d does not match them", b*blockLeaves, b*blockLeaves+blockLeaves-1)
	}
	return nil
}

// readCheckpoints returns every stored checkpoint, opened and checked, by
// increasing size.
// readCheckpoints reads and checks the stored checkpoints, and returns
// them with the sizes of the final ones (cosigned), oldest first.
func readCheckpoints(ctx context.Context, tx *sql.Tx, origin string, v note.Verifier, final func([]byte) (Checkpoint, error)) ([]Checkpoint, []int64, error) {
	rows, err := tx.QueryContext(ctx, "SELECT size, root, note, cosigned FROM checkpoints ORDER BY size")
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var stored []storedCheckpoint
	for rows.Next() {
		var s storedCheckpoint
		if err := rows.Scan(&s.size, &s.root, &s.note, &s.cosigned); err != nil {
			return nil, nil, err
		}
		stored = append(stored, s)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	var (
		cps   []Checkpoint
		sizes []int64
	)
	for _, s := range stored {
		n, err := note.Open(s.note, note.VerifierList(v))
		if err != nil {
			return nil, nil, badCheckpoint(s.size, "signature does not verify with the centre's key")
		}
		c, err := ParseCheckpoint(n.Text)
		if err != nil {
			return nil, nil, badCheckpoint(s.size, "%v", err)
		}
		switch {
		case c.Origin != origin:
			return nil, nil, badCheckpoint(s.size, "signed for origin %q", c.Origin)
		case c.Size != s.size:
			return nil, nil, badCheckpoint(s.size, "signed for size %d", c.Size)
		case !bytes.Equal(c.Root[:], s.root):
			return nil, nil, badCheckpoint(s.size, "stored root differs from the signed one")
		}
		cps = append(cps, c)
		if s.cosigned == nil {
			continue
		}
		open := final
		if open == nil {
			open = func(msg []byte) (Checkpoint, error) {
				n, err := note.Open(msg, note.VerifierList(v))
				if err != nil {
					return Checkpoint{}, err
				}
				return ParseCheckpoint(n.Text)
			}
		}
		fc, err := open(s.cosigned)
		switch {
		case err != nil:
			return nil, nil, badCheckpoint(s.size, "stored as final, but its cosignatures do not make it so: %v", err)
		case fc.Origin != origin || fc.Size != c.Size || fc.Root != c.Root:
			return nil, nil, badCheckpoint(s.size, "the witnesses cosigned another checkpoint (size %d) than the one stored", fc.Size)
		}
		sizes = append(sizes, s.size)
	}
	return cps, sizes, nil
}

// postingCheck compares the pseudonym index with the entries, one bucket
// at a time: below the index's watermark, every entry with a subject has
// exactly its posting. An absent index is fine (Open rebuilds it); a wrong
// one would hide entries from a patient's view, so it is reported against
// the entry it misstates.
type postingCheck struct {
	db        *sql.DB
	tx        *sql.Tx
	watermark int64
	blockf    *os.File            // the hash blocks, when the file is there
	stored    []byte              // the block read last
	bucket    int64               // the bucket loaded in want
	want      map[int64]Pseudonym // postings of that bucket not yet matched
	next      chan bucketLoad     // the next bucket, read ahead
}

type bucketLoad struct {
	bucket int64
	want   map[int64]Pseudonym
	err    error
}

func openPostings(ctx context.Context, path, blocksPath string) (*postingCheck, error) {
	pc := &postingCheck{bucket: -1}
	exists, err := checkApp(path, indexApplicationID)
	if err != nil || !exists {
		if err != nil {
			err = fmt.Errorf("pseudonym index: %w", err)
		}
		return pc, err
	}
	if pc.db, err = openDB(path, readFile); err != nil {
		return nil, err
	}
	if pc.tx, err = pc.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); err != nil {
		pc.close()
		return nil, err
	}
	if err := pc.tx.QueryRowContext(ctx, "SELECT size FROM watermark").Scan(&pc.watermark); err != nil {
		pc.close()
		return nil, fmt.Errorf("pseudonym index: %w", err)
	}
	if pc.watermark < 0 || pc.watermark%indexBucket != 0 {
		pc.close()
		return nil, badIndex(pc.watermark, "watermark", "the pseudonym index's watermark is not a bucket's end")
	}
	// Blocks beyond the watermark are not checked: a bucket's are
	// written before its commit, which Open cuts off when it never came.
	switch pc.blockf, err = os.Open(blocksPath); {
	case errors.Is(err, fs.ErrNotExist):
		pc.blockf = nil
	case err != nil:
		pc.close()
		return nil, fmt.Errorf("pseudonym index: %w", err)
	}
	return pc, nil
}

func (pc *postingCheck) load(ctx context.Context, bucket int64) error {
	for n := range pc.want {
		return badIndex(n, "postings", "pseudonym index lists an entry that names no patient")
	}
	var got bucketLoad
	if pc.next != nil {
		got = <-pc.next
		pc.next = nil
	}
	if got.want == nil || got.bucket != bucket {
		got = pc.read(ctx, bucket)
	}
	if got.err != nil {
		return got.err
	}
	pc.bucket, pc.want = bucket, got.want
	if (bucket+1)*indexBucket < pc.watermark {
		next := make(chan bucketLoad, 1)
		pc.next = next
		go func() { next <- pc.read(ctx, bucket+1) }()
	}
	return nil
}

// read returns the postings of one bucket by entry index.
func (pc *postingCheck) read(ctx context.Context, bucket int64) bucketLoad {
	res := bucketLoad{bucket: bucket}
	rows, err := pc.tx.QueryContext(ctx, "SELECT idx, pseudonym FROM postings WHERE bucket = ?", bucket)
	if err != nil {
		res.err = err
		return res
	}
	want := make(map[int64]Pseudonym, indexBucket)
	res.err = eachIndexed(rows, func(n int64, p []byte) error {
		if n/indexBucket != bucket || len(p) != len(Pseudonym{}) {
			return badIndex(n, "postings", "pseudonym index holds a malformed posting")
		}
		want[n] = Pseudonym(p)
		return nil
	})
	if res.err == nil {
		res.want = want
	}
	return res
}

func (pc *postingCheck) check(ctx context.Context, n int64, subject Pseudonym) error {
	if pc.tx == nil || n >= pc.watermark {
		return nil
	}
	if b := n / indexBucket; b != pc.bucket {
		if err := pc.load(ctx, b); err != nil {
			return err
		}
	}
	got, indexed := pc.want[n]
	delete(pc.want, n)
	switch {
	case subject.IsZero() && indexed:
		return badIndex(n, "postings", "pseudonym index lists an entry that names no patient")
	case subject.IsZero():
		return nil
	case !indexed:
		return badIndex(n, "postings", "missing from the pseudonym index")
	case got != subject:
		return badIndex(n, "postings", "pseudonym index names another patient")
	}
	return nil
}

func (pc *postingCheck) finish(ctx context.Context) error {
	if pc.tx == nil {
		return nil
	}
	for n := range pc.want {
		return badIndex(n, "postings", "pseudonym index lists an entry that names no patient")
	}
	var stray sql.NullInt64
	if err := pc.tx.QueryRowContext(ctx, "SELECT MIN(idx) FROM postings WHERE idx >= ?", pc.watermark).Scan(&stray); err != nil {
		return err
	}
	if stray.Valid {
		return badIndex(stray.Int64, "postings", "pseudonym index lists an entry beyond its watermark")
	}
	return nil
}

func (pc *postingCheck) close() {
	if pc.next != nil {
		<-pc.next // the read ahead uses tx
	}
	if pc.blockf != nil {
		pc.blockf.Close()
	}
	if pc.tx != nil {
		pc.tx.Rollback()
	}
	if pc.db != nil {
		pc.db.Close()
	}
}

// ReadKind returns the entries of kind in the ledger file at path,
// oldest first, opening nothing for writing (what a verifier reads of a
// copy before it checks it, such as the charter versions).
func ReadKind(ctx context.Context, path string, kind Kind) ([]Entry, error) {
	switch exists, err := checkFile(path); {
	case err != nil:
		return nil, err
	case !exists:
		return nil, fmt.Errorf("%s: %w", path, os.ErrNotExist)
	}
	db, err := openDB(path, readFile)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT data FROM entries WHERE substr(data, 2, 1) = ? ORDER BY idx", []byte{byte(kind)})
	if err != nil {
		return nil, err
	}
	return scanEntries(rows, 0)
}
