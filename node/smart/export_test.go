package smart

// SetLiveLimit lowers MaxLiveTokens for a test, and puts it back when the
// test ends.
func SetLiveLimit(n int) (restore func()) {
	old := liveLimit
	liveLimit = n
	return func() { liveLimit = old }
}
