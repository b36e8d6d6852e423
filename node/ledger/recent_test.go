package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

func TestScanRecent(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 5, 2, 9, 0, 0, 0, time.UTC)
	now := start
	l, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{
		Origin: testOrigin, Key: testKey("centre-a"), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	device, err := ledger.NewDevice(pseudonym(1), ledger.Device{
		Device: ledger.DeviceID{0xde, 0x71}, Classes: []string{"observation"},
		NotBefore: start, Expires: start.AddDate(1, 0, 0), Statement: [32]byte{1},
	})
	if err != nil {
		t.Fatal(err)
	}
	appendOne := func(e ledger.Entry) int64 {
		t.Helper()
		i, err := l.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	// Older device entries, then more than two chunks of records and
	// devices since: the scan crosses chunks and stops at the old ones.
	for range 5 {
		appendOne(device)
	}
	now = start.Add(time.Minute)
	var want []int64
	for i := range 600 {
		if i%3 == 0 {
			want = append(want, appendOne(device))
		} else {
			appendOne(record(t, pseudonym(i%7), i))
		}
	}

	var got []int64
	err = ledger.ScanRecent(ctx, l, now, ledger.KindDevice, func(e ledger.Entry) error {
		if e.Kind != ledger.KindDevice || e.Time.Before(now) {
			t.Errorf("visited entry %d: %v at %v", e.Index, e.Kind, e.Time)
		}
		got = append(got, e.Index)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("visited %d entries %v…, want the %d device entries since, oldest first", len(got), got[:min(len(got), 5)], len(want))
	}

	stop := errors.New("stop")
	visits := 0
	err = ledger.ScanRecent(ctx, l, start, ledger.KindDevice, func(ledger.Entry) error { visits++; return stop })
	if !errors.Is(err, stop) || visits != 1 {
		t.Errorf("a visit's error: got %v after %d visits, want it at once", err, visits)
	}
}
