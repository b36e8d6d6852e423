package directory_test

import (
	"os"
	"testing"

	"github.com/medfed/medfed/node/nodetest"
)

// TestMain runs the directory's tests, federations of up to twenty real
// hosts, in their turn with the other heavy suites (see nodetest.TakeTurn).
func TestMain(m *testing.M) { os.Exit(nodetest.RunInTurn(m)) }
