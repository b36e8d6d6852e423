// Package admin is the centre's admin socket: how an operator's medfed
// commands reach the running node. It is an adapter at the node's edge,
// beside the HTTP API (node/api), and the command starts it as it starts
// the API: the centre itself (node/centre) knows nothing of sockets or
// JSON.
//
// The socket is a unix socket in the data directory, mode 0600, so only
// the account that runs the centre can use it; holding it is the
// operator's credential. It speaks HTTP with JSON bodies, with the API's
// limits and answers: an error is the API's OperationOutcome, whose issue
// code carries the error's kind (node.Kind), so the client hands the
// command an error of the same kind as the node's, and the command picks
// its exit code without parsing anything.
package admin
