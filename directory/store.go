package directory

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	_ "github.com/mattn/go-sqlite3" // the SQLite driver
)

// store is a go-datastore on one SQLite file: the DHT's provider records,
// the keystore of this centre's announcements and its last reprovide all
// live in it.
//
// No ledger entry vouches for these rows, so each carries a MAC of its key
// and value (macer.mac) under the centre's row key: a row added or changed by
// anyone without the key is named by CheckStore, the full check's part
// for this file. Reads do not check it: a forged provider record could
// only send a query to a member that answers it holds nothing, and reads
// are the directory's hot path. A row removed is soft state lost, which
// the network restores: its provider announces it again on its next
// reprovide, and a centre announces every patient it holds at each start.
//
// Writes are grouped. Put and Delete land in an in-memory overlay that
// every read sees at once, and a background flusher commits the overlay in
// one transaction every flushEvery or flushAt writes; Sync and a batch's
// Commit flush before they return, as go-datastore's contract asks (a Put
// is durable once a later Sync returns). Provider records arrive one
// ADD_PROVIDER message at a time, tens of thousands a second while a
// centre joins; one transaction per record would hold the directory to
// SQLite's commit rate (about 8,000 a second here), grouping takes it past
// 300,000. A provider record lost in a crash before its flush is sent again
// by its provider's next reprovide; the keystore, whose loss would be
// silent, bypasses the overlay: each of its writes is a transaction of its
// own, durable when it returns (keys.go).
type store struct {
	key  []byte // the row key: HMAC-SHA256 of each row under it
	db   *sql.DB
	get  *sql.Stmt
	scan *sql.Stmt

	mu       sync.Mutex
	pending  *overlay // newest writes, not yet being flushed
	flushing *overlay // writes the running flush is committing; nil between flushes
	failed   error    // the last flush failed: refuse writes until one succeeds

	flushMu sync.Mutex // one flush at a time
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	close   sync.Once
}

// write is one overlaid write: a value, or a deletion.
type write struct {
	val []byte
	del bool
}

// A flush's cost is in the B-tree's pages more than its rows: provider
// keys are random, so while a flush's rows are few beside the table's
// leaves each row dirties a leaf of its own, and a leaf costs its write
// to the WAL and its copy back. Inserting 120,000 random provider records
// into a table of 600,000 (BenchmarkStoreFlush) cost, with 4 KiB pages
// before pageSize, 35 to 37 µs a row in flushes of 6,000, what a replica
// received in a second while a centre announced a million patients, 16
// µs in flushes of 30,000 and 11 to 14 in flushes of 60,000; now 31, 9.5
// to 10 and 6.4 to 6.7.
// So the overlay is flushed every flushEvery rather than every second:
// a replica that crashes loses the records of a few more seconds, which
// their providers' next reprovide sends again, and the other replicas of
// each still hold.
const (
	flushEvery = 5 * time.Second
	flushAt    = 65536  // writes that trigger a flush at once
	maxPending = 262144 // writes a Put waits behind, so memory stays bounded
)

