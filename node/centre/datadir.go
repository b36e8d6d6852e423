package centre

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/durable"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
)

// A data directory carries its format in FormatFile, so that a medfed
// knows whether it may use a directory as it is, must upgrade it first,
// or must leave it alone because a newer medfed made it. Each SQLite file
// migrates its own schema as it opens (node/schema); the format is the
// directory's as a whole: which files it holds, where and in what shape,
// and that each was brought up to date.
//
// The file is three lines of text, like a backup's MANIFEST, that a person
// can read with cat:
//
//	medfed data directory
//	format 3
//	written-by medfed v1.4.0 revision 4d44063...
//
// The first two lines keep this shape in every format, so that any medfed,
// however old, can read the number and refuse a directory newer than it
// knows by name. written-by is the medfed that last wrote the file: it is
// written when a directory is made and after each step of an upgrade, not
// at every opening.

// FormatFile is the data directory's format file.
const FormatFile = "FORMAT"

// CurrentFormat is the format of the data directories this medfed makes,
// and the newest it can open.
const CurrentFormat = 3

// ErrNewerFormat is the kind of error for a data directory (or a backup)
// that a newer medfed made: this one changes nothing in it.
var ErrNewerFormat = node.E(node.Conflict, "the data directory is of a newer format than this medfed knows")

// formatHeader opens the format file.
const formatHeader = "medfed data directory"

// maxFormatFile bounds the format file read.
const maxFormatFile = 4 << 10

// dataFormat is what a format file says.
type dataFormat struct {
	Version   int
	WrittenBy string // "" for a directory without the file (format 1)
}

// encode returns the file's text.
func (f dataFormat) encode() []byte {
	return fmt.Appendf(nil, "%s\nformat %d\nwritten-by %s\n", formatHeader, f.Version, f.WrittenBy)
}

// parseFormat reads a format file's text. Of a format newer than known it
// reads only the first two lines and what written-by says, if it can find
// it; the rest is the business of the medfed that wrote it.
func parseFormat(b []byte, known int) (dataFormat, error) {
	var f dataFormat
	lines := strings.Split(string(b), "\n")
	if len(lines) < 3 || lines[0] != formatHeader {
		return f, errors.New("not a medfed format file")
	}
	v, ok := strings.CutPrefix(lines[1], "format ")
	n, err := strconv.Atoi(v)
	if !ok || err != nil || n < 2 || strconv.Itoa(n) != v {
		return f, fmt.Errorf("line 2: %q is not format N, N from 2", lines[1])
	}
	f.Version = n
	if n > known {
		for _, line := range lines[2:] {
			if by, ok := strings.CutPrefix(line, "written-by "); ok && printable(by) {
				f.WrittenBy = by
				break
			}
		}
		return f, nil
	}
	by, ok := strings.CutPrefix(lines[2], "written-by ")
	if !ok || by == "" || !printable(by) || len(lines) != 4 || lines[3] != "" {
		return f, errors.New("line 3: not written-by MEDFED followed by the end of the file")
	}
	f.WrittenBy = by
	return f, nil
}

