package centre_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

func testConfig(t testing.TB, dir string) centre.Config {
	t.Helper()
	cfg := centre.DefaultConfig()
	cfg.Centre.Name = "centre-a"
	cfg.Federation.ID = "test-federation"
	cfg.Data.Dir = dir
	return cfg
}

func openCentre(t testing.TB, dir string) *centre.Centre {
	t.Helper()
	c, err := centre.Open(context.Background(), testConfig(t, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func meta(class string) ledger.Record {
	return ledger.Record{Occurred: time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC), DataClass: class, Location: "cardiology"}
}

var patient = ledger.Pseudonym(sha256.Sum256([]byte("a patient")))

func TestRecordsAreStoredOffLedgerAndErasedByCryptoShredding(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openCentre(t, dir)
	payload := []byte("ECG: sinus rhythm, 72 bpm")
	n, err := c.AddRecord(ctx, patient, meta("ecg"), payload)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Payload(ctx, n)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("Payload = %q, %v", got, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, centre.LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, payload) || bytes.Contains(raw, []byte("sinus")) {
		t.Fatal("the clinical payload is in the ledger file")
	}

	x, err := c.Erase(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Payload(ctx, n); !errors.Is(err, centre.ErrErased) {
		t.Fatalf("Payload after erasure: %v, want ErrErased", err)
	}
	again, err := c.Erase(ctx, n)
	if err != nil || again != x {
		t.Fatalf("second Erase = %d, %v; want the first erasure %d", again, err, x)
	}
	e, err := c.Ledger.Entry(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if er, err := e.Erasure(); err != nil || er.Target != n || e.Subject != patient {
		t.Fatalf("erasure entry %+v, %v", er, err)
	}
	if _, err := c.Ledger.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	rep, err := centre.Verify(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != 2 {
		t.Fatalf("verified %d entries, want the record and its erasure", rep.Size)
	}
}

func TestEraseRefusesAnEntryThatIsNotARecord(t *testing.T) {
	ctx := context.Background()
	c := openCentre(t, t.TempDir())
	n, err := c.AddRecord(ctx, patient, meta("note"), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := c.Erase(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Erase(ctx, x); !errors.Is(err, centre.ErrNotARecord) {
		t.Fatalf("erasing an erasure: %v", err)
	}
	if _, err := c.Erase(ctx, 99); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("erasing a missing entry: %v", err)
	}
}

func TestADataDirectoryIsOpenedByOneProcessOnly(t *testing.T) {
	dir := t.TempDir()
	c := openCentre(t, dir)
	if _, err := centre.Open(context.Background(), testConfig(t, dir), nil); !errors.Is(err, centre.ErrInUse) {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
	c.Close()
	openCentre(t, dir) // released on close
}

func TestOpenRefusesAnUnsafeOrMissingKey(t *testing.T) {
	t.Run("key readable by others", func(t *testing.T) {
		dir := t.TempDir()
		openCentre(t, dir).Close()
		if err := os.Chmod(filepath.Join(dir, centre.KeyFile), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := centre.Open(context.Background(), testConfig(t, dir), nil); err == nil {
			t.Fatal("opened with a world-readable key")
		}
	})
	t.Run("key lost but ledger present", func(t *testing.T) {
		dir := t.TempDir()
		openCentre(t, dir).Close()
		if err := os.Remove(filepath.Join(dir, centre.KeyFile)); err != nil {
			t.Fatal(err)
		}
		if _, err := centre.Open(context.Background(), testConfig(t, dir), nil); err == nil {
			t.Fatal("opened a ledger with a new key")
		}
		if _, err := os.Stat(filepath.Join(dir, centre.KeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("a new key was written")
		}
	})
}

func TestVerifyRefusesADirectoryThatIsNotACentre(t *testing.T) {
	if _, err := centre.Verify(context.Background(), t.TempDir()); !errors.Is(err, centre.ErrNotDataDir) {
		t.Fatalf("Verify(empty dir): %v, want ErrNotDataDir", err)
	}
}

func TestOpenRefusesADirectoryHoldingSomethingElse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("\\documentclass{article}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := centre.Open(context.Background(), testConfig(t, dir), nil); !errors.Is(err, centre.ErrNotDataDir) {
		t.Fatalf("Open of a foreign directory: %v, want ErrNotDataDir", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("Open wrote %d files into a foreign directory", len(entries)-1)
	}
}

// A founding by 400 centres signs a version 1 note longer than a ledger
// entry's body: it is kept in parts, appended together, and read back
// whole, by the centre reopened and by ledger verify's reader.
func TestCharterLongerThanAnEntryIsKeptInParts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openCentre(t, dir)
	const n = 400
	keys := []ed25519.PrivateKey{c.Key()}
	for i := 1; i < n; i++ {
		seed := sha256.Sum256(fmt.Appendf(nil, "founder %d", i))
		keys = append(keys, ed25519.NewKeyFromSeed(seed[:]))
	}
	var members []federation.Member
	for i, k := range keys {
		id, err := centre.PeerID(k)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("founder-%03d", i)
		if i == 0 {
			name = "centre-a"
		}
		members = append(members, federation.Member{Name: name, ID: id, Addrs: []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/tcp/4001", i/256, i%256))}})
	}
	slices.SortFunc(members, func(a, b federation.Member) int { return strings.Compare(a.Name, b.Name) })
	v1 := federation.Charter{Federation: "test-federation", Version: 1, Policy: federation.DefaultPolicy(n), Members: members}
	// Each founder signs alone; the notes are merged pairwise.
	notes := make([][]byte, n)
	for i, k := range keys {
		var err error
		if notes[i], err = federation.Sign(v1, nil, k); err != nil {
			t.Fatal(err)
		}
	}
	for len(notes) > 1 {
		var next [][]byte
		for i := 0; i < len(notes); i += 2 {
			if i+1 == len(notes) {
				next = append(next, notes[i])
				continue
			}
			m, err := federation.Merge(notes[i], notes[i+1])
			if err != nil {
				t.Fatal(err)
			}
			next = append(next, m)
		}
		notes = next
	}
	note := notes[0]
	if len(note) <= ledger.MaxBody {
		t.Fatalf("a note of %d bytes fits one entry: the test needs more founders", len(note))
	}
	if _, err := c.InstallCharter(ctx, [][]byte{note}); err != nil {
		t.Fatal(err)
	}
	if es, err := c.Ledger.EntriesOfKind(ctx, ledger.KindCharter); err != nil || len(es) != 2 {
		t.Fatalf("the note of %d bytes is kept in %d entries (%v), want 2", len(note), len(es), err)
	}
	c.Close()
	c = openCentre(t, dir)
	if s, err := c.Charter(ctx); err != nil || len(s.Members) != n {
		t.Fatalf("reopened, the charter reads as %d members: %v", len(s.Members), err)
	}
	c.Close()
	chain, err := centre.ChainOnLedger(ctx, filepath.Join(dir, centre.LedgerFile))
	if err != nil || len(chain) != 1 || !bytes.Equal(chain[0], note) {
		t.Fatalf("ledger verify's reader finds %d versions (%v), not the note", len(chain), err)
	}
}
