package wire

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The answer statuses every medfed protocol uses.
const (
	StatusOK      byte = 0 // the payload is the answer
	StatusRefused byte = 1 // the payload is the reason, in words
)

// Server answers a protocol's requests: on streams of one request each
// (Handle), or kept open for one after another (HandleKept). A request is
// read only from a peer Admit lets in, served within Work, and answered
// with StatusOK and the answer, or a refusal: a status and a reason.
type Server struct {
	Name      string        // the protocol, for logs
	Limit     int           // the largest request payload read
	Timeout   time.Duration // to read, serve and answer one request
	Work      time.Duration // how long Serve may take
	MaxReason int           // the longest reason sent
	// Idle is how long a kept stream waits for its next request; when
	// zero, 4 times as long as a Pool keeps a stream free, so that a
	// requester drops a stream well before the server does.
	Idle time.Duration
	// Admit refuses a peer before its request is read; on a kept stream,
	// before the first and after each next one is read (a refusal then
	// leaves the stream at the request after). nil admits all.
	Admit func(from peer.ID) error
	Serve func(ctx context.Context, from peer.ID, op byte, req []byte) ([]byte, error)
	// Refuse is the status and the reason a peer is told of err;
	// StatusRefused and err's text when nil.
	Refuse func(err error) (status byte, reason string)
	Log    *slog.Logger

	mu     sync.Mutex
	kept   map[network.Stream]bool // the kept streams being served
	closed bool
}

// Handle serves one stream; it is a network.StreamHandler.
func (s *Server) Handle(st network.Stream) {
	defer st.Close()
	if err := st.SetDeadline(time.Now().Add(s.Timeout)); err != nil {
		s.Log.Debug(s.Name+" stream without a deadline", "err", err)
		st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	answer, read, err := s.serve(st, from)
	if !read {
		st.Reset() // not a frame: no answer
		return
	}
	if err != nil {
		s.refuse(st, from, err)
		return
	}
	if err := Write(st, StatusOK, answer); err != nil {
		s.Log.Info(s.Name+" answer not delivered", "to", from, "err", err)
	}
}

// HandleKept serves a stream kept open by a Pool: one request after
// another, each answered before the next is read, each served as Handle
// serves one, within Timeout from its first byte. The stream ends when
// the requester closes its side between two requests, and is reset on
// anything else: no request for Idle, a frame that is not one, a
// deadline passed, an answer not delivered, the server closed.
func (s *Server) HandleKept(st network.Stream) {
	if !s.keep(st) {
		st.Reset()
		return
	}
	defer s.drop(st)
	from := st.Conn().RemotePeer()
	if s.Admit != nil {
		if err := s.Admit(from); err != nil {
			s.refuse(st, from, err)
			st.Close()
			return
		}
	}
	idle := s.Idle
	if idle <= 0 {
		idle = 4 * keptIdle
	}
	r := bufio.NewReader(st)
	// The first request was admitted with the stream; each next is
	// admitted once it is read.
	for admitted := true; ; admitted = false {
		if err := st.SetDeadline(time.Now().Add(idle)); err != nil {
			s.Log.Debug(s.Name+" stream without a deadline", "err", err)
			st.Reset()
			return
		}
		if _, err := r.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				st.Close() // closed between two requests: done
			} else {
				st.Reset()
			}
			return
		}
		if err := st.SetDeadline(time.Now().Add(s.Timeout)); err != nil {
			st.Reset()
			return
		}
		op, req, err := Read(r, s.Limit)
		if err != nil {
			s.Log.Debug(s.Name+" request unreadable", "from", from, "err", err)
			st.Reset()
			return
		}
		var answer []byte
		if !admitted && s.Admit != nil {
			err = s.Admit(from)
		}
		if err == nil {
			answer, err = s.work(from, op, req)
		}
		status := StatusOK
		if err != nil {
			status, answer = s.refusal(from, err)
		}
		if err := Write(st, status, answer); err != nil {
			s.Log.Info(s.Name+" answer not delivered", "to", from, "err", err)
			st.Reset()
			return
		}
	}
}

// keep counts st among the kept streams served; false when the server is
// closed.
func (s *Server) keep(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.kept == nil {
		s.kept = map[network.Stream]bool{}
	}
	s.kept[st] = true
	return true
}

func (s *Server) drop(st network.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kept, st)
}

// Close resets the kept streams being served and refuses new ones: the
// host's RemoveStreamHandler stops the streams to come, not those a
// handler is serving, and a kept stream may be served for as long as the
// connection lasts.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for st := range s.kept {
		st.Reset()
	}
	clear(s.kept)
}

// refuse tells from why its request on st is refused.
func (s *Server) refuse(st network.Stream, from peer.ID, err error) {
	status, reason := s.refusal(from, err)
	if err := Write(st, status, reason); err != nil {
		s.Log.Debug(s.Name+" refusal not delivered", "to", from, "err", err)
	}
}

// refusal is the status and the reason from is told of err.
func (s *Server) refusal(from peer.ID, err error) (byte, []byte) {
	s.Log.Info(s.Name+" request refused", "from", from, "err", err)
	status, reason := StatusRefused, err.Error()
	if s.Refuse != nil {
		status, reason = s.Refuse(err)
	}
	return status, []byte(reason[:min(len(reason), s.MaxReason)])
}

// serve admits, reads and serves one request; read is false when the
// request could not be read.
func (s *Server) serve(st network.Stream, from peer.ID) (answer []byte, read bool, err error) {
	if s.Admit != nil {
		if err := s.Admit(from); err != nil {
			return nil, true, err
		}
	}
	op, req, err := Read(st, s.Limit)
	if err != nil {
		s.Log.Debug(s.Name+" request unreadable", "from", from, "err", err)
		return nil, false, nil
	}
	answer, err = s.work(from, op, req)
	return answer, true, err
}

// work serves one request within Work.
func (s *Server) work(from peer.ID, op byte, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.Work)
	defer cancel()
	return s.Serve(ctx, from, op, req)
}
