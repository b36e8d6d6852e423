package ledger

// tail keeps the encodings of the latest committed entries in memory.
// The readers that follow the ledger read what was just appended: the
// query holder's cache of records (after every query's access entry),
// the publisher's mirrors (the same entries once for each witness, at
// every checkpoint), the audit export. Each of those reads was a SQLite
// query that fetched bytes the commit had in hand a moment before.
// Guarded by Ledger.mu; the encodings are never changed once committed,
// and Decode copies what it keeps of them.
type tail struct {
	from int64    // the index of encs[0]; the ledger's size when empty
	encs [][]byte // contiguous, up to the ledger's size
}

// tailEntries is how many entries the tail keeps: a few checkpoints'
// worth at a busy centre, about 1 MiB of typical entries.
const tailEntries = 4096

// add appends the encodings of entries committed from index first on.
func (t *tail) add(first int64, encs [][]byte) {
	if first != t.from+int64(len(t.encs)) {
		t.from, t.encs = first, nil // not contiguous: start again here
	}
	t.encs = append(t.encs, encs...)
	if n := len(t.encs); n > 2*tailEntries {
		// Dropped in one copy every tailEntries commits' worth, not per add.
		t.encs = append(make([][]byte, 0, 2*tailEntries), t.encs[n-tailEntries:]...)
		t.from += int64(n - tailEntries)
	}
}

// get returns the encodings of the entries in [from, to) when the tail
// holds them all.
func (t *tail) get(from, to int64) ([][]byte, bool) {
	if from < t.from || to > t.from+int64(len(t.encs)) || from > to {
		return nil, false
	}
	return t.encs[from-t.from : to-t.from : to-t.from], true
}
