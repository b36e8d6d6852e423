package centre

import "github.com/medfed/medfed/node/enum"

// Outcome is what became of a request at one centre it went to.
type Outcome uint8

const (
	// Answered: the centre answered (a query's records were released).
	Answered Outcome = iota + 1
	// Denied: consent did not allow the request; the reason says why.
	Denied
	// Failed: the centre was down, too slow or refused, or its answer
	// did not verify; the error says which.
	Failed
	// Copied: a transfer copied the records released (or had before).
	Copied
)

var outcomes = enum.New[Outcome]("outcome", []string{Answered: "answered", Denied: "denied", Failed: "failed", Copied: "copied"})

func (o Outcome) String() string { return outcomes.String(o) }
