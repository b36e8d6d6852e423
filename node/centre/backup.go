package centre

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/durable"
	"github.com/medfed/medfed/node/records"
)

// A backup is a directory: a consistent copy of each of the centre's
// SQLite files, made through SQLite's online backup while the centre
// runs, every other file of the data directory (its keys, its share of
// the pseudonym key, its certificate, its FORMAT), and a manifest naming each with its
// SHA-256. The pseudonym index is not copied: it is derived, and the
// restored centre rebuilds it from the ledger.

// ManifestFile is the backup's manifest, written last: a directory
// without one is not a backup.
const ManifestFile = "MANIFEST"

// RestoredFile marks a data directory restored from a backup whose
// ledger no member has yet confirmed is not behind what it cosigned.
const RestoredFile = "restored"

// backedUpDBs are the SQLite files a backup copies, the ledger first:
// ledger.db and records.db are copied while no erasure runs, so a payload
// erased in the copy has its erasure entry in it (a record added between
// the two copies leaves a payload no entry names: harmless, as after a
// crash between the two writes).
var backedUpDBs = []string{LedgerFile, records.File, DirectoryFile, "staff.db", "clients.db", DeviceFile}

// notBackedUp are the files of a data directory a backup leaves out,
// besides the SQLite files' journals: the derived index and its hash
// blocks, and what only a running node has.
var notBackedUp = []string{"ledger-index.db", "ledger-blocks.bin", LockFile, "medfed.sock", RestoredFile}

// plainFile reports whether name is a file of the data directory that a
// backup copies as it is: its keys and shares, its certificate.
func plainFile(name string) bool {
	if strings.HasPrefix(name, durable.TempPrefix) {
		return false // being written (node/durable): the file it replaces is copied
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if strings.HasSuffix(name, suffix) {
			return false
		}
	}
	return !slices.Contains(backedUpDBs, name) && !slices.Contains(notBackedUp, name) && name != ManifestFile
}

// Manifest describes a backup.
type Manifest struct {
	Centre     string
	Federation string
	Taken      time.Time
	LedgerSize int64             // entries in the copy of the ledger
	Files      map[string]string // file name -> SHA-256, hex
}

// ErrNotEmpty is returned for a backup or restore into a directory that
// holds files.
var ErrNotEmpty = node.E(node.Conflict, "the directory is not empty")

// Backup copies the centre into dst, a directory that does not exist or
// is empty, and returns the manifest it wrote there. The centre keeps
// serving meanwhile; erasures wait for the ledger and records copies.
func (c *Centre) Backup(ctx context.Context, dst string) (Manifest, error) {
	m := Manifest{Centre: c.Name, Federation: c.federation, Taken: clock.Now().UTC(), Files: map[string]string{}}
	if err := emptyDir(dst); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	copyDB := func(name string) error {
		src := filepath.Join(c.dir, name)
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := backupDB(ctx, src, filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("backup %s: %w", name, err)
		}
		return nil
	}
	c.eraseMu.Lock()
	err := copyDB(backedUpDBs[0])
	if err == nil {
		err = copyDB(backedUpDBs[1])
	}
	c.eraseMu.Unlock()
	if err != nil {
		return m, err
	}
	for _, name := range backedUpDBs[2:] {
		if err := copyDB(name); err != nil {
			return m, err
		}
	}
	files, err := os.ReadDir(c.dir)
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	for _, f := range files {
		if !f.Type().IsRegular() || !plainFile(f.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.dir, f.Name()))
		if err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		if err := durable.WriteNew(filepath.Join(dst, f.Name()), b); err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	for _, e := range entries {
		sum, err := fileSum(filepath.Join(dst, e.Name()))
		if err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		m.Files[e.Name()] = sum
	}
	if m.LedgerSize, err = ledgerSize(ctx, filepath.Join(dst, LedgerFile)); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err := durable.WriteNew(filepath.Join(dst, ManifestFile), m.Encode()); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	c.log.Info("backup made", "component", "node", "dir", dst, "ledger_size", m.LedgerSize)
	return m, nil
}

