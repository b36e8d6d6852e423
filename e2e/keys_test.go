package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	node "github.com/medfed/medfed/node/centre"
)

// Three founders found a federation with no pseudonym key and generate it
// together on their running nodes (federation keygen), as operators do:
// nobody ever holds it. A fourth centre joins, and the key moves to a
// committee of it and two founders (federation reshare, run on all four:
// the three holders deal, the newcomer receives). A patient's pseudonym
// is the same at every centre before and after; centre-d holds a share,
// centre-a's is deleted, and with centre-b down centre-c and centre-d are
// the two holders every centre's pseudonyms need.
func TestKeyGeneratedAndResharedByRealNodes(t *testing.T) {
	root := t.TempDir()
	all := foundThree(t, root) // keygen included
	a, b, c := all[0], all[1], all[2]
	if v, _, _ := a.status(); v != 2 {
		t.Fatalf("after keygen, charter version %d, want 2 (version 1 lists no key)", v)
	}
	p := pseudonymsOf(a, 1, "--nhs", nhsNumber)[0]
	for _, x := range []*centre{b, c} {
		if got := pseudonymsOf(x, 1, "--nhs", nhsNumber)[0]; got != p {
			t.Fatalf("%s derives %s, centre-a %s", x.name, got, p)
		}
	}

	// centre-d joins.
	d := newCentre(t, root, "centre-d")
	file := func(name string) string { return filepath.Join(root, name) }
	d.run("federation", "request", "--out", file("centre-d-request.txt"))
	a.run("federation", "approve", file("centre-d-request.txt"))
	b.run("federation", "approve", file("centre-d-request.txt"))
	_, _, aID := a.status()
	waitFor(t, 10*time.Second, "centre-d can fetch the charter", func() bool {
		code, _, _ := d.try("federation", "join", "--peer", "/ip4/127.0.0.1/tcp/4101/p2p/"+aID)
		return code == 0
	})
	d.start()
	all = append(all, d)
	waitFor(t, 15*time.Second, "centre-d reaches every other centre", connectedTo(d, "centre-a", "centre-b", "centre-c"))
	if got := pseudonymsOf(d, 1, "--nhs", nhsNumber)[0]; got != p {
		t.Fatalf("centre-d, holding no share, derives %s, the others %s", got, p)
	}
	shareB, err := os.ReadFile(filepath.Join(b.dir, node.ShareFile))
	if err != nil {
		t.Fatal(err)
	}

	// The key moves to centre-b, centre-c and centre-d, 2 of 3.
	outs := keyCeremony(t, "reshare", 2, []string{"centre-b", "centre-c", "centre-d"}, all...)
	if !strings.Contains(outs[0], "this centre holds no share") || !strings.Contains(outs[3], "this centre holds share 3") {
		t.Fatalf("centre-a said:\n%s\ncentre-d said:\n%s", outs[0], outs[3])
	}
	waitFor(t, 10*time.Second, "every centre adopts version 4", func() bool {
		for _, x := range all {
			if v, _, _ := x.status(); v != 4 {
				return false
			}
		}
		return true
	})
	waitFor(t, 5*time.Second, "centre-a deletes its share and centre-d keeps one", func() bool {
		_, errA := os.Stat(filepath.Join(a.dir, node.ShareFile))
		_, errD := os.Stat(filepath.Join(d.dir, node.ShareFile))
		return os.IsNotExist(errA) && errD == nil
	})
	if out := a.run("federation", "status"); !strings.Contains(out, "pseudonym key: held by centre-b, centre-c, centre-d; 2 of them evaluate") {
		t.Fatalf("centre-a's federation status after the resharing:\n%s", out)
	}
	for _, x := range all {
		if got := pseudonymsOf(x, 1, "--nhs", "943 476 5919")[0]; got != p {
			t.Fatalf("after the resharing, %s derives %s, before %s", x.name, got, p)
		}
	}
	if nb, err := os.ReadFile(filepath.Join(b.dir, node.ShareFile)); err != nil || string(nb) == string(shareB) {
		t.Fatalf("centre-b kept its old share through the resharing (%v)", err)
	}

	// centre-b stops: centre-c and centre-d are the two holders needed,
	// and centre-a, no longer a holder, asks them.
	b.stop()
	for _, x := range []*centre{a, c, d} {
		if got := pseudonymsOf(x, 1, "--nhs", nhsNumber)[0]; got != p {
			t.Fatalf("with centre-b down, %s derives %s, before %s", x.name, got, p)
		}
	}
	// With centre-c down too, centre-d is the one holder up: no pseudonym,
	// though centre-a, up, held a share of the old key.
	c.stop()
	if code, out, errOut := a.try("patient", "pseudonym", "--nhs", nhsNumber); code != 1 || out != "" || !strings.Contains(errOut, "pseudonyms unavailable") {
		t.Fatalf("centre-a with one holder up: exited %d, printed %q: %s", code, out, errOut)
	}
}
