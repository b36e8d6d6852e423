package ledger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	mrand "math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

func benchEntry(b testing.TB, i int) ledger.Entry {
	var p ledger.Pseudonym
	rand.Read(p[:])
	r := ledger.Record{Occurred: time.Unix(1_700_000_000+int64(i), 0), DataClass: "lab-result", Location: "ward 7/haematology"}
	rand.Read(r.Author[:])
	rand.Read(r.Payload[:])
	rand.Read(r.Commitment[:])
	e, err := ledger.NewRecord(p, r)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func appendConcurrently(b testing.TB, l *ledger.Ledger, total, writers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(total) {
				if _, err := l.Append(context.Background(), benchEntry(b, 1)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func openBench(b testing.TB, dir string, maxBatch int) *ledger.Ledger {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l, err := ledger.Open(context.Background(), filepath.Join(dir, "ledger.db"), ledger.Options{Origin: "medfed/bench/a", Key: key, MaxBatch: maxBatch})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkAppend64(b *testing.B) {
	l := openBench(b, b.TempDir(), 0)
	defer l.Close()
	b.ResetTimer()
	appendConcurrently(b, l, b.N, 64)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkAppend64Baseline(b *testing.B) {
	l := openBench(b, b.TempDir(), 1)
	defer l.Close()
	b.ResetTimer()
	appendConcurrently(b, l, b.N, 64)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	l := openBench(b, dir, 0)
	const n = 50_000
	appendConcurrently(b, l, n, 64)
	pub := l.PublicKey()
	l.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := ledger.Verify(context.Background(), filepath.Join(dir, "ledger.db"), pub); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkProveInclusion makes and checks one inclusion proof of a random
// entry in a ledger of a million entries, what `medfed bench ledger`
// reports as ledger_proof_us.
func BenchmarkProveInclusion(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	l := openBench(b, b.TempDir(), 0)
	defer l.Close()
	batch := make([]ledger.Entry, 0, ledger.DefaultMaxBatch)
	for i := range n {
		batch = append(batch, benchEntry(b, i))
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := l.Append(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	cp, err := l.Sign(ctx)
	if err != nil {
		b.Fatal(err)
	}
	leaves := make([][]byte, 20_000)
	indexes := make([]int64, len(leaves))
	for i := range leaves {
		indexes[i] = mrand.Int64N(n)
		e, err := l.Entry(ctx, indexes[i])
		if err != nil {
			b.Fatal(err)
		}
		if leaves[i], err = e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		k := i % len(leaves)
		p, err := l.ProveInclusion(ctx, indexes[k], cp.Size)
		if err != nil {
			b.Fatal(err)
		}
		if err := ledger.VerifyInclusion(cp.Checkpoint, indexes[k], leaves[k], p); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAppendOne is one appender, each append waiting for its own
// commit: a durable append's latency (ns/op), what a query's access entry
// adds to the query's time. BenchmarkSQLiteCommitOne is its floor.
func BenchmarkAppendOne(b *testing.B) {
	l := openBench(b, b.TempDir(), 0)
	defer l.Close()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Append(context.Background(), benchEntry(b, i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSQLiteCommitOne is ledger.WriteFloor one row to a commit: the
// durable SQLite commit of an entry's row, alone, that an append cannot
// do without.
func BenchmarkSQLiteCommitOne(b *testing.B) {
	path := filepath.Join(b.TempDir(), "floor.db")
	b.ResetTimer()
	if _, err := ledger.WriteFloor(context.Background(), path, b.N, 1, 142); err != nil {
		b.Fatal(err)
	}
}
