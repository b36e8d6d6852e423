package centre

import (
	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/stats"
	"github.com/medfed/medfed/pseudonym"
)

// Stats is a snapshot of what the running centre's services did since
// it started and where its ledger stands, for the operators' metrics
// (node/metrics exports it). Counts, sizes, times and member names:
// never a patient's pseudonym, identifier or payload.
type Stats struct {
	Ledger      ledger.Stats
	Size        int64 // the ledger's entries
	FinalSize   int64 // of those, in the latest final checkpoint
	Publisher   federation.PublisherStats
	Directory   directory.Stats
	Consent     consent.Stats
	Queries     map[string]stats.Snapshot // latency of the holders' answers to this centre's queries, by outcome
	Pseudonyms  pseudonym.EvaluatorStats  // zero while this centre holds no share
	RateRefused uint64                    // members' requests refused by the charter's member-rate
	Members     int                       // in the charter in force
	Connected   int                       // of the others, those this centre has a connection to
	Version     uint64                    // of the charter in force
}

// Stats returns a snapshot of the centre's counts. It reads nothing from
// disk: a scrape every few seconds costs microseconds.
func (n *Node) Stats() Stats {
	st := Stats{
		Ledger:      n.Centre.Ledger.Stats(),
		Size:        n.Centre.Ledger.Size(),
		Publisher:   n.Publisher.Stats(),
		Directory:   n.Directory.Stats(),
		Consent:     n.Consent.Stats(),
		Queries:     map[string]stats.Snapshot{},
		RateRefused: n.memberRate.Refused(),
	}
	if f, ok := n.Centre.Ledger.LatestFinal(); ok {
		st.FinalSize = f.Size
	}
	for i, s := range n.Query.Latency() {
		st.Queries[query.Outcomes[i]] = s
	}
	n.keyMu.Lock()
	if n.evaluator != nil {
		st.Pseudonyms = n.evaluator.Stats()
	}
	n.keyMu.Unlock()
	cur := n.Membership.Current()
	st.Version, st.Members = cur.Version, len(cur.Members)
	for _, m := range cur.Members {
		if n.connectedTo(m.ID) {
			st.Connected++
		}
	}
	return st
}
