package wire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/nodetest"
	"github.com/medfed/medfed/node/wire"
)

const (
	keptProto = "/medfed-test/echo/2"
	oneProto  = "/medfed-test/echo/1"
)

// pair returns two libp2p hosts on 127.0.0.1, the first connected to the
// second.
func pair(tb testing.TB) (from, to host.Host) {
	tb.Helper()
	var hs [2]host.Host
	for i := range hs {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { h.Close() })
		hs[i] = h
	}
	if err := hs[0].Connect(context.Background(), peer.AddrInfo{ID: hs[1].ID(), Addrs: hs[1].Addrs()}); err != nil {
		tb.Fatal(err)
	}
	return hs[0], hs[1]
}

// echo is a server answering a request with its payload, refusing the
// payload "refuse", and counting the streams it was handed and those
// still being served.
type echo struct {
	wire.Server
	streams, live atomic.Int64
	shut          atomic.Bool // Admit refuses everyone
}

// newEcho serves on h; a kept stream waits idle for its next request.
func newEcho(h host.Host, idle time.Duration, serveKept bool) *echo {
	e := &echo{}
	e.Server = wire.Server{
		Name: "echo", Limit: 1 << 20, Timeout: 10 * time.Second, Work: 10 * time.Second, Idle: idle, MaxReason: 64,
		Log: slog.New(slog.DiscardHandler),
		Admit: func(peer.ID) error {
			if e.shut.Load() {
				return errors.New("shut")
			}
			return nil
		},
		Serve: func(_ context.Context, _ peer.ID, op byte, req []byte) ([]byte, error) {
			if string(req) == "refuse" {
				return nil, errors.New("refused as asked")
			}
			return append([]byte{op}, req...), nil
		},
	}
	counted := func(handle network.StreamHandler) network.StreamHandler {
		return func(s network.Stream) {
			e.streams.Add(1)
			e.live.Add(1)
			defer e.live.Add(-1)
			handle(s)
		}
	}
	if serveKept {
		h.SetStreamHandler(keptProto, counted(e.HandleKept))
	}
	h.SetStreamHandler(oneProto, counted(e.Handle))
	return e
}

// ask asks to for s through pool and checks the echo.
func ask(t *testing.T, pool *wire.Pool, to peer.ID, s string) {
	t.Helper()
	got, err := pool.Ask(context.Background(), to, 3, []byte(s), 1<<10, 64)
	if err != nil || string(got) != "\x03"+s {
		t.Fatalf("asking %q: %q, %v", s, got, err)
	}
}