// printable reports whether s is text fit for an error message: no
// control characters.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// readFormat returns the format of the data directory dir: 1 for one
// without a format file (made before there was one), an error naming both
// versions for one newer than known (ErrNewerFormat), and ErrNotDataDir
// for a format file that is not one. It only reads. known is
// CurrentFormat but in tests.
func readFormat(dir string, known int) (dataFormat, error) {
	f, err := os.Open(filepath.Join(dir, FormatFile))
	if errors.Is(err, fs.ErrNotExist) {
		return dataFormat{Version: 1}, nil
	}
	if err != nil {
		return dataFormat{}, fmt.Errorf("data directory format: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFormatFile+1))
	if err != nil {
		return dataFormat{}, fmt.Errorf("data directory format: %w", err)
	}
	if len(b) > maxFormatFile {
		return dataFormat{}, fmt.Errorf("%s: %w: its %s is over %d bytes", dir, ErrNotDataDir, FormatFile, maxFormatFile)
	}
	format, err := parseFormat(b, known)
	if err != nil {
		return dataFormat{}, fmt.Errorf("%s: %w: its %s is malformed (%v)", dir, ErrNotDataDir, FormatFile, err)
	}
	if format.Version > known {
		return format, fmt.Errorf("%s: %w: it is format %d, written by %s, and this is %s, which knows formats up to %d: run %s, or a newer one, on it (nothing in it was changed)",
			dir, ErrNewerFormat, format.Version, cmp.Or(format.WrittenBy, "a newer medfed"), thisMedfed(), known, cmp.Or(format.WrittenBy, "the medfed that wrote it"))
	}
	return format, nil
}

// writeFormat records that the data directory dir is of format version:
// the file is replaced in one rename, after its contents and before the
// directory are synced, so that a crash leaves the old file or the new
// one, whole.
func writeFormat(dir string, version int) error {
	f := dataFormat{Version: version, WrittenBy: thisMedfed()}
	if err := durable.Replace(filepath.Join(dir, FormatFile), f.encode()); err != nil {
		return fmt.Errorf("data directory format: %w", err)
	}
	return nil
}

// thisMedfed names this build of medfed in the format file: the module's
// version as the go command stamped it and, for a build from a checkout,
// its revision.
func thisMedfed() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "medfed (no build information)"
	}
	name := "medfed " + cmp.Or(info.Main.Version, "(devel)")
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			name += " revision " + s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			name += " modified"
		}
	}
	if !printable(name) {
		return "medfed (unprintable build information)"
	}
	return name
}

// An upgrade is a data directory being upgraded, under its lock, before
// the centre opens any of its files.
type upgrade struct {
	cfg Config
	log *slog.Logger
}

// A formatStep takes a data directory from one format to the next. A crash
// after it and before the format file records it runs it again: each must
// be idempotent, and leave the directory usable by no older medfed than
// the format it upgrades to.
type formatStep func(ctx context.Context, u upgrade) error

// formatSteps[i] takes a data directory from format i+1 to format i+2;
// CurrentFormat is len(formatSteps)+1. Never edit a step that has
// shipped: add one.
var formatSteps = []formatStep{
	// 1 -> 2: the format file itself. Every SQLite file the directory
	// holds is opened, which migrates it, so that a directory upgraded
	// while its node is stopped is current throughout.
	migrateFiles,
	// 2 -> 3: directory.db holds provider records' keys in binary, and
	// the ledger's hash blocks are in ledger-blocks.bin rather than
	// ledger-index.db: a medfed of format 2 would miss the binary records
	// and call their rows tampered, so it must refuse the directory.
	migrateBlocksAndKeys,
}

// upgradeDataDir brings the data directory of cfg to CurrentFormat, step
// by step, the format file rewritten after each step that succeeded, and
// returns the format it found. It must hold the directory's lock. A new
// directory (no format file, no key, no ledger) is simply marked current.
func upgradeDataDir(ctx context.Context, cfg Config, log *slog.Logger) (int, error) {
	return upgradeWith(ctx, upgrade{cfg: cfg, log: log}, formatSteps)
}

// upgradeWith is upgradeDataDir with the steps given, for the tests.
func upgradeWith(ctx context.Context, u upgrade, steps []formatStep) (int, error) {
	dir := u.cfg.Data.Dir
	f, err := readFormat(dir, len(steps)+1)
	if err != nil {
		return 0, err
	}
	was := f.Version
	if was == 1 && newDataDir(dir) {
		return len(steps) + 1, writeFormat(dir, len(steps)+1)
	}
	for v := was; v <= len(steps); v++ {
		if err := steps[v-1](ctx, u); err != nil {
			return was, fmt.Errorf("upgrading data directory %s from format %d to %d: %w", dir, v, v+1, err)
		}
		if err := writeFormat(dir, v+1); err != nil {
			return was, fmt.Errorf("upgrading data directory %s from format %d to %d: %w", dir, v, v+1, err)
		}
		u.log.Info("data directory upgraded", "component", "node", "from", v, "to", v+1)
	}
	return was, nil
}

