package consent

import "github.com/medfed/medfed/node/wire"

// The documents are encoded with wire's Writer and Reader: a reader
// accepts only what the writer produces, so a document's signature covers
// its meaning and nothing else.

type writer = wire.Writer

func newReader(b []byte) *wire.Reader { return wire.NewReader(b, "consent document") }

// maxUnix bounds document times (see wire.MaxUnix).
var maxUnix = wire.MaxUnix
