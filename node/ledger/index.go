package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// The pseudonym index maps a patient's pseudonym to the entries about them.
//
// Pseudonyms are random, so a plain B-tree index dirties one page per entry
// wherever it lands; inside the commit that halved append throughput, and
// behind it the page writes still competed with the ledger for the disk. So
// the index is kept like a log: entries are grouped into buckets of
// indexBucket consecutive indexes. The postings of the bucket being filled
// are held in memory; once a bucket is full its postings are written, sorted,
// in one transaction to their own region of the index file, with the
// watermark that says which buckets are on disk. A lookup probes each
// bucket on disk (one seek each) and the memory.
//
// Beside the postings, each bucket written puts the hash blocks of its
// entries (hashes.go) in a flat file, BlocksPath, block b at b·blockBytes:
// an inclusion proof reads its block with one pread, where a row read
// through SQLite cost it most of its time. The file is written and synced
// before the bucket's transaction commits, so every block below the
// watermark is on disk; Open cuts off what lies beyond it (a bucket whose
// commit a crash lost), and rebuilds the index when the file is shorter.
//
// The index is derived data: its file is synchronous=NORMAL, and Open
// rebuilds whatever is not on disk from the entries. Verify checks it.

const indexBucket = 1 << 16

var indexMigrations = []string{
	`CREATE TABLE postings (
		bucket    INTEGER NOT NULL, -- idx / indexBucket
		pseudonym BLOB NOT NULL,    -- the entry's subject
		idx       INTEGER NOT NULL, -- the entry's index
		PRIMARY KEY (bucket, pseudonym, idx)
	) STRICT, WITHOUT ROWID;
	CREATE TABLE watermark (
		id   INTEGER PRIMARY KEY CHECK (id = 0),
		size INTEGER NOT NULL       -- entries below this are on disk; a multiple of the bucket size
	) STRICT;
	INSERT INTO watermark (id, size) VALUES (0, 0);`,
	// 2: the hash blocks of the buckets below the watermark (hashes.go),
	// one row each.
	`CREATE TABLE blocks (
		block  INTEGER PRIMARY KEY, -- leaves 32·block to 32·block+31
		hashes BLOB NOT NULL        -- hashBlock: levels 0 to 4, 62 hashes
	) STRICT;`,
	// 3: the hash blocks move to their own file (BlocksPath), which a
	// proof reads without SQLite; the index is rebuilt from the entries
	// to write it.
	`DROP TABLE blocks;
	DELETE FROM postings;
	UPDATE watermark SET size = 0;`,
}

// blockBytes is the size of one hash block in the blocks file.
const blockBytes = len(hashBlock{}) * tlog.HashSize

// indexApplicationID marks the index file ("mfIX").
const indexApplicationID = 0x6d664958

// IndexPath returns where the pseudonym index of the ledger at path lives:
// beside it, "ledger.db" -> "ledger-index.db".
func IndexPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-index" + ext
}

// BlocksPath returns where the hash blocks of the ledger at path live,
// beside its index: "ledger.db" -> "ledger-blocks.bin".
func BlocksPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-blocks.bin"
}

type posting struct {
	idx     int64
	subject Pseudonym
}

