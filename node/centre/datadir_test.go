package centre

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

// formatTestConfig is a centre of no federation in dir.
func formatTestConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Centre.Name = "centre-a"
	cfg.Federation.ID = "test-federation"
	cfg.Data.Dir = dir
	return cfg
}

// formatOpen opens the centre of formatTestConfig(dir), closed when the
// test ends, logging to log if it is not nil.
func formatOpen(t *testing.T, dir string, log *slog.Logger) *Centre {
	t.Helper()
	c, err := Open(context.Background(), formatTestConfig(dir), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// formatOneDir makes a data directory as medfed wrote it before the
// format file: a centre with a record, closed, without FORMAT. It returns
// the directory and the record's index.
func formatOneDir(t *testing.T) (string, int64) {
	t.Helper()
	dir := t.TempDir()
	c, err := Open(context.Background(), formatTestConfig(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := ledger.Pseudonym(sha256.Sum256([]byte("a patient")))
	n, err := c.AddRecord(context.Background(), p, ledger.Record{Occurred: time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC), DataClass: "lab-result"}, []byte("a result"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, FormatFile)); err != nil {
		t.Fatal(err)
	}
	return dir, n
}

// formatSays returns what dir's format file says, failing the test
// unless it is well formed and known.
func formatSays(t *testing.T, dir string) dataFormat {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FormatFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFormat(b, CurrentFormat)
	if err != nil {
		t.Fatalf("%s: %v\n%s", FormatFile, err, b)
	}
	return f
}

// snapshot is every file under dir, by name, with its mode and contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b := []byte{}
		if d.Type().IsRegular() {
			if b, err = os.ReadFile(path); err != nil {
				return err
			}
		}
		files[path] = fmt.Sprintf("%v %x", fi.Mode(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestFormatCurrentIsAfterTheLastStep(t *testing.T) {
	if CurrentFormat != len(formatSteps)+1 {
		t.Fatalf("CurrentFormat is %d, but the steps take a directory to format %d", CurrentFormat, len(formatSteps)+1)
	}
}

// The format file is read strictly in the formats this medfed knows; of
// a newer one only the number and who wrote it are read.
func TestFormatFileIsReadStrictly(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       dataFormat // zero: malformed
	}{
		{name: "current", text: "medfed data directory\nformat 2\nwritten-by medfed v1.0.0\n", want: dataFormat{2, "medfed v1.0.0"}},
		{name: "newer, with more lines", text: "medfed data directory\nformat 7\nsomething new\nwritten-by medfed v9.0.0\nmore\n", want: dataFormat{7, "medfed v9.0.0"}},
		{name: "newer, saying nothing of who wrote it", text: "medfed data directory\nformat 4\n\n", want: dataFormat{4, ""}},
		{name: "empty", text: ""},
		{name: "another header", text: "medfed backup v1\nformat 2\nwritten-by medfed v1.0.0\n"},
		{name: "format 1, which has no file", text: "medfed data directory\nformat 1\nwritten-by medfed v1.0.0\n"},
		{name: "format 0", text: "medfed data directory\nformat 0\nwritten-by medfed v1.0.0\n"},
		{name: "a negative format", text: "medfed data directory\nformat -2\nwritten-by medfed v1.0.0\n"},
		{name: "a leading zero", text: "medfed data directory\nformat 02\nwritten-by medfed v1.0.0\n"},
		{name: "no number", text: "medfed data directory\nformat two\nwritten-by medfed v1.0.0\n"},
		{name: "no written-by", text: "medfed data directory\nformat 2\n\n"},
		{name: "an empty written-by", text: "medfed data directory\nformat 2\nwritten-by \n"},
		{name: "a control character", text: "medfed data directory\nformat 2\nwritten-by medfed \x1b[2J\n"},
		{name: "a line more", text: "medfed data directory\nformat 2\nwritten-by medfed v1.0.0\nextra\n"},
		{name: "no final newline", text: "medfed data directory\nformat 2\nwritten-by medfed v1.0.0"},
		{name: "CRLF", text: "medfed data directory\r\nformat 2\r\nwritten-by medfed v1.0.0\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFormat([]byte(tc.text), CurrentFormat)
			switch {
			case tc.want == (dataFormat{}) && err == nil:
				t.Fatalf("parsed %+v, want it refused", got)
			case tc.want != (dataFormat{}) && err != nil:
				t.Fatalf("%v, want %+v", err, tc.want)
			case got != tc.want && err == nil:
				t.Fatalf("parsed %+v, want %+v", got, tc.want)
			}
		})
	}
	f := dataFormat{Version: CurrentFormat, WrittenBy: thisMedfed()}
	if got, err := parseFormat(f.encode(), CurrentFormat); err != nil || got != f {
		t.Fatalf("what encode writes reads back as %+v, %v; want %+v", got, err, f)
	}
}

// A new data directory is made current: its format file names this
// medfed, and nothing needs upgrading.
func TestDataDirNewIsMadeCurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	c := formatOpen(t, dir, nil)
	if c.formatWas != CurrentFormat {
		t.Errorf("a new directory was format %d, want %d", c.formatWas, CurrentFormat)
	}
	if f := formatSays(t, dir); f.Version != CurrentFormat || f.WrittenBy != thisMedfed() {
		t.Errorf("%s says %+v, want format %d by %q", FormatFile, f, CurrentFormat, thisMedfed())
	}
	fi, err := os.Stat(filepath.Join(dir, FormatFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %#o, want 0600", FormatFile, perm)
	}
}

// A directory made before the format file (format 1) is upgraded as the
// centre opens, once, and says so in the log; what it held is all there.
func TestDataDirUpgradeFromFormat1(t *testing.T) {
	dir, index := formatOneDir(t)
	var logs bytes.Buffer
	c := formatOpen(t, dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if c.formatWas != 1 {
		t.Errorf("the directory was format %d, want 1", c.formatWas)
	}
	if f := formatSays(t, dir); f.Version != CurrentFormat {
		t.Errorf("%s says format %d after the upgrade, want %d", FormatFile, f.Version, CurrentFormat)
	}
	if !strings.Contains(logs.String(), `msg="data directory upgraded"`) || !strings.Contains(logs.String(), "from=1 to=2") {
		t.Errorf("the log does not say the directory was upgraded from 1 to 2:\n%s", logs.String())
	}
	if payload, err := c.Payload(context.Background(), index); err != nil || string(payload) != "a result" {
		t.Fatalf("the record after the upgrade: %q, %v", payload, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	formatOpen(t, dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if strings.Contains(logs.String(), "data directory upgraded") {
		t.Errorf("a current directory was upgraded again:\n%s", logs.String())
	}
}

// The step from format 1 opens every SQLite file the directory holds,
// which migrates it: the ledger with its index (rebuilt here, having
// been removed), the records store, and the files other packages
// registered, when the directory holds them; it creates none of theirs.
func TestDataDirUpgradeOpensEveryFile(t *testing.T) {
	dir, _ := formatOneDir(t)
	index := ledger.IndexPath(filepath.Join(dir, LedgerFile))
	if err := os.Remove(index); err != nil {
		t.Fatal(err)
	}
	key, err := readKey(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		dir string
		key []byte
	}
	var calls []call
	const held, absent = "upgrade-test-held.db", "upgrade-test-absent.db"
	for _, name := range []string{held, absent} {
		RegisterFileUpgrade(name, func(ctx context.Context, dir string, key []byte) error {
			calls = append(calls, call{dir, key})
			return nil
		})
		t.Cleanup(func() {
			fileUpgradesMu.Lock()
			delete(fileUpgrades, name)
			fileUpgradesMu.Unlock()
		})
	}
	if err := os.WriteFile(filepath.Join(dir, held), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := upgradeDataDir(context.Background(), formatTestConfig(dir), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(index); err != nil {
		t.Errorf("the upgrade did not open the ledger: no index (%v)", err)
	}
	if len(calls) != 1 || calls[0].dir != dir || !bytes.Equal(calls[0].key, rowKey(key, held)) {
		t.Errorf("the registered upgrades were called %d times (%+v), want once, for %s with its row key", len(calls), calls, held)
	}
	if _, err := os.Stat(filepath.Join(dir, absent)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the upgrade made %s (%v)", absent, err)
	}
	// A registered file's failure fails the step, naming the file, and
	// leaves the format as it was.
	if err := os.Remove(filepath.Join(dir, FormatFile)); err != nil {
		t.Fatal(err)
	}
	RegisterFileUpgrade(held, func(context.Context, string, []byte) error {
		return errors.New("schema version 9 is newer than this program supports (3)")
	})
	_, err = upgradeDataDir(context.Background(), formatTestConfig(dir), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), held) || !strings.Contains(err.Error(), "from format 1 to 2") {
		t.Fatalf("an upgrade whose file failed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FormatFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed step was recorded in %s (%v)", FormatFile, err)
	}
}

// The real step may run any number of times: a crash after it and before
// the format file is written runs it again at the next opening, which
// then finds everything as it was.
func TestDataDirUpgradeCrashAfterTheStepRunsItAgain(t *testing.T) {
	dir, index := formatOneDir(t)
	cfg := formatTestConfig(dir)
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the step, and the crash before FORMAT, twice
		if err := migrateFiles(context.Background(), upgrade{cfg: cfg, log: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := lock.unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FormatFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the step wrote %s itself (%v)", FormatFile, err)
	}
	c := formatOpen(t, dir, nil)
	if c.formatWas != 1 || formatSays(t, dir).Version != CurrentFormat {
		t.Fatalf("the directory was format %d and is %d, want 1 and %d", c.formatWas, formatSays(t, dir).Version, CurrentFormat)
	}
	if payload, err := c.Payload(context.Background(), index); err != nil || string(payload) != "a result" {
		t.Fatalf("the record after the step ran three times: %q, %v", payload, err)
	}
	if size := c.Ledger.Size(); size != index+1 {
		t.Fatalf("the ledger has %d entries after the step ran three times, want %d", size, index+1)
	}
}

// An upgrade goes step by step, the format file rewritten after each
// that succeeded: a step that fails (as a crash in it) leaves the
// directory at the format before it, and the next opening runs that step
// again and none before it.
func TestDataDirUpgradeGoesStepByStep(t *testing.T) {
	dir, _ := formatOneDir(t)
	u := upgrade{cfg: formatTestConfig(dir), log: slog.New(slog.DiscardHandler)}
	ran := map[int]int{}
	fail := true
	steps := []formatStep{
		func(context.Context, upgrade) error { ran[2]++; return nil },
		func(context.Context, upgrade) error {
			ran[3]++
			if fail {
				return errors.New("the disk is full")
			}
			return nil
		},
		func(context.Context, upgrade) error { ran[4]++; return nil },
	}
	was, err := upgradeWith(context.Background(), u, steps)
	if err == nil || !strings.Contains(err.Error(), "from format 2 to 3: the disk is full") {
		t.Fatalf("an upgrade whose second step failed: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, FormatFile)); was != 1 || !bytes.HasPrefix(b, []byte(formatHeader+"\nformat 2\n")) {
		t.Fatalf("after the second step failed: was %d, %s says %q; want 1 and format 2", was, FormatFile, b)
	}
	fail = false
	if was, err = upgradeWith(context.Background(), u, steps); err != nil || was != 2 {
		t.Fatalf("the upgrade again: was %d, %v; want 2", was, err)
	}
	if want := map[int]int{2: 1, 3: 2, 4: 1}; !maps.Equal(ran, want) {
		t.Fatalf("steps to each format ran %v times, want %v", ran, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, FormatFile)); !bytes.HasPrefix(b, []byte(formatHeader+"\nformat 4\n")) {
		t.Fatalf("after every step: %s says %q, want format 4", FormatFile, b)
	}
	// This medfed knows formats up to CurrentFormat (3): the directory is now too new for it.
	if _, err := readFormat(dir, CurrentFormat); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("a format 4 directory read by a medfed of format %d: %v", CurrentFormat, err)
	}
}

// A data directory of a newer format, or one whose format file is not
// one, is refused by every way in, with an error naming both formats and
// the medfed to run, and left exactly as it was, its lock file included.
func TestDataDirFormatNewerIsRefusedUnchanged(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, text string
		kind       error
		want       []string
	}{
		{name: "newer", text: "medfed data directory\nformat 4\nwritten-by medfed v9.1.0\nlayout v4\n", kind: ErrNewerFormat,
			want: []string{"format 4, written by medfed v9.1.0", "this is " + thisMedfed(), fmt.Sprintf("knows formats up to %d", CurrentFormat), "run medfed v9.1.0, or a newer one, on it", "nothing in it was changed"}},
		{name: "malformed", text: "medfed data directory\nformat three\n", kind: ErrNotDataDir,
			want: []string{FormatFile + " is malformed", `"format three"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := formatOneDir(t)
			if err := os.WriteFile(filepath.Join(dir, FormatFile), []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			// Another process's pid, which taking the lock would replace.
			if err := os.WriteFile(filepath.Join(dir, LockFile), []byte("1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			for name, open := range map[string]func() error{
				"Open": func() error {
					c, err := Open(ctx, formatTestConfig(dir), nil)
					if err == nil {
						c.Close()
					}
					return err
				},
				"Check": func() error { _, err := Check(ctx, formatTestConfig(dir)); return err },
			} {
				err := open()
				if !errors.Is(err, tc.kind) {
					t.Fatalf("%s: %v, want %v", name, err, tc.kind)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %q does not say %q", name, err, w)
					}
				}
			}
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Fatalf("the refused directory changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// A full check upgrades a directory of an older format and says so.
func TestCheckReportsTheFormat(t *testing.T) {
	dir, _ := formatOneDir(t)
	rep, err := Check(context.Background(), formatTestConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Format != CurrentFormat || rep.FormatWas != 1 || rep.Payloads != 1 {
		t.Fatalf("check of a format 1 directory: format %d, was %d, %d payloads; want %d, 1, 1", rep.Format, rep.FormatWas, rep.Payloads, CurrentFormat)
	}
	if rep, err = Check(context.Background(), formatTestConfig(dir)); err != nil || rep.Format != CurrentFormat || rep.FormatWas != CurrentFormat {
		t.Fatalf("check again: format %d, was %d, %v; want %d, %d", rep.Format, rep.FormatWas, err, CurrentFormat, CurrentFormat)
	}
}

// A backup carries the format file and a restore brings it back; a
// backup of a newer format is refused before anything is restored.
func TestBackupCarriesTheFormat(t *testing.T) {
	ctx := context.Background()
	c := formatOpen(t, t.TempDir(), nil)
	back := filepath.Join(t.TempDir(), "backup")
	m, err := c.Backup(ctx, back)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Files[FormatFile]; !ok {
		t.Fatalf("the backup's manifest does not list %s: %v", FormatFile, m.Files)
	}
	to := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(ctx, back, formatTestConfig(to)); err != nil {
		t.Fatal(err)
	}
	if f := formatSays(t, to); f.Version != CurrentFormat {
		t.Fatalf("the restored directory is format %d, want %d", f.Version, CurrentFormat)
	}
	newer := "medfed data directory\nformat 4\nwritten-by medfed v9.1.0\n"
	if err := os.WriteFile(filepath.Join(back, FormatFile), []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(t.TempDir(), "again")
	if _, err := Restore(ctx, back, formatTestConfig(again)); !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "run medfed v9.1.0") {
		t.Fatalf("restore of a newer format's backup: %v, want ErrNewerFormat naming medfed v9.1.0", err)
	}
	if _, err := os.Stat(again); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused restore made its directory (%v)", err)
	}
}

// The full check names ledger-blocks.bin, the hash blocks beside the
// pseudonym index, when a block written there does not match the
// entries: a ledger longer than an index bucket (65,536 entries), whose
// first bucket's blocks are on disk.
func TestCheckNamesTheBlocksFile(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 70,000 entries")
	}
	ctx := context.Background()
	dir := t.TempDir()
	cfg := formatTestConfig(dir)
	c, err := Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	key, err := readKey(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, filepath.Join(dir, LedgerFile), ledger.Options{Origin: ledger.Origin(cfg.Federation.ID, cfg.Centre.Name), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]ledger.Entry, 0, 5000)
	for i := range 70_000 {
		r := ledger.Record{Occurred: time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC), DataClass: "lab-result"}
		h := sha256.Sum256(fmt.Append(nil, i))
		copy(r.Payload[:], h[:])
		r.Commitment = sha256.Sum256(h[:])
		e, err := ledger.NewRecord(ledger.Pseudonym(sha256.Sum256(fmt.Append(nil, "patient", i%100))), r)
		if err != nil {
			t.Fatal(err)
		}
		if entries = append(entries, e); len(entries) == cap(entries) {
			if _, err := l.Append(ctx, entries...); err != nil {
				t.Fatal(err)
			}
			entries = entries[:0]
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	blocks := ledger.BlocksPath(filepath.Join(dir, LedgerFile))
	f, err := os.OpenFile(blocks, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte{0xff, 0xff}, 100*62*32+7)
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	var de *DataError
	if _, err := Check(ctx, cfg); !errors.As(err, &de) || de.File != "ledger-blocks.bin" || de.Table != "blocks" {
		t.Fatalf("check of a changed hash block: %v, want a DataError naming ledger-blocks.bin", err)
	}
}