var _ ds.Batching = (*store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS kv (
	k   TEXT PRIMARY KEY,
	v   BLOB NOT NULL,
	mac BLOB -- macer.mac(k, v)
) WITHOUT ROWID;
PRAGMA application_id = 0x6d646472; -- "mddr"
`

// macSize is the length of a row's MAC: HMAC-SHA256 cut to 128 bits, as
// RFC 2104 allows, since every row pays for it.
const macSize = 16

// macer makes rows' MACs without allocating for each: the MACs of a
// transaction are cut from one arena, since each must live until its
// statement runs.
type macer struct {
	h     hash.Hash // HMAC-SHA256 under the row key
	buf   []byte
	sum   [sha256.Size]byte
	arena []byte
}

func newMacer(key []byte) *macer { return &macer{h: hmac.New(sha256.New, key)} }

// mac returns the MAC of the row (k, v): of k's length, k and v.
func (x *macer) mac(k string, v []byte) []byte {
	x.buf = binary.BigEndian.AppendUint32(x.buf[:0], uint32(len(k)))
	x.buf = append(append(x.buf, k...), v...)
	x.h.Reset()
	x.h.Write(x.buf)
	sum := x.h.Sum(x.sum[:0])
	if len(x.arena)+macSize > cap(x.arena) {
		x.arena = make([]byte, 0, 1024*macSize)
	}
	x.arena = append(x.arena, sum[:macSize]...)
	return x.arena[len(x.arena)-macSize : len(x.arena) : len(x.arena)]
}

// openStore opens (creating if need be) the directory database at path;
// key is the row key its rows' MACs are made with.
func openStore(path string, key []byte) (_ *store, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := createStore(abs, pageSize); err != nil {
		return nil, fmt.Errorf("directory database %s: %w", path, err)
	}
	// 8 MiB of page cache a connection, enough for the B-trees' inner
	// pages; their leaves come from the system's file cache, which a
	// centre's resident memory does not count. A connection idle for a
	// minute is closed, and its cache with it: at 64 MiB each and never
	// closed, the connections that had scanned or written a million keys
	// held hundreds of MiB for good. At 32 MiB a centre with a million
	// patients rested at 294 MiB (the allocator keeps what a closed
	// connection freed) for a million announcements 10 % faster.
	db, err := sql.Open("sqlite3", storeDSN(abs, 8))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	var app int64
	if err := db.QueryRow("PRAGMA application_id").Scan(&app); err != nil {
		return nil, fmt.Errorf("directory database %s: %w", path, err)
	}
	if app != 0 && app != 0x6d646472 {
		return nil, fmt.Errorf("directory database %s: not a medfed directory (application id %#x)", path, app)
	}
	if _, err := db.Exec(schema); err != nil {
		return nil, fmt.Errorf("directory database %s: %w", path, err)
	}
	if err := addMACs(db, key); err != nil {
		return nil, fmt.Errorf("directory database %s: %w", path, err)
	}
	if err := binaryProviderKeys(db); err != nil {
		return nil, fmt.Errorf("directory database %s: %w", path, err)
	}
	s := &store{
		key:     key,
		db:      db,
		pending: newOverlay(),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.get, err = db.Prepare("SELECT v FROM kv WHERE k = ?"); err != nil {
		return nil, err
	}
	if s.scan, err = db.Prepare("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k"); err != nil {
		s.get.Close()
		return nil, err
	}
	go s.flusher()
	return s, nil
}

// pageSize is the size of a new directory database's pages, 16 KiB
// rather than SQLite's 4. The rows a flush or a keystore write adds fall
// at random across the table, so a large one dirties most of its leaves
// whatever their size, and its cost is in the pages more than their
// bytes: each costs its reads, its write to the WAL and its copy back.
// Flushing 60,000 random provider records into a table of 600,000
// (BenchmarkStoreFlush) took 9.4 to 9.6 µs a row with 4 KiB pages and
// 6.4 to 6.7 with 16 KiB ones; 64 KiB pages gained a little more in the
// directory's bench, for four times the bytes that a small write
// commits. SQLite checkpoints the WAL every 1,000 pages, 16 MiB now
// rather than 4, and a lookup reads one leaf, 16 KiB from the system's
// file cache rather than 4.
const pageSize = 16384

// createStore creates the directory database at path, with pages of
// size bytes, when there is none there or an empty file (one left by a
// creation that failed): SQLite fixes a database's page size at its first
// write, here the switch to WAL mode, and a database in WAL mode keeps it.
// A database created before keeps the page size it has; openStore writes
// the schema.
func createStore(path string, size int) error {
	switch fi, err := os.Stat(path); {
	case err == nil && fi.Size() > 0:
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	db, err := sql.Open("sqlite3", fileDSN(path, url.Values{"mode": {"rwc"}}))
	if err != nil {
		return err
	}
	_, err = db.Exec(fmt.Sprintf("PRAGMA page_size = %d; PRAGMA journal_mode = WAL;", size))
	return errors.Join(err, db.Close())
}

// binaryProviderKeys brings a store from before provider records' keys
// were held in binary (user_version 0) up to date, once, in one
// transaction: each such row is written again under its binary key, with
// its value and MAC (made over the text key), and its text row deleted,
// upgradeChunk rows at a time so that a replica holding millions is never
// held in memory.
func binaryProviderKeys(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version >= 1 {
		return err
	}
	from, hi := prefixRange(providersPrefix)
	for {
		rows, err := tx.Query("SELECT k, v, mac FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?", from, hi, upgradeChunk)
		if err != nil {
			return err
		}
		var puts, dels []any
		read := 0
		for rows.Next() {
			var k string
			var v, mac []byte
			if err := rows.Scan(&k, &v, &mac); err != nil {
				rows.Close()
				return err
			}
			read++
			from = k + "\x00" // the next key after k
			if tk := toTable(k); tk.bin() {
				puts, dels = append(puts, tk.arg(), v, mac), append(dels, k)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if err := execRows(tx, insertRows, puts, 3); err != nil {
			return err
		}
		if err := execRows(tx, deleteRows, dels, 1); err != nil {
			return err
		}
		if read < upgradeChunk {
			break
		}
	}
	if _, err := tx.Exec("PRAGMA user_version = 1"); err != nil {
		return err
	}
	return tx.Commit()
}

// upgradeChunk is how many rows binaryProviderKeys reads at a time (a
// variable for the tests).
var upgradeChunk = 10_000

// UpgradeStore brings the directory database at path up to date, its
// schema, the MACs of a store from before rows carried them (key is its
// row key) and its provider records' keys, and closes it. The directory
// must not be open.
func UpgradeStore(path string, key []byte) error {
	s, err := openStore(path, key)
	if err != nil {
		return err
	}
	return s.Close()
}

// storeDSN is the address of the directory database at path, opened with
// cacheMiB of page cache a connection.
func storeDSN(path string, cacheMiB int) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	q.Set("_busy_timeout", "10000")
	q.Set("_cache_size", strconv.Itoa(-1024*cacheMiB))
	// Each connection keeps its last 32 statements prepared: a provider
	// read or write then skips SQLite's parse and plan.
	q.Set("_stmt_cache_size", "32")
	return fileDSN(path, q)
}

// fileDSN is the address of the SQLite file at path with the driver's
// parameters q.
func fileDSN(path string, q url.Values) string {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}

// addMACs brings a store from before rows carried MACs up to date, once,
// in one transaction, as the mac column is added: once it exists, a row
// without a valid MAC is one that was tampered with.
func addMACs(db *sql.DB, key []byte) error {
	var has int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info('kv') WHERE name = 'mac'`).Scan(&has); err != nil || has == 1 {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`ALTER TABLE kv ADD COLUMN mac BLOB`); err != nil {
		return err
	}
	rows, err := tx.Query(`SELECT k, v FROM kv`)
	if err != nil {
		return err
	}
	var args []any
	m := newMacer(key)
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return err
		}
		args = append(args, k, v, m.mac(k, v))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if err := execRows(tx, insertRows, args, 3); err != nil {
		return err
	}
	return tx.Commit()
}

