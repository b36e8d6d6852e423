package directory_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/medfed/medfed/node/nodetest"
)

// TestMain runs the directory's tests, federations of up to twenty real
// hosts, in their turn with the other heavy suites (see nodetest.TakeTurn).
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
