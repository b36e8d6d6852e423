package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/medfed/medfed/node/nodetest"
)

// TestMain runs the command's tests, whose demo and bench tests run
// federations of real nodes in this process, in their turn with the other
// heavy suites (see nodetest.TakeTurn).
func TestMain(m *testing.M) {
	code := nodetest.RunInTurn(m)
	if demoDir != "" {
		os.RemoveAll(filepath.Dir(demoDir))
	}
	os.Exit(code)
}