// TamperError names a row of the directory's file that fails its MAC.
type TamperError struct {
	Key    string // the row's key: a DHT key and a peer ID, or the provider's own
	Reason string
}

func (e *TamperError) Error() string { return e.Key + ": " + e.Reason }

// CheckStore checks the MAC of every row of the directory file at path
// under key, the file's row key, and returns how many rows it read, or a
// *TamperError naming the first row that fails. The directory must not be
// open.
func CheckStore(ctx context.Context, path string, key []byte) (int, error) {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro&_busy_timeout=5000"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT k, v, mac FROM kv`)
	if err != nil {
		return 0, fmt.Errorf("directory database %s: %w", path, err)
	}
	defer rows.Close()
	m := newMacer(key)
	n := 0
	for rows.Next() {
		var raw any
		var v, mac []byte
		if err := rows.Scan(&raw, &v, &mac); err != nil {
			return n, fmt.Errorf("directory database %s: %w", path, err)
		}
		k, tk, err := scanKey(raw)
		switch {
		case err != nil:
			return n, &TamperError{Key: fmt.Sprintf("%q", raw), Reason: "the row's key is not a key: " + err.Error()}
		case !tk.bin() && toTable(k).bin():
			// The store never writes it so, nor reads it: only its
			// binary twin.
			return n, &TamperError{Key: k, Reason: "a provider record's key held as text"}
		}
		if !hmac.Equal(mac, m.mac(k, v)) {
			return n, &TamperError{Key: k, Reason: "the row fails its MAC: changed or added without the centre's key"}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("directory database %s: %w", path, err)
	}
	return n, nil
}

func (s *store) flusher() {
	defer close(s.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		s.flush() // a failure refuses writes until a flush succeeds
	}
}

// flush commits every overlaid write in one transaction.
func (s *store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if s.pending.len() == 0 {
		s.mu.Unlock()
		return nil
	}
	batch := s.pending
	// A fresh overlay, not one the size of this batch: a map never
	// shrinks, and a centre that announced a million patients at start
	// would keep a table for a quarter of a million writes for good.
	s.flushing, s.pending = batch, newOverlay()
	s.mu.Unlock()

	err := s.commit(batch.writes)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		for k, w := range s.pending.writes { // newer writes win
			batch.set(k, w)
		}
		s.pending = batch
	}
	s.flushing = nil
	s.failed = err
	return err
}

