package directory

import lru "github.com/hashicorp/golang-lru/simplelru"

// uncached is a provider-record cache that holds nothing, so that the
// DHT's provider manager reads every provider set from the store.
type uncached struct{}

var _ lru.LRUCache = uncached{}

func (uncached) Add(key, value any) bool        { return false }
func (uncached) Get(key any) (any, bool)        { return nil, false }
func (uncached) Contains(key any) bool          { return false }
func (uncached) Peek(key any) (any, bool)       { return nil, false }
func (uncached) Remove(key any) bool            { return false }
func (uncached) RemoveOldest() (any, any, bool) { return nil, nil, false }
func (uncached) GetOldest() (any, any, bool)    { return nil, nil, false }
func (uncached) Keys() []any                    { return nil }
func (uncached) Len() int                       { return 0 }
func (uncached) Purge()                         {}
func (uncached) Resize(int) int                 { return 0 }