// Requests one after another go on one stream, and a refusal leaves it
// at the next request; requests in parallel each get their own answer.
func TestPoolKeepsStreamsOpen(t *testing.T) {
	from, to := pair(t)
	srv := newEcho(to, time.Minute, true)
	pool := wire.NewPool(from, keptProto, oneProto)
	defer pool.Close()
	ctx := context.Background()
	for i := range 20 {
		req := fmt.Appendf(nil, "request %d", i)
		if i == 7 {
			req = []byte("refuse")
		}
		got, err := pool.Ask(ctx, to.ID(), 9, req, 1<<10, 64)
		if i == 7 {
			var refused *wire.Refused
			if !errors.As(err, &refused) || refused.Reason != "refused as asked" {
				t.Fatalf("a refused request: %v, want its refusal", err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, append([]byte{9}, req...)) {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if n := srv.streams.Load(); n != 1 {
		t.Fatalf("20 requests one after another opened %d streams, want 1", n)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				req := fmt.Appendf(nil, "%d/%d", g, i)
				got, err := pool.Ask(ctx, to.ID(), 1, req, 1<<10, 64)
				if err == nil && !bytes.Equal(got, append([]byte{1}, req...)) {
					err = fmt.Errorf("%s answered %q", req, got)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := srv.streams.Load(); n > 1+8 {
		t.Fatalf("200 requests, 8 at a time, opened %d streams, want at most 9", n)
	}
}

// A kept stream the server gave up on (no request for its Idle) is
// replaced without the requester seeing it; a peer that speaks only the
// one-request protocol is asked on a stream per request.
func TestPoolReplacesStreamsAndFallsBack(t *testing.T) {
	from, to := pair(t)
	srv := newEcho(to, 300*time.Millisecond, true)
	pool := wire.NewPool(from, keptProto, oneProto)
	defer pool.Close()
	ask(t, pool, to.ID(), "one")
	ask(t, pool, to.ID(), "two")
	if n := srv.streams.Load(); n != 1 {
		t.Fatalf("2 requests one after the other opened %d streams, want 1", n)
	}
	nodetest.Eventually(t, 5*time.Second, "the server to drop the idle stream", func() bool { return srv.live.Load() == 0 })
	ask(t, pool, to.ID(), "three") // on the dropped stream first, then on a new one
	ask(t, pool, to.ID(), "four")
	if n := srv.streams.Load(); n != 2 {
		t.Fatalf("2 more requests after the server dropped the stream opened %d streams in all, want 2", n)
	}

	old, other := pair(t)
	srv = newEcho(other, time.Minute, false)
	pool = wire.NewPool(old, keptProto, oneProto)
	defer pool.Close()
	for i := range 3 {
		ask(t, pool, other.ID(), fmt.Sprint(i))
	}
	if n := srv.streams.Load(); n != 3 {
		t.Fatalf("3 requests to a one-request peer opened %d streams, want 3", n)
	}
}

// A peer refused between two requests is told so and its stream stays at
// the next one; a pool closed closes its free streams, and a server
// closed resets those it serves and takes no more.
func TestPoolAndServerClose(t *testing.T) {
	from, to := pair(t)
	srv := newEcho(to, time.Minute, true)
	pool := wire.NewPool(from, keptProto, oneProto)
	ask(t, pool, to.ID(), "before")
	srv.shut.Store(true)
	var refused *wire.Refused
	if _, err := pool.Ask(context.Background(), to.ID(), 3, []byte("shut"), 1<<10, 64); !errors.As(err, &refused) || refused.Reason != "shut" {
		t.Fatalf("a request refused by Admit: %v, want the refusal", err)
	}
	srv.shut.Store(false)
	ask(t, pool, to.ID(), "after")
	if n := srv.streams.Load(); n != 1 {
		t.Fatalf("3 requests, one refused, opened %d streams, want 1", n)
	}
	pool.Close()
	nodetest.Eventually(t, 5*time.Second, "the stream freed by the closed pool to end at the server", func() bool { return srv.live.Load() == 0 })

	pool = wire.NewPool(from, keptProto, oneProto)
	defer pool.Close()
	ask(t, pool, to.ID(), "again")
	srv.Close()
	nodetest.Eventually(t, 5*time.Second, "the closed server to end its kept stream", func() bool { return srv.live.Load() == 0 })
	if _, err := pool.Ask(context.Background(), to.ID(), 3, []byte("closed"), 1<<10, 64); err == nil {
		t.Fatal("a closed server answered on a kept stream")
	}
}

// A request whose context ends on a kept stream is abandoned, neither
// sent again nor its stream used again; an answer over the limit is an error and
// leaves the next request unharmed.
func TestPoolAbandonsStreamsMidRequest(t *testing.T) {
	from, to := pair(t)
	release := make(chan struct{})
	srv := newEcho(to, time.Minute, true)
	serve := srv.Serve
	srv.Serve = func(ctx context.Context, p peer.ID, op byte, req []byte) ([]byte, error) {
		if string(req) == "slow" {
			<-release
		}
		return serve(ctx, p, op, req)
	}
	pool := wire.NewPool(from, keptProto, oneProto)
	defer pool.Close()
	ask(t, pool, to.ID(), "warm") // the slow request goes on this stream, kept
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := pool.Ask(ctx, to.ID(), 1, []byte("slow"), 1<<10, 64)
	cancel()
	close(release)
	if err == nil {
		t.Fatal("a request past its deadline was answered")
	}
	if _, err := pool.Ask(context.Background(), to.ID(), 1, bytes.Repeat([]byte{'x'}, 2000), 1<<10, 64); err == nil {
		t.Fatal("an answer of 2001 bytes over a limit of 1024 was accepted")
	}
	got, err := pool.Ask(context.Background(), to.ID(), 1, []byte("after"), 1<<10, 64)
	if err != nil || string(got) != "\x01after" {
		t.Fatalf("a request after two failed: %q, %v", got, err)
	}
	if n := srv.streams.Load(); n != 3 {
		t.Fatalf("a request on a kept stream, two that failed and one more opened %d streams, want 3 (none reused after a failure, none sent again past its deadline)", n)
	}
}

// A kept stream that carries something other than a frame is reset, and
// the server answers nothing on it.
func TestHandleKeptResetsOnGarbage(t *testing.T) {
	from, to := pair(t)
	newEcho(to, time.Minute, true)
	s, err := from.NewStream(context.Background(), to.ID(), keptProto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := wire.Write(s, 1, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := wire.Read(s, 1<<10); err != nil || string(got) != "\x01first" {
		t.Fatalf("the first request: %q, %v", got, err)
	}
	// A header claiming more than the server's limit.
	if _, err := s.Write([]byte{1, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, got, err := wire.Read(s, 1<<10); !errors.Is(err, node.ErrUnavailable) || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("an oversized frame: %q, %v; want the stream reset", got, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the stream was reset after %v: left to a deadline", took)
	}
}

// BenchmarkExchange and BenchmarkPoolExchange compare a small exchange
// (400 bytes each way) on a stream of its own with one on a kept stream,
// 8 per core at a time, over 127.0.0.1 TCP.
func BenchmarkExchange(b *testing.B) {
	from, to := pair(b)
	newEcho(to, time.Minute, true)
	benchExchange(b, func(ctx context.Context, req []byte) error {
		_, err := wire.Ask(ctx, from, oneProto, to.ID(), 1, req, 1<<20, 64)
		return err
	})
}

func BenchmarkPoolExchange(b *testing.B) {
	from, to := pair(b)
	newEcho(to, time.Minute, true)
	pool := wire.NewPool(from, keptProto, oneProto)
	defer pool.Close()
	benchExchange(b, func(ctx context.Context, req []byte) error {
		_, err := pool.Ask(ctx, to.ID(), 1, req, 1<<20, 64)
		return err
	})
}

func benchExchange(b *testing.B, ask func(context.Context, []byte) error) {
	req := bytes.Repeat([]byte{'q'}, 400)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := ask(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