// commit writes batch in one transaction, in the table's key order (each
// page of the B-tree is then visited once) and many rows per statement
// (each statement crosses cgo once), provider records' keys in binary
// (storekey.go), every MAC over the text key.
func (s *store) commit(batch map[string]write) error {
	type row struct {
		k  string
		tk tableKey
		w  write
	}
	rows := make([]row, 0, len(batch))
	for k, w := range batch {
		rows = append(rows, row{k, toTable(k), w})
	}
	// Sorted by the keys' leading bytes (sortPrefix), then, where two
	// share them, the whole keys: the rows themselves are too long to
	// move about, and most comparisons end at the prefix.
	order := make([]sortKey, len(rows))
	for i := range rows {
		order[i] = sortKey{rows[i].tk.sortPrefix(), i}
	}
	slices.SortFunc(order, func(a, b sortKey) int {
		if a.pre != b.pre {
			return cmp.Compare(a.pre, b.pre)
		}
		return rows[a.i].tk.compare(rows[b.i].tk)
	})
	tx, err := s.db.Begin()
	if err != nil {
		return fmt.Errorf("directory store: %w", err)
	}
	defer tx.Rollback()
	var puts, dels []any
	m := newMacer(s.key)
	for _, o := range order {
		r := &rows[o.i]
		if r.w.del {
			dels = append(dels, r.tk.arg())
		} else {
			puts = append(puts, r.tk.arg(), r.w.val, m.mac(r.k, r.w.val))
		}
		if len(puts) == 3*rowsPerStatement {
			if err := execRows(tx, insertRows, puts, 3); err != nil {
				return fmt.Errorf("directory store: %w", err)
			}
			puts = puts[:0]
		}
		if len(dels) == rowsPerStatement {
			if err := execRows(tx, deleteRows, dels, 1); err != nil {
				return fmt.Errorf("directory store: %w", err)
			}
			dels = dels[:0]
		}
	}
	if err := execRows(tx, insertRows, puts, 3); err != nil {
		return fmt.Errorf("directory store: %w", err)
	}
	if err := execRows(tx, deleteRows, dels, 1); err != nil {
		return fmt.Errorf("directory store: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("directory store: %w", err)
	}
	return nil
}

const (
	rowsPerStatement = 100
	insertRows       = "INSERT OR REPLACE INTO kv (k, v, mac) VALUES (?, ?, ?)"
	deleteRows       = "DELETE FROM kv WHERE k IN (?"
)

// execRows runs stmt (insertRows or deleteRows) over args, per of them a
// row, rowsPerStatement rows a statement.
func execRows(tx *sql.Tx, stmt string, args []any, per int) error {
	row := "?"
	if per == 3 {
		row = "(?, ?, ?)"
	}
	for chunk := range slices.Chunk(args, per*rowsPerStatement) {
		q := stmt + strings.Repeat(","+row, len(chunk)/per-1)
		if per == 1 {
			q += ")"
		}
		if _, err := tx.Exec(q, chunk...); err != nil {
			return err
		}
	}
	return nil
}

// writeTx runs f in a transaction of its own, committed when f returns
// nil, for writes that bypass the overlay (the keystore's, keys.go). It
// waits for a flush in flight and holds the next one off, so that the two
// do not wait on each other inside SQLite.
func (s *store) writeTx(ctx context.Context, f func(*sql.Tx) error) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// overlaid returns the newest overlaid write of k.
func (s *store) overlaid(k string) (write, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.pending.writes[k]; ok {
		return w, true
	}
	if s.flushing == nil {
		return write{}, false
	}
	w, ok := s.flushing.writes[k]
	return w, ok
}

// apply overlays ws.
func (s *store) apply(ws map[string]write) error {
	s.mu.Lock()
	if s.failed != nil {
		err := s.failed
		s.mu.Unlock()
		return err
	}
	for k, w := range ws {
		s.pending.set(k, w)
	}
	return s.applied()
}

// applyOne overlays one write, as apply does, without a map of its own:
// a provider record's Put, tens of thousands a second.
func (s *store) applyOne(k string, w write) error {
	s.mu.Lock()
	if s.failed != nil {
		err := s.failed
		s.mu.Unlock()
		return err
	}
	s.pending.set(k, w)
	return s.applied()
}

// applied unlocks s.mu, held by a write just overlaid, and flushes or has
// the flusher flush if enough writes wait.
func (s *store) applied() error {
	n := s.pending.len()
	s.mu.Unlock()
	switch {
	case n >= maxPending:
		return s.flush()
	case n >= flushAt:
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *store) Put(ctx context.Context, key ds.Key, value []byte) error {
	return s.applyOne(key.String(), write{val: slices.Clone(value)})
}

func (s *store) Delete(ctx context.Context, key ds.Key) error {
	return s.applyOne(key.String(), write{del: true})
}

func (s *store) Get(ctx context.Context, key ds.Key) ([]byte, error) {
	if w, ok := s.overlaid(key.String()); ok {
		if w.del {
			return nil, ds.ErrNotFound
		}
		return slices.Clone(w.val), nil
	}
	var v []byte
	err := s.get.QueryRow(toTable(key.String()).arg()).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ds.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("directory store: %w", err)
	}
	return v, nil
}

func (s *store) Has(ctx context.Context, key ds.Key) (bool, error) {
	_, err := s.Get(ctx, key)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// count returns how many keys under prefix end in suffix. It flushes
// first, so it counts in the table alone.
func (s *store) count(prefix, suffix string) (int, error) {
	if err := s.flush(); err != nil {
		return 0, err
	}
	ranges := tableRanges(prefix)
	var sfx any
	if suffix != "" {
		sfx = suffix
	}
	n, err := s.countRange(ranges[0][0], ranges[0][1], sfx)
	if err != nil || len(ranges) == 1 {
		return n, err
	}
	// Provider records held in binary end in the provider's ID in
	// binary: a suffix "/" + base32(ID) names theirs, and no other.
	if suffix != "" {
		peer, canonical := canonicalBase32(strings.TrimPrefix(suffix, "/"))
		if !canonical || !strings.HasPrefix(suffix, "/") || len(peer) > 255 {
			return n, nil
		}
		sfx = peerSuffix(peer)
	}
	m, err := s.countRange(ranges[1][0], ranges[1][1], sfx)
	return n + m, err
}

// countRange counts the rows in [lo, hi) whose key ends in suffix (a
// string or a []byte, as the keys in range are), or every one when
// suffix is nil.
func (s *store) countRange(lo, hi, suffix any) (int, error) {
	var n int
	var err error
	if suffix == nil {
		err = s.db.QueryRow("SELECT count(*) FROM kv WHERE k >= ? AND k < ?", lo, hi).Scan(&n)
	} else {
		err = s.db.QueryRow("SELECT count(*) FROM kv WHERE k >= ? AND k < ? AND substr(k, -length(?)) = ?", lo, hi, suffix, suffix).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("directory store: %w", err)
	}
	return n, nil
}

func (s *store) GetSize(ctx context.Context, key ds.Key) (int, error) {
	v, err := s.Get(ctx, key)
	if err != nil {
		return -1, err
	}
	return len(v), nil
}

// Query streams the keys under q.Prefix in the table's key order
// (tableKey.compare), the overlay merged over the table, then applies q's
// filters, orders, offset and limit.
//
// Reads ignore their context, as go-ds-leveldb's do: each is one short
// statement, and a caller closing down may read with a context it has
// already cancelled.
func (s *store) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	lo, hi := prefixRange(q.Prefix)
	inRange := map[string]write{} // overlaid writes in range, newest
	s.mu.Lock()
	prefix := ds.NewKey(q.Prefix).String()
	s.flushing.under(prefix, lo, hi, inRange)
	s.pending.under(prefix, lo, hi, inRange) // newer: it wins
	s.mu.Unlock()
	type entry struct {
		dsq.Entry
		tk tableKey
	}
	var over []entry // the overlaid values in range, in the table's order
	for k, w := range inRange {
		if !w.del {
			over = append(over, entry{dsq.Entry{Key: k, Value: slices.Clone(w.val), Size: len(w.val)}, toTable(k)})
		}
	}
	slices.SortFunc(over, func(a, b entry) int { return a.tk.compare(b.tk) })

	ranges := tableRanges(q.Prefix)
	var rows *sql.Rows
	closeRows := func() error {
		if rows == nil {
			return nil
		}
		err := rows.Close()
		rows = nil
		return err
	}
	var row *entry // the table's next row, read ahead
	advance := func() error {
		row = nil
		for {
			if rows == nil {
				if len(ranges) == 0 {
					return nil
				}
				var err error
				if rows, err = s.scan.Query(ranges[0][0], ranges[0][1]); err != nil {
					return err
				}
				ranges = ranges[1:]
			}
			for rows.Next() {
				var k any
				var e entry
				if err := rows.Scan(&k, &e.Value); err != nil {
					return err
				}
				var err error
				if e.Key, e.tk, err = scanKey(k); err != nil {
					return err
				}
				if _, overlaid := inRange[e.Key]; overlaid {
					continue
				}
				e.Size = len(e.Value)
				row = &e
				return nil
			}
			if err := errors.Join(rows.Err(), closeRows()); err != nil {
				return err
			}
		}
	}
	if err := advance(); err != nil {
		closeRows()
		return nil, fmt.Errorf("directory store: %w", err)
	}
	res := dsq.ResultsFromIterator(q, dsq.Iterator{
		Next: func() (dsq.Result, bool) {
			var e entry
			switch {
			case row == nil && len(over) == 0:
				return dsq.Result{}, false
			case row == nil || (len(over) > 0 && over[0].tk.compare(row.tk) < 0):
				e, over = over[0], over[1:]
			default:
				e = *row
				if err := advance(); err != nil {
					return dsq.Result{Error: fmt.Errorf("directory store: %w", err)}, true
				}
			}
			if q.KeysOnly {
				e.Value = nil
			}
			return dsq.Result{Entry: e.Entry}, true
		},
		Close: closeRows,
	})
	q.Prefix = "" // the range has applied it
	return dsq.NaiveQueryApply(q, res), nil
}

// tableRanges returns the ranges [lo, hi) of the table's keys that are
// the strict children of prefix, in the table's order: its text keys,
// then, when there are any, its binary ones (providerRange).
func tableRanges(prefix string) [][2]any {
	lo, hi := prefixRange(prefix)
	var textHi any = hi
	if hi == "" {
		textHi = []byte{} // every text key sorts before a BLOB
	}
	ranges := [][2]any{{lo, textHi}}
	if blo, bhi, ok := providerRange(prefix); ok {
		ranges = append(ranges, [2]any{blo, bhi})
	}
	return ranges
}

// prefixRange returns the key range [lo, hi) of the strict children of
// prefix; hi is empty for no upper bound.
func prefixRange(prefix string) (lo, hi string) {
	p := ds.NewKey(prefix).String()
	if p == "/" {
		return "/", ""
	}
	return p + "/", p + "0" // '0' follows '/'
}

func (s *store) Sync(ctx context.Context, prefix ds.Key) error {
	if !s.unflushedUnder(prefix.String()) {
		return nil // nothing under prefix waits: a flush would commit others' writes early
	}
	return s.flush() // waits for a flush in flight, then commits what is pending
}

// unflushedUnder reports whether a write under prefix is pending or being
// flushed.
func (s *store) unflushedUnder(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range []*overlay{s.pending, s.flushing} {
		if o == nil {
			continue
		}
		for k := range o.writes {
			if strings.HasPrefix(k, prefix) {
				return true
			}
		}
	}
	return false
}

func (s *store) Batch(ctx context.Context) (ds.Batch, error) {
	return &batch{s: s, ws: map[string]write{}}, nil
}

// Close flushes and closes the database.
func (s *store) Close() error {
	var err error
	s.close.Do(func() {
		close(s.stop)
		<-s.done
		err = errors.Join(s.flush(), s.get.Close(), s.scan.Close(), s.db.Close())
	})
	return err
}

// batch collects writes and applies them at once, durably.
type batch struct {
	s  *store
	ws map[string]write
}

func (b *batch) Put(ctx context.Context, key ds.Key, value []byte) error {
	b.ws[key.String()] = write{val: slices.Clone(value)}
	return nil
}

func (b *batch) Delete(ctx context.Context, key ds.Key) error {
	b.ws[key.String()] = write{del: true}
	return nil
}

func (b *batch) Commit(ctx context.Context) error {
	if len(b.ws) == 0 {
		return nil // nothing to make durable
	}
	if err := b.s.apply(b.ws); err != nil {
		return err
	}
	return b.s.flush()
}