// Restore brings the backup in from back as the data directory of the
// centre of cfg, which must not exist or be empty: the backup must be that
// centre's, every file is checked against the manifest, the ledger is
// verified against the charter on it, and the directory is marked
// restored. The restored centre's node appends and signs nothing until
// every other member has confirmed the ledger is not behind what it
// cosigned of it. A backup of a data directory of a newer format than
// this medfed knows is refused before anything is copied; one of an older
// format is upgraded when the centre first opens.
func Restore(ctx context.Context, from string, cfg Config) (Manifest, error) {
	dir := cfg.Data.Dir
	var m Manifest
	b, err := os.ReadFile(filepath.Join(from, ManifestFile))
	if err != nil {
		return m, fmt.Errorf("restore: %s is not a backup: %w", from, err)
	}
	if m, err = ParseManifest(b); err != nil {
		return m, fmt.Errorf("restore: %s: %w", from, err)
	}
	if m.Centre != cfg.Centre.Name || m.Federation != cfg.Federation.ID {
		return m, fmt.Errorf("restore: %w: a backup of %s in %s, not of %s in %s", node.ErrInvalid, m.Centre, m.Federation, cfg.Centre.Name, cfg.Federation.ID)
	}
	for name := range m.Files {
		if name != filepath.Base(name) || name == "." || name == ".." || !(slices.Contains(backedUpDBs, name) || plainFile(name)) {
			return m, fmt.Errorf("restore: %w: the manifest names %q", node.ErrInvalid, name)
		}
	}
	if _, ok := m.Files[FormatFile]; ok {
		// A backup of a newer medfed's directory is left for it.
		if _, err := readFormat(from, CurrentFormat); err != nil {
			return m, fmt.Errorf("restore: %w", err)
		}
	}
	if err := emptyDir(dir); err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	// Each file is hashed as it is copied; a restore that fails leaves
	// the data directory empty.
	var written []string
	fail := func(err error) (Manifest, error) {
		for _, name := range written {
			err = errors.Join(err, os.Remove(filepath.Join(dir, name)))
		}
		return m, fmt.Errorf("restore: %w", err)
	}
	for name, want := range m.Files {
		written = append(written, name)
		if err := copyChecked(filepath.Join(from, name), filepath.Join(dir, name), want); err != nil {
			return fail(err)
		}
	}
	pub, err := PublicKey(dir)
	if err != nil {
		return fail(err)
	}
	if _, err := checkLedger(ctx, cfg, pub, &CheckReport{}); err != nil {
		return fail(fmt.Errorf("the backup's ledger does not check out: %w", err))
	}
	if err := durable.WriteNew(filepath.Join(dir, RestoredFile), m.Encode()); err != nil {
		return m, fmt.Errorf("restore: %w", err)
	}
	return m, nil
}

// emptyDir makes dir, or checks that it is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s: %w", dir, ErrNotEmpty)
	}
	return nil
}

