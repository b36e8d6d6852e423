package directory

import "strings"

// overlay is a set of the store's writes not yet committed, the newest
// of each key, with the provider records among them listed by the key
// they provide. A lookup reads one key's provider records (a query of
// the prefix /records/providers/<key>), while a replica holds the tens
// of thousands of records of a centre announcing its patients in its
// overlay: the list answers that query with the key's few writes, not
// with a pass over every write, which took 1.7 ms at 60,000
// (BenchmarkStoreQueryOverlaid: 11 µs with the list). The list is made
// at the overlay's first such query, not with each write: a replica
// taking a centre's announcements while no lookup asks it (a centre's
// start, a federation's night) pays nothing for it.
type overlay struct {
	writes map[string]write
	// byKey lists the keys of the provider records among writes, each
	// once, by their parent: providersPrefix and the key provided. Nil
	// until the first query of one key's records.
	byKey map[string][]string
	// other counts, once byKey is made, the writes under providersPrefix
	// that are no provider record's (a path of another depth): while
	// there is one, a query passes over every write.
	other int
}

func newOverlay() *overlay { return &overlay{writes: map[string]write{}} }

// set overlays w on k.
func (o *overlay) set(k string, w write) {
	if _, ok := o.writes[k]; !ok && o.byKey != nil {
		o.list(k)
	}
	o.writes[k] = w
}

// list adds k, a key new to o, to byKey.
func (o *overlay) list(k string) {
	if parent, ok := recordParent(k); ok {
		o.byKey[parent] = append(o.byKey[parent], k)
	} else if strings.HasPrefix(k, providersPrefix) {
		o.other++
	}
}

// len returns how many keys o writes.
func (o *overlay) len() int { return len(o.writes) }

// under adds to into the writes of o whose keys are strict children of
// prefix, a clean key, in [lo, hi) (prefixRange's; hi empty for no
// bound). A nil o has none.
func (o *overlay) under(prefix, lo, hi string, into map[string]write) {
	if o == nil {
		return
	}
	if isRecordParent(prefix) {
		if o.byKey == nil {
			o.byKey = map[string][]string{}
			for k := range o.writes {
				o.list(k)
			}
		}
		if o.other == 0 {
			for _, k := range o.byKey[prefix] {
				into[k] = o.writes[k]
			}
			return
		}
	}
	for k, w := range o.writes {
		if k >= lo && (hi == "" || k < hi) {
			into[k] = w
		}
	}
}

// recordParent returns the parent of k, when k is a provider record's
// key by its shape: providersPrefix, the key provided, a slash and the
// provider, neither empty nor holding a slash.
func recordParent(k string) (string, bool) {
	rest, ok := strings.CutPrefix(k, providersPrefix)
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 || strings.IndexByte(rest[i+1:], '/') >= 0 {
		return "", false
	}
	return k[:len(providersPrefix)+i], true
}

// isRecordParent reports whether prefix, a clean key, is the parent of
// provider records: providersPrefix and a key without a slash.
func isRecordParent(prefix string) bool {
	rest, ok := strings.CutPrefix(prefix, providersPrefix)
	return ok && rest != "" && strings.IndexByte(rest, '/') < 0
}