type pseudonymIndex struct {
	w, r   *sql.DB
	insert *rowInserter
	blockf *os.File // the hash blocks below the watermark, and maybe a bucket's more
	log    *slog.Logger

	mu        sync.Mutex
	watermark int64                 // entries below are on disk
	mem       map[Pseudonym][]int64 // postings at or above the watermark
	blocks    [][]byte              // complete hash blocks from the watermark on
	noBlocks  bool                  // blocks went missing: none are kept until the next open
	upTo      int64                 // entries below are on disk or in mem

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

func openIndex(ctx context.Context, path, blocksPath string, log *slog.Logger) (*pseudonymIndex, error) {
	x := &pseudonymIndex{
		log:  log,
		mem:  map[Pseudonym][]int64{},
		kick: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	if _, err := checkApp(path, indexApplicationID); err != nil {
		return nil, fmt.Errorf("pseudonym index: %w", err)
	}
	var err error
	if x.w, err = openDB(path, writeDerived); err != nil {
		return nil, err
	}
	if x.r, err = openDB(path, readShared); err != nil {
		x.close()
		return nil, err
	}
	if err := migrateDB(ctx, x.w, indexMigrations, indexApplicationID); err != nil {
		x.close()
		return nil, fmt.Errorf("pseudonym index: %w", err)
	}
	if err := x.w.QueryRowContext(ctx, "SELECT size FROM watermark").Scan(&x.watermark); err != nil {
		x.close()
		return nil, fmt.Errorf("pseudonym index: %w", err)
	}
	if x.insert, err = prepareInserter(ctx, x.w, "postings", []string{"bucket", "pseudonym", "idx"}, 128); err != nil {
		x.close()
		return nil, fmt.Errorf("pseudonym index: %w", err)
	}
	if err := x.openBlocks(ctx, blocksPath); err != nil {
		x.close()
		return nil, fmt.Errorf("pseudonym index: %w", err)
	}
	return x, nil
}

// openBlocks opens the blocks file and cuts it at the watermark; when it
// ends below it, the index is emptied, to be rebuilt from the entries.
func (x *pseudonymIndex) openBlocks(ctx context.Context, path string) error {
	var err error
	if x.blockf, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return err
	}
	fi, err := x.blockf.Stat()
	if err != nil {
		return err
	}
	switch need := x.watermark / blockLeaves * int64(blockBytes); {
	case fi.Size() > need:
		return x.blockf.Truncate(need)
	case fi.Size() < need:
		x.log.Warn("pseudonym index: its hash blocks end before its watermark; rebuilding it", "blocks", fi.Size()/int64(blockBytes), "watermark", x.watermark)
		return x.reset(ctx)
	}
	return nil
}

// reset empties the index, postings and blocks, to be rebuilt from the
// entries.
func (x *pseudonymIndex) reset(ctx context.Context) error {
	if _, err := x.w.ExecContext(ctx, "DELETE FROM postings; UPDATE watermark SET size = 0"); err != nil {
		return err
	}
	if err := x.blockf.Truncate(0); err != nil {
		return err
	}
	x.watermark = 0
	return nil
}

// catchUp puts the postings of entries [watermark, size) in memory, reading
// them from the ledger; it first drops an index that claims more entries
// than the ledger has.
func (x *pseudonymIndex) catchUp(ctx context.Context, entries *sql.DB, size int64) error {
	if x.watermark > size || x.watermark%indexBucket != 0 {
		x.log.Warn("pseudonym index does not match the ledger; rebuilding it", "index", x.watermark, "ledger", size)
		if err := x.reset(ctx); err != nil {
			return fmt.Errorf("pseudonym index: %w", err)
		}
	}
	x.upTo = x.watermark
	rows, err := entries.QueryContext(ctx, "SELECT idx, data, hashes FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", x.watermark, size)
	if err != nil {
		return err
	}
	var (
		ps     []posting
		blocks [][]byte
		block  hashBlock // the watermark is a bucket's start, so a block's
	)
	err = eachRow(rows, func(n int64, data, blob []byte) error {
		if p, ok := subjectOf(data); ok {
			ps = append(ps, posting{n, p})
		}
		hs, err := splitHashes(blob)
		if err != nil {
			return fmt.Errorf("entry %d: %w", n, err)
		}
		if block.put(n, hs) {
			blocks = append(blocks, block.blob())
		}
		return nil
	})
	if err != nil {
		return err
	}
	x.add(ps, blocks, size)
	x.flush(ctx) // a restart after a long run leaves whole buckets in memory
	return nil
}

// subjectOf reads the subject of an encoded entry without decoding the rest.
func subjectOf(data []byte) (Pseudonym, bool) {
	var p Pseudonym
	if len(data) < headerLen+32 || data[offFlags]&flagSubject == 0 {
		return p, false
	}
	copy(p[:], data[headerLen:])
	return p, true
}

// add records the postings and the completed hash blocks of a commit
// that made the ledger size entries long.
func (x *pseudonymIndex) add(ps []posting, blocks [][]byte, size int64) {
	x.mu.Lock()
	for _, p := range ps {
		x.mem[p.subject] = append(x.mem[p.subject], p.idx)
	}
	if !x.noBlocks {
		x.blocks = append(x.blocks, blocks...)
	}
	x.upTo = size
	full := size-x.watermark >= indexBucket
	x.mu.Unlock()
	if full {
		select {
		case x.kick <- struct{}{}:
		default:
		}
	}
}

func (x *pseudonymIndex) start() { go x.run() }

func (x *pseudonymIndex) run() {
	defer close(x.done)
	for {
		select {
		case <-x.kick:
			x.flush(context.Background())
		case <-x.quit:
			return
		}
	}
}

// flush writes every full bucket held in memory to disk.
func (x *pseudonymIndex) flush(ctx context.Context) {
	for {
		x.mu.Lock()
		from := x.watermark
		if x.upTo-from < indexBucket {
			x.mu.Unlock()
			return
		}
		to := from + indexBucket
		// About a posting an entry: grown from nothing, the slice was
		// copied at each doubling up to a bucket's size.
		ps := make([]posting, 0, indexBucket)
		for p, idxs := range x.mem {
			for _, n := range idxs {
				if n < to {
					ps = append(ps, posting{n, p})
				}
			}
		}
		blocks := x.blocks[:min(len(x.blocks), indexBucket/blockLeaves)]
		switch {
		case x.noBlocks:
			blocks = nil
		case len(blocks) < indexBucket/blockLeaves:
			// Never so (every commit adds the blocks it completed, and
			// catchUp those from the watermark on); were it so, the
			// blocks would be numbered wrong: keep none, proofs read
			// the entries' rows, and the next Open, finding the file
			// short, rebuilds the index.
			x.log.Error("pseudonym index: hash blocks missing from a bucket; keeping none", "bucket", from/indexBucket, "held", len(blocks))
			blocks, x.noBlocks = nil, true
		}
		x.mu.Unlock()

		// Entries of a bucket are final once appended, so the bucket can be
		// written without holding the lock.
		if err := x.write(ctx, from, to, ps, blocks); err != nil {
			// Lookups stay complete from memory; Open retries.
			x.log.Error("pseudonym index write failed; keeping postings in memory", "bucket", from/indexBucket, "err", err)
			return
		}
		x.mu.Lock()
		for p, idxs := range x.mem {
			i := 0
			for i < len(idxs) && idxs[i] < to {
				i++
			}
			if i == len(idxs) {
				delete(x.mem, p)
			} else if i > 0 {
				x.mem[p] = slices.Clone(idxs[i:])
			}
		}
		x.blocks = slices.Clone(x.blocks[len(blocks):])
		if x.noBlocks {
			x.blocks = nil
		}
		x.watermark = to
		x.mu.Unlock()
	}
}

func (x *pseudonymIndex) write(ctx context.Context, from, to int64, ps []posting, blocks [][]byte) error {
	slices.SortFunc(ps, func(a, b posting) int {
		if c := bytes.Compare(a.subject[:], b.subject[:]); c != 0 {
			return c
		}
		return int(a.idx - b.idx)
	})
	tx, err := x.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	bucket := from / indexBucket
	args := make([]any, 0, 3*len(ps))
	for _, p := range ps {
		args = append(args, bucket, p.subject[:], p.idx)
	}
	if err := x.insert.insert(ctx, tx, args); err != nil {
		return err
	}
	// The blocks are durable before the watermark that covers them.
	if len(blocks) > 0 {
		buf := make([]byte, 0, len(blocks)*blockBytes)
		for _, b := range blocks {
			buf = append(buf, b...)
		}
		if _, err := x.blockf.WriteAt(buf, from/blockLeaves*int64(blockBytes)); err != nil {
			return err
		}
		if err := x.blockf.Sync(); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE watermark SET size = ?", to); err != nil {
		return err
	}
	return tx.Commit()
}

// block returns the hashes of complete block b, and whether they are
// held: none are once blocks went missing (noBlocks).
func (x *pseudonymIndex) block(b int64) ([]byte, bool, error) {
	x.mu.Lock()
	if first := x.watermark / blockLeaves; b >= first || x.noBlocks {
		// Above the watermark, in memory until its bucket is written;
		// the watermark moves only once it is.
		var blob []byte
		if i := b - first; i >= 0 && i < int64(len(x.blocks)) {
			blob = x.blocks[i]
		}
		x.mu.Unlock()
		return blob, blob != nil, nil
	}
	x.mu.Unlock()
	blob := make([]byte, blockBytes)
	if _, err := x.blockf.ReadAt(blob, b*int64(blockBytes)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file was cut below the watermark
		}
		return nil, false, fmt.Errorf("hash block %d: %w", b, err)
	}
	return blob, true, nil
}

