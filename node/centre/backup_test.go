package centre_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// backupFederation founds a federation of three centres with a short
// checkpoint interval and starts them; the test stops them.
func backupFederation(t *testing.T) ([]centre.Config, []*harness.Node) {
	t.Helper()
	root := t.TempDir()
	cfgs := []centre.Config{nodetest.Config(t, root, "centre-a"), nodetest.Config(t, root, "centre-b"), nodetest.Config(t, root, "centre-c")}
	for i := range cfgs {
		cfgs[i].Ledger.CheckpointInterval = 200 * time.Millisecond
	}
	nodetest.Found(t, cfgs...)
	nodes := make([]*harness.Node, len(cfgs))
	for i, cfg := range cfgs {
		n, err := harness.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { nodes[i].Stop() })
	}
	return cfgs, nodes
}

// addRecords adds n records at node x and waits until they are in a
// checkpoint both witnesses cosigned.
func addRecords(t *testing.T, x *harness.Node, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		p := ledger.Pseudonym(sha256.Sum256([]byte{byte(i), 'b'}))
		if _, err := x.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("a result")}); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.Eventually(t, 20*time.Second, "every entry in a final checkpoint", func() bool {
		f, ok := x.Centre.Ledger.LatestFinal()
		return ok && f.Size == x.Centre.Ledger.Size()
	})
}

