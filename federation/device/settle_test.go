package device

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

type anyKey struct{}

func (anyKey) Authenticate(_ context.Context, _ ledger.Pseudonym, k ed25519.PublicKey, signed wire.Opened, _ time.Time) error {
	if !signed.Verify(k) {
		return ErrSignature
	}
	return nil
}

// A crash between a batch's nonce and its records leaves the batch
// pending: settled as stored when the ledger holds the device's records
// appended since (the device sending it again is told so), and forgotten
// when it does not (the device's batch is taken).
func TestAPendingBatchIsSettledFromTheLedger(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	seed := sha256.Sum256([]byte("centre"))
	l, err := ledger.Open(ctx, filepath.Join(dir, "ledger.db"), ledger.Options{Origin: "medfed/f/c", Key: ed25519.NewKeyFromSeed(seed[:]), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	add := func(ctx context.Context, p ledger.Pseudonym, recs []ledger.Record, payloads [][]byte) (int64, error) {
		var es []ledger.Entry
		for _, r := range recs {
			r.Payload, r.Commitment = [16]byte{1}, [32]byte{1}
			e, err := ledger.NewRecord(p, r)
			if err != nil {
				return 0, err
			}
			es = append(es, e)
		}
		return l.Append(ctx, es...)
	}
	rowKey := bytes.Repeat([]byte{3}, 32)
	r, err := Open(ctx, Options{Federation: "f", Centre: "c", Path: filepath.Join(dir, File), RowKey: rowKey, Ledger: l, Consent: anyKey{}, AddRecords: add,
		Classes: []string{"observation"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	patient, meter := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	p := ledger.Pseudonym{9}
	reg, err := Registration{Federation: "f", Centre: "c", Subject: p, Device: meter.Public().(ed25519.PublicKey), Type: Scale, Classes: []string{"observation"},
		NotBefore: now.Add(-time.Hour), Expires: now.Add(time.Hour), Nonce: [16]byte{1}, Time: now}.Sign(patient)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	id := ID(meter.Public().(ed25519.PublicKey))
	pend := func(nonce [16]byte) {
		t.Helper()
		exp, size := now.Add(MaxSkew).UnixMilli(), l.Size()
		if _, err := r.store.DB.Exec(`INSERT INTO batches (device, nonce, subject, expires, size, first, mac) VALUES (?, ?, ?, ?, ?, NULL, ?)`,
			id[:], nonce[:], p[:], exp, size, batchMAC(rowKey, id, nonce[:], p, exp, size, sql.NullInt64{})); err != nil {
			t.Fatal(err)
		}
	}
	batch := func(nonce [16]byte) []byte {
		b, err := Batch{Federation: "f", Centre: "c", Subject: p, Nonce: nonce, Time: now, Readings: [][]byte{[]byte("a reading")}}.Sign(meter)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	one := []Reading{{Class: "observation", Occurred: now}}

	// Stored before the crash: the batch sent again is a replay.
	pend([16]byte{1})
	if _, err := add(ctx, p, []ledger.Record{{Occurred: now, DataClass: "observation", Author: ledger.StaffID(id), AuthorKind: ledger.AuthorDevice}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Take(ctx, batch([16]byte{1}), one); err != ErrReplay {
		t.Fatalf("a batch stored before the crash, sent again: %v", err)
	}
	// Not stored: taken when sent again.
	pend([16]byte{2})
	size := l.Size()
	taken, err := r.Take(ctx, batch([16]byte{2}), one)
	if err != nil || taken.First != size {
		t.Fatalf("a batch lost in the crash, sent again: %+v, %v", taken, err)
	}
	if _, err := CheckStore(ctx, filepath.Join(dir, File), rowKey); err != nil {
		t.Fatal(err)
	}
}
