//go:build !(linux && cgo)

package heap

// Trim does nothing where glibc's malloc_trim is not there; it reports
// that nothing was returned.
func Trim() bool { return false }
