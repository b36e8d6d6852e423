//go:build linux && cgo

package heap

/*
#include <malloc.h>
*/
import "C"

// Trim returns the free pages of every malloc arena to the system
// (glibc's malloc_trim), and whether any were returned. It walks the
// arenas' free chunks under their locks: milliseconds for hundreds of
// MiB, so callers trim after bursts or on a slow clock, never per request.
func Trim() bool { return C.malloc_trim(0) == 1 }
