package records_test

import (
	"context"
	"testing"

	"github.com/medfed/medfed/node/records"
)

func BenchmarkPut(b *testing.B) {
	s := openStore(b, b.TempDir(), records.Options{})
	ctx := context.Background()
	payload := randomBytes(b, 1<<10)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, _, _, err := s.Put(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s := openStore(b, b.TempDir(), records.Options{})
	ctx := context.Background()
	payload := randomBytes(b, 1<<10)
	ids := make([]records.ID, 256)
	for i := range ids {
		ids[i], _, _ = put(b, s, payload)
	}
	b.SetBytes(int64(len(payload)))
	i := 0
	for b.Loop() {
		if _, _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