// backupDB copies the SQLite database src to dst through SQLite's online
// backup: one consistent snapshot of src, whoever writes to it.
func backupDB(ctx context.Context, src, dst string) error {
	open := func(path, mode string) (*sql.DB, *sql.Conn, error) {
		u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=" + mode + "&_busy_timeout=10000"}
		db, err := sql.Open("sqlite3", u.String())
		if err != nil {
			return nil, nil, err
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return db, conn, nil
	}
	sdb, sconn, err := open(src, "rw")
	if err != nil {
		return err
	}
	defer sdb.Close()
	defer sconn.Close()
	ddb, dconn, err := open(dst, "rwc")
	if err != nil {
		return err
	}
	err = dconn.Raw(func(d any) error {
		return sconn.Raw(func(s any) error {
			b, err := d.(*sqlite3.SQLiteConn).Backup("main", s.(*sqlite3.SQLiteConn), "main")
			if err != nil {
				return err
			}
			for {
				done, err := b.Step(-1)
				if err != nil {
					return errors.Join(err, b.Finish())
				}
				if done {
					return b.Finish()
				}
			}
		})
	})
	err = errors.Join(err, dconn.Close(), ddb.Close())
	if err != nil {
		return err
	}
	return errors.Join(os.Chmod(dst, 0o600), syncFile(dst))
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// copyChecked copies src to dst, a new file of mode 0600, and checks that
// what it copied has the SHA-256 want.
func copyChecked(src, dst, want string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if err = errors.Join(err, out.Sync(), out.Close()); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return fmt.Errorf("%w: %s does not match the manifest", node.ErrInvalid, filepath.Base(src))
	}
	return nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ledgerSize counts the entries of the ledger file at path.
func ledgerSize(ctx context.Context, path string) (int64, error) {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM entries").Scan(&n)
	return n, err
}

// manifestHeader opens a manifest; each line after it is a field and its
// value, then one "file NAME SHA256" line per file, sorted.
const manifestHeader = "medfed backup v1"

// Encode writes the manifest as text.
func (m Manifest) Encode() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\ncentre %s\nfederation %s\ntaken %s\nledger-size %d\n", manifestHeader, m.Centre, m.Federation, m.Taken.UTC().Format(time.RFC3339Nano), m.LedgerSize)
	for _, name := range slices.Sorted(maps.Keys(m.Files)) {
		fmt.Fprintf(&b, "file %s %s\n", name, m.Files[name])
	}
	return []byte(b.String())
}

// maxManifest bounds a manifest read from a backup.
const maxManifest = 64 << 10

// ParseManifest reads a manifest Encode wrote, refusing anything else: a
// backup comes from outside the centre.
func ParseManifest(b []byte) (Manifest, error) {
	m := Manifest{Files: map[string]string{}}
	bad := func(format string, args ...any) (Manifest, error) {
		return Manifest{}, fmt.Errorf("%w: a malformed backup manifest: %s", node.ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(b) > maxManifest {
		return bad("%d bytes", len(b))
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 6 || lines[0] != manifestHeader || lines[len(lines)-1] != "" {
		return bad("not a medfed backup's")
	}
	field := func(line, name string) (string, bool) {
		v, ok := strings.CutPrefix(line, name+" ")
		return v, ok && v != "" && !strings.ContainsAny(v, " \t\r")
	}
	var ok bool
	var taken, size string
	if m.Centre, ok = field(lines[1], "centre"); !ok {
		return bad("line 2")
	}
	if m.Federation, ok = field(lines[2], "federation"); !ok {
		return bad("line 3")
	}
	if taken, ok = field(lines[3], "taken"); !ok {
		return bad("line 4")
	}
	if size, ok = field(lines[4], "ledger-size"); !ok {
		return bad("line 5")
	}
	var err error
	if m.Taken, err = time.Parse(time.RFC3339Nano, taken); err != nil {
		return bad("taken: %v", err)
	}
	if m.LedgerSize, err = strconv.ParseInt(size, 10, 64); err != nil || m.LedgerSize < 0 {
		return bad("ledger-size %q", size)
	}
	prev := ""
	for i, line := range lines[5 : len(lines)-1] {
		parts := strings.Split(line, " ")
		if len(parts) != 3 || parts[0] != "file" || parts[1] <= prev {
			return bad("line %d", i+6)
		}
		if sum, err := hex.DecodeString(parts[2]); err != nil || len(sum) != sha256.Size || parts[2] != hex.EncodeToString(sum) {
			return bad("line %d: not a SHA-256", i+6)
		}
		m.Files[parts[1]], prev = parts[2], parts[1]
	}
	if m.Files[LedgerFile] == "" || m.Files[KeyFile] == "" {
		return bad("no %s or %s", LedgerFile, KeyFile)
	}
	return m, nil
}
