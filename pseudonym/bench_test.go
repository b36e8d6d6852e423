package pseudonym

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkPseudonyms derives batches over real loopback hosts: a 2-of-3
// key, asked by a holder (itself and one other) and by a centre holding
// no share (two others).
func BenchmarkPseudonyms(b *testing.B) {
	centres, keys := testFederation(b, 4, 3, 2, 1<<30)
	ids := testIdentifiers(b, 100_000)
	for _, tc := range []struct {
		name string
		c    *testCentre
	}{{"holder", centres[0]}, {"non-holder", centres[3]}} {
		for _, chunk := range []int{1024, 2048} {
			b.Run(fmt.Sprintf("%s/chunk%d", tc.name, chunk), func(b *testing.B) {
				names := map[peer.ID]string{}
				for _, o := range centres {
					names[o.host.ID()] = o.name
				}
				cl, err := NewClient(tc.c.host, keys, tc.c.share, ClientOptions{
					Member: func(id peer.ID) (string, bool) { n, ok := names[id]; return n, ok },
					Chunk:  chunk, Timeout: time.Minute,
				})
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := cl.Pseudonyms(context.Background(), ids); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(ids)*b.N)/b.Elapsed().Seconds(), "pseudonyms/s")
			})
		}
	}
}
