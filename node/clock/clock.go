// Package clock is the wall clock a centre dates things by: its ledger
// entries, the times of its records and consent decisions, the time on
// the requests it sends and the skew it allows on those it answers.
//
// In a normal build Now is time.Now. A build with the medfedfaults tag,
// which only the end-to-end tests make, adds an offset that a test can
// move while the process runs, so that a real medfed process sees its
// clock jump (see faults.go). Spans that must not jump (leases, timeouts)
// are measured with time.Now's monotonic reading, never with Now.
package clock

import "time"

// FaultEnv names, in a medfedfaults build, the file whose content, a Go
// duration such as "-10m" or "+90s", is added to every reading of Now. A
// file that is missing means no offset; one that does not hold a
// duration is reported on standard error and leaves the offset as it
// was. Other builds ignore it.
const FaultEnv = "MEDFED_FAULT_CLOCK"

// Now returns the current wall-clock time.
func Now() time.Time { return now() }
