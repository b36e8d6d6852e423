package demo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medfed/medfed/cmd/internal/demo"
	"github.com/medfed/medfed/node/nodetest"
)

// TestMain runs the demo, a federation of real nodes in this process, in
// its turn with the other heavy suites (see nodetest.TakeTurn).
func TestMain(m *testing.M) { os.Exit(nodetest.RunInTurn(m)) }

func TestDemoNarratesTheLedgerChapterAndLeavesNothingBehind(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out strings.Builder
	if err := demo.Run(context.Background(), &out, ""); err != nil {
		t.Fatalf("demo: %v", err)
	}
	for _, want := range []string{
		"Chapter 1: a centre's own tamper-evident ledger",
		"inclusion proof of",
		"Verified.",
		"payload erased",
		"consistency proof",
		"TAMPERED, entry 3:",
		"the original:  ok, 7 entries, 2 signed checkpoints",
		"Chapter 2: founding a federation, and Centre 3 joining it",
		"version 2 has 1 of 2 approvals",
		"centre-a still refuses its connection",
		"installs version 2 (3 members) and connects to both founders",
		"is dropped as soon as centre-x proves who it is. Refused.",
		"Chapter 3: witnessed ledgers: nobody rewrites history alone",
		"final, cosigned by centre-b and centre-c",
		"centre-b refuses: two roots for size",
		"centre-c refuses: two roots for size",
		"Chapter 4: pseudonyms: the same patient everywhere, reversible by nobody alone",
		"centre-c, holding no share, asks centre-a and centre-b, and gets the same one",
		"check digit does not match",
		"centre-a alone now cannot compute any pseudonym",
		"Chapter 5: the Patient Directory",
		"A patient seen only at centre-c is found at centre-c alone",
		"Chapter 6: consent",
		"a researcher at centre-a, for research:  deny: provision 1 of the contract applies",
		"a researcher at centre-c, for research:  permit: provision 1.1 of the contract applies",
		"presented again: deny: the token's uses are spent",
		"answers: deny: the patient revoked their consent. centre-b was not reached.",
		"revocation, puts it on its ledger, and answers: deny: the patient revoked their consent.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("demo left %d files in its temporary directory", len(left))
	}
}

// A directory to keep the centres in must be empty or absent: the demo
// refuses one in use before it starts, with ErrKeep, and writes nothing.
func TestDemoKeepRefusesADirectoryInUse(t *testing.T) {
	keep := t.TempDir()
	if err := os.WriteFile(filepath.Join(keep, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err := demo.Run(context.Background(), &out, keep)
	if !errors.Is(err, demo.ErrKeep) || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("demo --keep into a used directory: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("the demo narrated before refusing its directory: %q", out.String())
	}
}
