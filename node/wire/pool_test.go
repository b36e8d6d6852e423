package wire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

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
// payload "refuse", and counting the streams it was handed.
type echo struct {
	wire.Server
	streams atomic.Int64
}

func newEcho(h host.Host, timeout time.Duration, serveKept bool) *echo {
	e := &echo{}
	e.Server = wire.Server{
		Name: "echo", Limit: 1 << 20, Timeout: timeout, Work: timeout, MaxReason: 64, Log: slog.New(slog.DiscardHandler),
		Serve: func(_ context.Context, _ peer.ID, op byte, req []byte) ([]byte, error) {
			if string(req) == "refuse" {
				return nil, errors.New("refused as asked")
			}
			return append([]byte{op}, req...), nil
		},
	}
	counted := func(handle network.StreamHandler) network.StreamHandler {
		return func(s network.Stream) { e.streams.Add(1); handle(s) }
	}
	if serveKept {
		h.SetStreamHandler(keptProto, counted(e.HandleKept))
	}
	h.SetStreamHandler(oneProto, counted(e.Handle))
	return e
}

// Requests one after another go on one stream, and a refusal leaves it
// at the next request; requests in parallel each get their own answer.
func TestPoolKeepsStreamsOpen(t *testing.T) {
	from, to := pair(t)
	srv := newEcho(to, 10*time.Second, true)
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

// A kept stream the server gave up on (its wait for the next request
// passed) is replaced without the requester seeing it; a peer that speaks
// only the one-request protocol is asked on a stream per request.
func TestPoolReplacesStreamsAndFallsBack(t *testing.T) {
	from, to := pair(t)
	srv := newEcho(to, 200*time.Millisecond, true)
	pool := wire.NewPool(from, keptProto, oneProto)
	defer pool.Close()
	ctx := context.Background()
	for i := range 3 {
		if _, err := pool.Ask(ctx, to.ID(), 1, []byte("hello"), 1<<10, 64); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(400 * time.Millisecond) // the server's wait passes: it resets the stream
	}
	if n := srv.streams.Load(); n != 3 {
		t.Fatalf("3 requests, each after the server reset the last stream, opened %d streams, want 3", n)
	}

	old, other := pair(t)
	srv = newEcho(other, 10*time.Second, false)
	pool = wire.NewPool(old, keptProto, oneProto)
	defer pool.Close()
	for i := range 3 {
		got, err := pool.Ask(ctx, other.ID(), 2, []byte("hi"), 1<<10, 64)
		if err != nil || string(got) != "\x02hi" {
			t.Fatalf("request %d to a one-request peer: %q, %v", i, got, err)
		}
	}
	if n := srv.streams.Load(); n != 3 {
		t.Fatalf("3 requests to a one-request peer opened %d streams, want 3", n)
	}
}

// A request whose context ends is abandoned, and its stream is not used
// again; an answer over the limit is an error and
// leaves the next request unharmed.
func TestPoolAbandonsStreamsMidRequest(t *testing.T) {
	from, to := pair(t)
	release := make(chan struct{})
	srv := newEcho(to, 10*time.Second, true)
	serve := srv.Serve
	srv.Serve = func(ctx context.Context, p peer.ID, op byte, req []byte) ([]byte, error) {
		if string(req) == "slow" {
			<-release
		}
		return serve(ctx, p, op, req)
	}
	pool := wire.NewPool(from, keptProto, oneProto)
	defer pool.Close()
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
		t.Fatalf("two failed requests and one more opened %d streams, want 3 (none reused after a failure)", n)
	}
}

// A kept stream that carries something other than a frame is reset, and
// the server answers nothing on it.
func TestHandleKeptResetsOnGarbage(t *testing.T) {
	from, to := pair(t)
	newEcho(to, 10*time.Second, true)
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
	if _, got, err := wire.Read(s, 1<<10); err == nil {
		t.Fatalf("an oversized frame was answered: %q", got)
	}
}

// BenchmarkExchange and BenchmarkPoolExchange compare a small exchange
// (400 bytes each way) on a stream of its own with one on a kept stream,
// 8 per core at a time, over 127.0.0.1 TCP.
func BenchmarkExchange(b *testing.B) {
	from, to := pair(b)
	newEcho(to, 10*time.Second, true)
	benchExchange(b, func(ctx context.Context, req []byte) error {
		_, err := wire.Ask(ctx, from, oneProto, to.ID(), 1, req, 1<<20, 64)
		return err
	})
}

func BenchmarkPoolExchange(b *testing.B) {
	from, to := pair(b)
	newEcho(to, 10*time.Second, true)
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
