package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// measureLedger measures the ledger on real SQLite files:
//   - ledger_append_per_s: durable appends per second, 64 concurrent
//     appenders, group commit;
//   - ledger_append_baseline_per_s: the same, one entry per transaction;
//   - ledger_append_floor_per_s: the rows alone through SQLite, 64 to a
//     commit (ledger.WriteFloor): the durable write appends cannot avoid;
//   - ledger_verify_per_s: entries per second through Verify;
//   - ledger_proof_us: producing and checking one inclusion proof at the
//     largest size.
func measureLedger(ctx context.Context, env env) (map[string]float64, error) {
	const appenders = 64
	size := env.pick(1_000_000, 50_000)
	baselineSize := env.pick(20_000, 5_000)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	open := func(name string, maxBatch int) (*ledger.Ledger, string, error) {
		path := filepath.Join(env.dir, name, "ledger.db")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, "", err
		}
		l, err := ledger.Open(ctx, path, ledger.Options{Origin: ledger.Origin("bench", name), Key: key, MaxBatch: maxBatch})
		return l, path, err
	}
	m := map[string]float64{}

	base, _, err := open("baseline", 1)
	if err != nil {
		return nil, err
	}
	rate, err := appendRate(ctx, base, baselineSize, appenders)
	if err = errors.Join(err, base.Close()); err != nil {
		return nil, err
	}
	m["ledger_append_baseline_per_s"] = rate
	env.logf("ledger: %d appends, one per transaction: %.0f/s", baselineSize, rate)

	l, path, err := open("grouped", 0)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	rate, err = appendRate(ctx, l, size, appenders)
	if err != nil {
		return nil, err
	}
	m["ledger_append_per_s"] = rate
	env.logf("ledger: %d appends, group commit: %.0f/s (%.1fx the baseline)", size, rate, rate/m["ledger_append_baseline_per_s"])

	// The floor: the rows alone, as many to a commit as there are
	// appenders, through SQLite with the ledger's settings.
	sample, err := harness.SyntheticRecord()
	if err != nil {
		return nil, err
	}
	enc, err := sample.Encode()
	if err != nil {
		return nil, err
	}
	floorSize := env.pick(200_000, 20_000)
	if m["ledger_append_floor_per_s"], err = ledger.WriteFloor(ctx, filepath.Join(env.dir, "floor.db"), floorSize, appenders, len(enc)); err != nil {
		return nil, err
	}
	env.logf("ledger: floor, %d rows of %d bytes through SQLite alone, %d to a commit: %.0f/s", floorSize, len(enc), appenders, m["ledger_append_floor_per_s"])

	cp, err := l.Sign(ctx)
	if err != nil {
		return nil, err
	}
	m["ledger_proof_us"], err = proofTime(ctx, l, cp.Checkpoint, env.pick(20_000, 5_000))
	if err != nil {
		return nil, err
	}
	env.logf("ledger: inclusion proof at %d entries: %.1f µs", cp.Size, m["ledger_proof_us"])
	if err := l.Close(); err != nil {
		return nil, err
	}

	start := time.Now()
	rep, err := ledger.Verify(ctx, path, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	m["ledger_verify_per_s"] = float64(rep.Size) / time.Since(start).Seconds()
	env.logf("ledger: verified %d entries: %.0f/s", rep.Size, m["ledger_verify_per_s"])
	return m, nil
}

// appendRate appends n synthetic records from the given number of
// concurrent appenders and returns durable appends per second.
func appendRate(ctx context.Context, l *ledger.Ledger, n, appenders int) (float64, error) {
	start := time.Now()
	if err := inParallel(appenders, n, func(_, _ int) error {
		e, err := harness.SyntheticRecord()
		if err != nil {
			return err
		}
		_, err = l.Append(ctx, e)
		return err
	}); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// proofTime returns the mean time to produce and check an inclusion proof
// of a random entry in checkpoint cp, in microseconds. The entries are read
// beforehand: the time is the proof's alone.
func proofTime(ctx context.Context, l *ledger.Ledger, cp ledger.Checkpoint, samples int) (float64, error) {
	type leaf struct {
		n   int64
		enc []byte
	}
	leaves := make([]leaf, samples)
	for i := range leaves {
		r, err := rand.Int(rand.Reader, big.NewInt(cp.Size))
		if err != nil {
			return 0, err
		}
		e, err := l.Entry(ctx, r.Int64())
		if err != nil {
			return 0, err
		}
		enc, err := e.Encode()
		if err != nil {
			return 0, err
		}
		leaves[i] = leaf{r.Int64(), enc}
	}
	start := time.Now()
	for _, lf := range leaves {
		p, err := l.ProveInclusion(ctx, lf.n, cp.Size)
		if err != nil {
			return 0, err
		}
		if err := ledger.VerifyInclusion(cp, lf.n, lf.enc, p); err != nil {
			return 0, fmt.Errorf("entry %d: %w", lf.n, err)
		}
	}
	return float64(time.Since(start).Microseconds()) / float64(samples), nil
}
