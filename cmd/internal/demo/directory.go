package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
	"github.com/medfed/medfed/pseudonym"
)

// demoJoiningPatients is how many patients centre-c brings into the
// directory.
const demoJoiningPatients = 2000

func (d *demo) directoryChapter(ctx context.Context) (err error) {
	d.chapter(5, "the Patient Directory: every centre holding a patient's records")
	nodes, err := d.startThree(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	a, b, c := nodes[0], nodes[1], nodes[2]
	d.say("Each centre serves the federation's private Kademlia DHT (/medfed/kad/1.0.0).")
	d.say("A centre that holds records about a patient announces itself under the")
	d.say("patient's directory key, a hash of the federation and the pseudonym; the")
	d.say("announcement is stored at the members closest to that key.")

	shared, err := pseudonym.ParseNHS("943 476 5919")
	if err != nil {
		return err
	}
	sp, err := a.Pseudonyms(ctx, []pseudonym.Identifier{shared})
	if err != nil {
		return err
	}
	patient := ledger.Pseudonym(sp[0])
	for _, n := range []*harness.Node{a, b} {
		if err := harness.Visit(ctx, n.Centre, patient, 0); err != nil {
			return err
		}
		if _, err := n.AnnounceHeld(ctx); err != nil {
			return err
		}
	}
	d.say("\nThe patient of chapter 4 (NHS number 943 476 5919) is seen at centre-a and")
	d.say("at centre-b; each records the visit and announces the patient.")

	ids := make([]pseudonym.Identifier, 0, demoJoiningPatients)
	for v := 4_100_000_000; len(ids) < demoJoiningPatients-1; v++ {
		if id, err := pseudonym.ParseNHS(fmt.Sprint(v)); err == nil {
			ids = append(ids, id)
		}
	}
	ids = append(ids, shared)
	cps, err := c.Pseudonyms(ctx, ids)
	if err != nil {
		return err
	}
	for i, p := range cps {
		if err := harness.Visit(ctx, c.Centre, ledger.Pseudonym(p), i); err != nil {
			return err
		}
	}
	d.say("\ncentre-c, the centre that joined in chapter 2, brings the records it kept")
	d.say("before it joined: %d patients, the same patient among them. It derives their", len(cps))
	d.say("pseudonyms, records them, and announces them all at once: kad-dht's sweep")
	d.say("provider groups the keys by region of the keyspace and sends each region's")
	d.say("announcements in one go, instead of one network lookup per patient.")
	start := time.Now()
	held, err := c.AnnounceHeld(ctx)
	if err != nil {
		return err
	}
	if err := waitUntil(ctx, "centre-c's patients are in the directory", func() bool {
		stored := 0
		for _, n := range []*harness.Node{a, b} {
			s, err := n.Directory.Stored(c.Centre.ID())
			if err != nil {
				return false
			}
			stored += s
		}
		return stored == 2*held // with three members, each announcement goes to both others
	}); err != nil {
		return err
	}
	d.say("  %d patients discoverable from every centre after %v", held, time.Since(start).Round(time.Millisecond))

	res, err := a.Lookup(ctx, patient)
	if err != nil {
		return err
	}
	if res.Problem != nil || len(res.Holders) != 3 {
		return fmt.Errorf("demo: centre-a's lookup found %d holders (%v), want 3", len(res.Holders), res.Problem)
	}
	d.say("\nA clinician at centre-a asks where the patient has records. The lookup goes")
	d.say("straight to the members closest to the key (every centre knows every member")
	d.say("from the charter), and answers in %.1f ms:", millis(res.Elapsed))
	for _, h := range res.Holders {
		d.say("  %s", h.Name)
	}
	only, err := b.Lookup(ctx, ledger.Pseudonym(cps[0]))
	if err != nil {
		return err
	}
	if len(only.Holders) != 1 || only.Holders[0].Name != "centre-c" {
		return fmt.Errorf("demo: a patient of centre-c alone has holders %v", only.Holders)
	}
	d.say("A patient seen only at centre-c is found at centre-c alone (%.1f ms from centre-b).", millis(only.Elapsed))
	st, err := c.Directory.Status(ctx)
	if err != nil {
		return err
	}
	d.say("\ncentre-c's directory status (medfed directory status): %d keys announced, %d", st.Announced, st.Stored)
	d.say("announcements stored for the other centres, %d members in its routing table;", st.RoutingTable)
	d.say("its keys are kept on disk and sent again before the records expire (48 h).")
	d.say("The DHT holds hashes of pseudonyms and peer IDs, nothing else.")
	return nil
}

// startThree starts the federation's three centres and waits until their
// directories know each other.
func (d *demo) startThree(ctx context.Context) (harness.Nodes, error) {
	nodes, err := harness.StartAll(ctx, d.cfgs["centre-a"], d.cfgs["centre-b"], d.cfgs["centre-c"])
	if err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, "the directory's routing tables fill", func() bool {
		for _, n := range nodes {
			if n.Directory.RoutingTableSize() != len(nodes)-1 {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, errors.Join(err, nodes.Stop())
	}
	return nodes, nil
}
