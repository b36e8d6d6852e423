package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/medfed/medfed/node/nodetest"
)

// TestMain runs the command's tests, whose demo and bench tests run
// federations of real nodes in this process, in their turn with the other
// heavy suites (see nodetest.TakeTurn).
func TestMain(m *testing.M) {
	release, err := nodetest.TakeTurn()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}