// restoreAndStart restores the backup in dir into cfg's empty data
// directory and starts the node there, stopped when the test ends.
func restoreAndStart(t *testing.T, dir string, cfg centre.Config) *harness.Node {
	t.Helper()
	ctx := context.Background()
	if _, err := centre.Restore(ctx, dir, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := harness.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

// waitMirrored waits until each witness mirrors x's ledger up to size.
func waitMirrored(t *testing.T, x *harness.Node, size int64, witnesses ...*harness.Node) {
	t.Helper()
	nodetest.Eventually(t, 20*time.Second, "the witnesses mirror the ledger", func() bool {
		for _, w := range witnesses {
			end, err := w.Centre.Ledger.MirrorEnd(context.Background(), x.Centre.Ledger.Origin())
			if err != nil {
				t.Fatal(err)
			}
			if end < size {
				return false
			}
		}
		return true
	})
}

// noEvidence fails the test if a witness holds evidence against any log.
func noEvidence(t *testing.T, nodes ...*harness.Node) {
	t.Helper()
	for _, w := range nodes {
		ev, err := w.Centre.Ledger.Evidence(context.Background())
		if err != nil || len(ev) > 0 {
			t.Fatalf("%s holds evidence %v (%v): the restored ledger equivocated", w.Centre.Name, ev, err)
		}
	}
}

// A centre restored from a backup older than what its witnesses cosigned
// finds out from them before it appends anything: it halts (appends and
// signs nothing, is not ready, and says which witness holds how much), and
// no witness ever holds evidence of equivocation. Restored from an up to
// date backup, it resumes once every other member has confirmed it.
func TestRestoreFromAnOldBackupNeverForks(t *testing.T) {
	nodetest.InTurn(t)
	ctx := context.Background()
	cfgs, nodes := backupFederation(t)
	b := nodes[1]
	addRecords(t, b, 3)
	// medfed directory check: the three patients are announced at both
	// other members, the replicas of every key in a federation of three.
	dc, err := b.CheckDirectory(ctx)
	if err != nil || dc.Patients != 3 || dc.Report.Checked != 6 || len(dc.Failed) != 0 {
		t.Fatalf("directory check: %+v, %v; want 3 patients at 2 replicas each", dc, err)
	}
	old := filepath.Join(t.TempDir(), "old")
	m, err := b.Centre.Backup(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if m.LedgerSize != b.Centre.Ledger.Size() {
		t.Fatalf("the backup has %d entries of %d", m.LedgerSize, b.Centre.Ledger.Size())
	}
	addRecords(t, b, 3) // the witnesses now hold more than the backup
	witnessed := b.Centre.Ledger.Size()
	root, err := b.Centre.Ledger.RootAt(ctx, witnessed)
	if err != nil {
		t.Fatal(err)
	}
	since, err := b.Centre.Ledger.Entries(ctx, m.LedgerSize, witnessed)
	if err != nil {
		t.Fatal(err)
	}
	waitMirrored(t, b, witnessed, nodes[0], nodes[2])
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	// The disk is lost; the old backup comes back. The centre finds its
	// ledger behind what its witnesses cosigned, halts, reads the entries
	// it lacks back from their mirrors, appends them as they were (the
	// root meets the cosigned one), and appends again once every other
	// member confirms: nothing acknowledged is lost from the ledger, and
	// no witness sees two histories.
	cfgB := cfgs[1]
	if err := os.Rename(cfgB.Data.Dir, cfgB.Data.Dir+".lost"); err != nil {
		t.Fatal(err)
	}
	restarted := restoreAndStart(t, old, cfgB)
	if got := restarted.Centre.Ledger.Size(); got != m.LedgerSize {
		t.Fatalf("the restored ledger has %d entries, the backup %d", got, m.LedgerSize)
	}
	nodetest.Eventually(t, 30*time.Second, "the restored ledger recovered and confirmed", func() bool {
		return restarted.Centre.Ledger.Size() == witnessed && restarted.Centre.Ledger.Halted() == nil
	})
	t.Logf("the restored ledger of %d entries recovered %d from the mirrors", m.LedgerSize, witnessed-m.LedgerSize)
	if got, err := restarted.Centre.Ledger.RootAt(ctx, witnessed); err != nil || got != root {
		t.Fatalf("the recovered root: %x, %v; want the cosigned %x", got, err, root)
	}
	back, err := restarted.Centre.Ledger.Entries(ctx, m.LedgerSize, witnessed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range since {
		if !reflect.DeepEqual(back[i], since[i]) {
			t.Fatalf("entry %d came back as %+v, was %+v", since[i].Index, back[i], since[i])
		}
	}
	// The payloads of the records appended after the backup were not in
	// it: their entries stand, their payloads are lost, and a read says so.
	for _, e := range since {
		if e.Kind == ledger.KindRecord {
			if _, err := restarted.Centre.Payload(ctx, e.Index); err == nil {
				t.Fatalf("record %d: a payload the backup did not hold", e.Index)
			}
		}
	}
	addRecords(t, restarted, 1)
	time.Sleep(2 * time.Second) // publishing rounds, views exchanged
	noEvidence(t, nodes[0], nodes[2])
	if err := restarted.Stop(); err != nil {
		t.Fatal(err)
	}

	// An up to date backup: the members confirm it, and it appends again.
	if err := os.RemoveAll(cfgB.Data.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cfgB.Data.Dir+".lost", cfgB.Data.Dir); err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(t.TempDir(), "current")
	nodetest.Offline(t, cfgB, func(c *centre.Centre) {
		if _, err := c.Backup(ctx, current); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.Rename(cfgB.Data.Dir, cfgB.Data.Dir+".lost"); err != nil {
		t.Fatal(err)
	}
	if _, err := centre.Restore(ctx, current, cfgB); err != nil {
		t.Fatal(err)
	}
	again, err := harness.Start(ctx, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop()
	if !errors.Is(again.Centre.Ledger.Halted(), centre.ErrUnconfirmedRestore) {
		if err := again.Centre.Ledger.Halted(); err != nil { // confirmed already is fine; halted otherwise is not
			t.Fatalf("the restored ledger: %v", err)
		}
	}
	nodetest.Eventually(t, 30*time.Second, "the restored ledger confirmed", func() bool {
		return again.Centre.Ledger.Halted() == nil
	})
	if _, err := os.Stat(filepath.Join(cfgB.Data.Dir, centre.RestoredFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restored mark stays: %v", err)
	}
	addRecords(t, again, 2)
	noEvidence(t, nodes[0], nodes[2])
}

// A backup taken while records are added passes the full check once
// restored: the ledger verifies against its charter and witnesses, and
// every record's payload is there and matches its commitment.
func TestBackupUnderWritesRestoresWhole(t *testing.T) {
	nodetest.InTurn(t)
	ctx := context.Background()
	cfgs, nodes := backupFederation(t)
	b := nodes[1]
	addRecords(t, b, 2)
	// Ready, once the two patients' announcements are sent and checked at
	// their replicas (/readyz's AnnounceBacklog).
	nodetest.Eventually(t, 30*time.Second, "the announce backlog drained", func() bool {
		r, err := b.Ready()
		return err == nil && r.AnnounceBacklog == 0
	})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var added int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := ledger.Pseudonym(sha256.Sum256([]byte{byte(i), byte(i >> 8), 'w'}))
			if _, err := b.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("written during the backup")}); err != nil {
				t.Error(err)
				return
			}
			added++
		}
	}()
	time.Sleep(200 * time.Millisecond)
	dir := filepath.Join(t.TempDir(), "backup")
	m, err := b.Centre.Backup(ctx, dir)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if added == 0 {
		t.Fatal("no record was added while the backup ran")
	}
	nodetest.Eventually(t, 20*time.Second, "the backup's entries in a final checkpoint", func() bool {
		f, ok := b.Centre.Ledger.LatestFinal()
		return ok && f.Size >= m.LedgerSize
	})

	restored := cfgs[1]
	restored.Data.Dir = filepath.Join(t.TempDir(), "restored")
	if _, err := centre.Restore(ctx, dir, restored); err != nil {
		t.Fatal(err)
	}
	rep, err := centre.Check(ctx, restored)
	if err != nil {
		t.Fatalf("the restored centre's full check: %v", err)
	}
	if rep.Ledger.Size != m.LedgerSize || rep.Payloads < 2 {
		t.Fatalf("checked %+v of a backup of %d entries", rep, m.LedgerSize)
	}
	if _, err := centre.Restore(ctx, dir, restored); !errors.Is(err, centre.ErrNotEmpty) {
		t.Fatalf("restoring over a data directory: %v, want ErrNotEmpty", err)
	}
	other := cfgs[2]
	other.Data.Dir = filepath.Join(t.TempDir(), "other")
	if _, err := centre.Restore(ctx, dir, other); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("centre-b's backup restored as centre-c: %v, want ErrInvalid", err)
	}
}

// FuzzParseManifest: a backup's manifest comes from outside the centre;
// what parses encodes to a manifest that parses to the same one, and
// encodes to the same bytes again.
func FuzzParseManifest(f *testing.F) {
	m := centre.Manifest{Centre: "centre-b", Federation: "test-federation", Taken: time.Date(2026, 12, 5, 1, 2, 3, 4, time.UTC), LedgerSize: 42,
		Files: map[string]string{centre.LedgerFile: fmt.Sprintf("%064x", 1), centre.KeyFile: fmt.Sprintf("%064x", 2)}}
	f.Add(m.Encode())
	f.Add([]byte("medfed backup v1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := centre.ParseManifest(b)
		if err != nil {
			return
		}
		enc := m.Encode()
		again, err := centre.ParseManifest(enc)
		if err != nil || !bytes.Equal(again.Encode(), enc) || !again.Taken.Equal(m.Taken) || again.LedgerSize != m.LedgerSize || !maps.Equal(again.Files, m.Files) {
			t.Fatalf("%q: parsed, encoded and parsed again: %+v, %v", b, again, err)
		}
	})
}

// TestRestoreWithoutMirrorsNeverForks: a centre restored from an old
// backup whose witnesses lost their mirrors of it cannot get back what it
// appended since: it stays halted, behind the checkpoint they cosigned,
// appending and signing nothing, and no witness sees two histories.
func TestRestoreWithoutMirrorsNeverForks(t *testing.T) {
	nodetest.InTurn(t)
	ctx := context.Background()
	cfgs, nodes := backupFederation(t)
	b := nodes[1]
	addRecords(t, b, 2)
	old := filepath.Join(t.TempDir(), "old")
	m, err := b.Centre.Backup(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	addRecords(t, b, 2)
	witnessed := b.Centre.Ledger.Size()
	waitMirrored(t, b, witnessed, nodes[0], nodes[2])
	origin := b.Centre.Ledger.Origin()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		db, err := sql.Open("sqlite3", filepath.Join(cfgs[i].Data.Dir, centre.LedgerFile))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "DELETE FROM mirrors WHERE origin = ?", origin); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	cfgB := cfgs[1]
	if err := os.RemoveAll(cfgB.Data.Dir); err != nil {
		t.Fatal(err)
	}
	restarted := restoreAndStart(t, old, cfgB)
	var behind *federation.HistoryError
	nodetest.Eventually(t, 30*time.Second, "the restored ledger halted as behind its witnesses", func() bool {
		return errors.As(restarted.Centre.Ledger.Halted(), &behind)
	})
	if behind.Held != witnessed || behind.Size != m.LedgerSize || behind.Fork {
		t.Fatalf("halted with %+v; want a witness holding %d of a ledger of %d", behind, witnessed, m.LedgerSize)
	}
	p := ledger.Pseudonym(sha256.Sum256([]byte("after the restore")))
	if _, err := restarted.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("x")}); !errors.Is(err, ledger.ErrHalted) {
		t.Fatalf("a record added to the halted ledger: %v, want ErrHalted", err)
	}
	if _, err := restarted.Ready(); err == nil {
		t.Fatal("the halted centre says it is ready")
	}
	time.Sleep(2 * time.Second) // publishing rounds, views exchanged
	if got := restarted.Centre.Ledger.Size(); got != m.LedgerSize {
		t.Fatalf("the halted ledger grew from %d to %d", m.LedgerSize, got)
	}
	noEvidence(t, nodes[0], nodes[2])
}
