package wire

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The answer statuses every medfed protocol uses.
const (
	StatusOK      byte = 0 // the payload is the answer
	StatusRefused byte = 1 // the payload is the reason, in words
)

// Server answers the one-request streams of a protocol: a request is read
// only from a peer Admit lets in, served within Work, and answered with
// StatusOK and the answer, or a refusal: a status and a reason.
type Server struct {
	Name      string        // the protocol, for logs
	Limit     int           // the largest request payload read
	Timeout   time.Duration // the stream's deadline
	Work      time.Duration // how long Serve may take
	MaxReason int           // the longest reason sent
	// Admit refuses a peer before its request is read; nil admits all.
	Admit func(from peer.ID) error
	Serve func(ctx context.Context, from peer.ID, op byte, req []byte) ([]byte, error)
	// Refuse is the status and the reason a peer is told of err;
	// StatusRefused and err's text when nil.
	Refuse func(err error) (status byte, reason string)
	Log    *slog.Logger
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
		s.Log.Info(s.Name+" request refused", "from", from, "err", err)
		status, reason := StatusRefused, err.Error()
		if s.Refuse != nil {
			status, reason = s.Refuse(err)
		}
		if err := Write(st, status, []byte(reason[:min(len(reason), s.MaxReason)])); err != nil {
			s.Log.Debug(s.Name+" refusal not delivered", "to", from, "err", err)
		}
		return
	}
	if err := Write(st, StatusOK, answer); err != nil {
		s.Log.Info(s.Name+" answer not delivered", "to", from, "err", err)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), s.Work)
	defer cancel()
	answer, err = s.Serve(ctx, from, op, req)
	return answer, true, err
}
