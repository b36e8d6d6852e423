package admin_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/nodetest"
)

// An operator's command through the socket: the API's reads open to the
// centre's administrator are served, the rest are not, and an error comes
// back with its kind, so the command needs to parse nothing to choose its
// exit code.
func TestOperatorThroughTheSocket(t *testing.T) {
	cfg := nodetest.Config(t, t.TempDir(), "centre-a")
	nodetest.Found(t, cfg)
	nodetest.Start(t, cfg)
	ctx := context.Background()
	sock := admin.Dial(cfg.Data.Dir)

	st, err := sock.LedgerStatus(ctx) // GET /v1/ledger, the API's route
	if err != nil || st.Size == 0 || st.Origin == "" {
		t.Fatalf("ledger status through the socket: %+v, %v", st, err)
	}
	var fs api.FederationStatus
	if err := sock.Get(ctx, "/v1/federation", &fs); err != nil || len(fs.Members) != 1 || fs.Members[0].Name != "centre-a" {
		t.Fatalf("federation status through the socket: %+v, %v", fs, err)
	}

	tests := []struct {
		name string
		call func() error
		kind node.Kind
		want string
	}{
		{"a bad pseudonym", func() error { _, err := sock.Lookup(ctx, "not-hex"); return err }, node.Invalid, "pseudonym: a pseudonym is 64 hex digits"},
		{"a clinician's read", func() error { var v any; return sock.Get(ctx, "/v1/records/1", &v) }, node.NotFound, "no such operation on the admin socket"},
		{"a write of the API's", func() error { var v any; return sock.Get(ctx, "/v1/query", &v) }, node.NotFound, "no such operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if node.KindOf(err) != tt.kind || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v (kind %v), want kind %v saying %q", err, node.KindOf(err), tt.kind, tt.want)
			}
		})
	}
}

// Without a node on the data directory the client says so, as an
// unavailable error: the command tells the operator to start it.
func TestNotRunning(t *testing.T) {
	_, err := admin.Dial(filepath.Join(t.TempDir(), "nowhere")).LedgerStatus(context.Background())
	if !errors.Is(err, admin.ErrNotRunning) || node.KindOf(err) != node.Unavailable {
		t.Fatalf("%v, want ErrNotRunning", err)
	}
}