// lookup returns the indexes of the entries about p below size, in order.
func (x *pseudonymIndex) lookup(ctx context.Context, p Pseudonym, size int64) ([]int64, error) {
	x.mu.Lock()
	wm := x.watermark
	var out []int64
	for _, n := range x.mem[p] {
		if n < size {
			out = append(out, n)
		}
	}
	x.mu.Unlock()
	var disk []int64
	// The read transaction sees the buckets below wm at least: the
	// watermark moves only after its bucket committed.
	tx, err := x.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, "SELECT idx FROM postings WHERE bucket = ? AND pseudonym = ? ORDER BY idx")
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	for b := int64(0); b < wm/indexBucket; b++ {
		rows, err := stmt.QueryContext(ctx, b, p[:])
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var n int64
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return nil, err
			}
			disk = append(disk, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	// mem may still hold postings that were written to disk after we
	// read the watermark; keep each index once.
	out = append(disk, out...)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// stop ends the indexer, then closes the index. Postings in memory are not
// written: Open rebuilds them from the entries faster than a partial bucket
// could be merged later.
func (x *pseudonymIndex) stop() error {
	close(x.quit)
	<-x.done
	return x.close()
}

func (x *pseudonymIndex) close() error {
	errs := []error{x.insert.Close()}
	if x.blockf != nil {
		errs = append(errs, x.blockf.Close())
	}
	for _, db := range []*sql.DB{x.r, x.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}