// newDataDir reports whether dir holds no centre yet: neither its key nor
// its ledger.
func newDataDir(dir string) bool {
	for _, name := range []string{KeyFile, LedgerFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// A FileUpgrade brings a SQLite file of the data directory dir up to date
// and closes it: the file's package opens it, which migrates its schema.
// key is the file's row key (RowKey).
type FileUpgrade func(ctx context.Context, dir string, key []byte) error

var (
	fileUpgradesMu sync.Mutex
	fileUpgrades   = map[string]FileUpgrade{
		DirectoryFile: func(_ context.Context, dir string, key []byte) error {
			return directory.UpgradeStore(filepath.Join(dir, DirectoryFile), key)
		},
	}
)

// RegisterFileUpgrade has each upgrade of a data directory bring the
// SQLite file name up to date with up, when the directory holds it. The
// packages that keep a centre's files above this one (node/api's staff.db,
// node/smart's clients.db) import this package, which therefore cannot
// call them: each registers its file in an init function, as a database
// driver does. A second registration of a name replaces the first.
func RegisterFileUpgrade(name string, up FileUpgrade) {
	if name != filepath.Base(name) || up == nil {
		panic("centre: RegisterFileUpgrade of " + strconv.Quote(name))
	}
	fileUpgradesMu.Lock()
	defer fileUpgradesMu.Unlock()
	fileUpgrades[name] = up
}

// migrateFiles opens and closes every SQLite file the data directory
// holds, the ledger (with its index) and the records store here, the
// others through what their packages registered, so that each migrates;
// it creates none. Opening a file that is up to date changes nothing, so
// it may run any number of times.
func migrateFiles(ctx context.Context, u upgrade) error {
	return migrateOnly(ctx, u, func(string) bool { return true })
}

// migrateBlocksAndKeys opens and closes the ledger, whose index moves its
// hash blocks to their own file as it opens, and directory.db, whose
// provider records' keys go binary, as migrateFiles does.
func migrateBlocksAndKeys(ctx context.Context, u upgrade) error {
	return migrateOnly(ctx, u, func(name string) bool { return name == LedgerFile || name == DirectoryFile })
}

// migrateOnly is migrateFiles for the files named that only says.
func migrateOnly(ctx context.Context, u upgrade, only func(name string) bool) error {
	dir := u.cfg.Data.Dir
	holds := func(name string) bool {
		_, err := os.Lstat(filepath.Join(dir, name))
		return only(name) && !errors.Is(err, fs.ErrNotExist)
	}
	key, err := readKey(filepath.Join(dir, KeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	needKey := func(name string) error {
		if key == nil {
			return fmt.Errorf("%s is missing but %s exists: restore the centre key from backup", KeyFile, name)
		}
		return nil
	}
	if holds(LedgerFile) {
		if err := needKey(LedgerFile); err != nil {
			return err
		}
		l, err := ledger.Open(ctx, filepath.Join(dir, LedgerFile), ledger.Options{
			Origin: ledger.Origin(u.cfg.Federation.ID, u.cfg.Centre.Name),
			Key:    key,
			Logger: u.log.With("component", "ledger"),
			Now:    clock.Now,
		})
		if err != nil {
			return err
		}
		if err := l.Close(); err != nil {
			return fmt.Errorf("%s: %w", LedgerFile, err)
		}
	}
	if holds(records.File) {
		s, err := records.Open(dir, records.Options{Now: clock.Now})
		if err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return fmt.Errorf("%s: %w", records.File, err)
		}
	}
	fileUpgradesMu.Lock()
	ups := maps.Clone(fileUpgrades)
	fileUpgradesMu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(ups)) {
		if !holds(name) {
			continue
		}
		if err := needKey(name); err != nil {
			return err
		}
		if err := ups[name](ctx, dir, rowKey(key, name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
