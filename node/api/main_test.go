package api_test

import (
	"os"
	"testing"

	"github.com/medfed/medfed/node/nodetest"
)

// TestMain runs the API's tests, federations of real centres in process
// and a flood of requests, in their turn with the other heavy suites (see
// nodetest.TakeTurn): beside the directory's, both starve on two cores.
func TestMain(m *testing.M) { os.Exit(nodetest.RunInTurn(m)) }
