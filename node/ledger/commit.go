package ledger

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Group commit.
//
// One goroutine, commitLoop, writes the entries. Each commit is one SQLite
// transaction, and its fsync costs about as much as the rest of the commit
// together, so the more appends share a commit the more appends a second.
// Appenders wait for their commit, so the callers of one commit come back
// for the next a few microseconds after it: a commit that closed as soon as
// the queue was empty would split them, and those that missed it would
// wait for the whole next one, fsync included. So a commit expects as many
// callers as the last one had, plus those that queued meanwhile, and waits
// for them a while: at most as long as the last commit took SQLite, about
// what a caller who missed the commit would have waited for the next, and
// no longer than maxPatience. A lone appender, expected alone, never waits.
//
// While it waits, the commit stamps, hashes and inserts what it has
// already taken, so the wait costs the callers nothing they would not
// have paid anyway.
//
// The ledger's other writes (what it witnessed of other logs and their
// mirrors, its checkpoints) go through the same loop (write): each one
// runs in the batch's transaction under a savepoint, so a write that
// fails changes nothing and fails alone, and all share the batch's fsync.
// Each checkpoint costs its log two writes and each of its seven
// witnesses two; written alone, each was a transaction and an fsync of
// its own, holding the single writer from the appends meanwhile.

// maxPatience bounds how long a commit waits for the appenders it expects.
const maxPatience = 2 * time.Millisecond

// commitLoop is the single writer.
func (l *Ledger) commitLoop() {
	defer close(l.done)
	var (
		expect   int           // appends the next commit expects
		patience time.Duration // how long it waits for them, at most
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var req *appendReq
		select {
		case req = <-l.reqs:
		case <-l.quit:
			return
		}
		began := time.Now()
		b := l.newBatch()
		b.take(req)
	gather:
		for b.open(l.maxBatch) {
			select {
			case req := <-l.reqs:
				b.take(req)
				continue
			default:
			}
			wait := patience - time.Since(began)
			if len(b.reqs) >= expect || wait <= 0 {
				break
			}
			timer.Reset(wait)
			select {
			case req := <-l.reqs:
				b.take(req)
			case <-timer.C:
				break gather
			case <-l.quit:
				break gather
			}
			timer.Stop()
		}
		synced, err := b.commit()
		switch {
		case err != nil:
			l.stats.failed.Inc()
			l.log.Error("ledger commit failed", "entries", b.entries, "err", err)
		case b.entries > 0:
			l.stats.appended.Add(uint64(b.entries))
			l.stats.sizes.Observe(float64(b.entries))
		}
		l.stats.seconds.Observe(time.Since(began).Seconds())
		expect = len(b.reqs) + int(l.queued.Load())
		patience = min(synced, maxPatience)
		b.ack(err)
	}
}

// A batch is a commit in progress: the appends it took so far, stamped,
// hashed and (most of them) inserted in its transaction.
type batch struct {
	l       *Ledger
	ctx     context.Context
	tx      *sql.Tx
	reqs    []*appendReq
	entries int       // in reqs
	n       int64     // the next entry's index
	now     time.Time // every entry's time
	front   frontier
	block   hashBlock // the block the batch's next leaf falls in
	blocks  [][]byte  // the hashes of the blocks it completed, in order
	rows    []any     // idx, data, hashes of the entries not inserted yet
	// Of the entries inserted, the leaves that complete a cached subtree,
	// and the pseudonyms to index, published once the batch commits.
	upper    []leafHashes
	postings []posting
	sealed   bool  // it holds a recovery, whose root is checked at the end
	err      error // the batch fails: every append it took fails with err
}

type leafHashes struct {
	n  int64
	hs []tlog.Hash
}

func (l *Ledger) newBatch() *batch {
	// The commit serves many callers; none may cancel it.
	b := &batch{l: l, ctx: context.Background()}
	l.mu.RLock()
	b.n, b.front, b.block = l.size, l.front.clone(), l.block
	l.mu.RUnlock()
	if b.now = l.now().UTC(); b.now.UnixNano() < 0 {
		b.err = errors.New("clock before 1970")
		return b
	}
	b.tx, b.err = l.w.BeginTx(b.ctx, nil)
	return b
}

// open reports whether the batch may take another append.
func (b *batch) open(maxBatch int) bool {
	return b.err == nil && !b.sealed && b.entries < maxBatch
}

// take adds req to the batch. Once the batch has failed it only collects
// the appends to fail.
func (b *batch) take(req *appendReq) {
	b.reqs = append(b.reqs, req)
	b.entries += len(req.encs)
	switch {
	case b.err != nil:
	case req.side != nil:
		b.err = b.write(req)
	default:
		b.err = b.add(req)
	}
}

// write runs req's write under a savepoint: when it fails, what it wrote
// is rolled back and req alone fails. Only a failure of the savepoint
// itself fails the batch.
func (b *batch) write(req *appendReq) error {
	if _, err := b.tx.ExecContext(b.ctx, "SAVEPOINT side"); err != nil {
		return err
	}
	if req.err = req.side(b.ctx, b.tx); req.err != nil {
		if _, err := b.tx.ExecContext(b.ctx, "ROLLBACK TO side"); err != nil {
			return err
		}
	}
	_, err := b.tx.ExecContext(b.ctx, "RELEASE side")
	return err
}

func (b *batch) add(req *appendReq) error {
	req.first = b.n
	for i, enc := range req.encs {
		if !req.stamped {
			stamp(enc, b.n, b.now)
		} else if at := int64(binary.BigEndian.Uint64(enc[offIndex:])); at != b.n {
			return fmt.Errorf("a recovered entry of index %d at index %d", at, b.n)
		}
		hs, err := b.front.appendLeaf(b.n, enc)
		if err != nil {
			return err
		}
		if b.block.put(b.n, hs) {
			b.blocks = append(b.blocks, b.block.blob())
		}
		if !req.subjects[i].IsZero() {
			b.postings = append(b.postings, posting{b.n, req.subjects[i]})
		}
		b.rows = append(b.rows, b.n, enc, hashesBlob(hs))
		if len(hs) > cacheLevel {
			b.upper = append(b.upper, leafHashes{b.n, hs})
		}
		b.n++
	}
	b.sealed = req.stamped
	// Insert whole statements' worth now; the rest waits for the commit.
	chunk := b.l.insert.chunk()
	if len(b.rows) < chunk {
		return nil
	}
	k := len(b.rows) / chunk * chunk
	if err := b.l.insert.insert(b.ctx, b.tx, b.rows[:k]); err != nil {
		return err
	}
	b.rows = append(b.rows[:0], b.rows[k:]...)
	return nil
}

// commit inserts what is left, commits, and publishes the new size. It
// returns how long SQLite took to commit.
func (b *batch) commit() (time.Duration, error) {
	if b.tx != nil {
		defer b.tx.Rollback()
	}
	if b.err != nil {
		return 0, b.err
	}
	if err := b.l.insert.insert(b.ctx, b.tx, b.rows); err != nil {
		return 0, err
	}
	root, err := tlog.TreeHash(b.n, b.front)
	if err != nil {
		return 0, err
	}
	for _, req := range b.reqs {
		if req.stamped && root != req.root {
			return 0, fmt.Errorf("%w: the recovered entries give the root %x at size %d, not the one cosigned", ErrRecovered, root[:8], b.n)
		}
	}
	start := time.Now()
	if err := b.tx.Commit(); err != nil {
		return 0, err
	}
	synced := time.Since(start)

	// Index before publishing the size: a reader that sees size n finds
	// every entry below n by pseudonym.
	l := b.l
	l.index.add(b.postings, b.blocks, b.n)
	l.mu.Lock()
	for _, u := range b.upper {
		l.upper.add(u.n, u.hs)
	}
	for _, req := range b.reqs {
		l.tail.add(req.first, req.encs)
	}
	l.size, l.root, l.front, l.block = b.n, root, b.front, b.block
	// A batch of side writes alone (a checkpoint signed or made final,
	// another log witnessed or mirrored) did not grow the ledger: waking
	// the publisher for it started its gap over, so that the next append
	// waited up to a whole gap for its checkpoint.
	if b.entries > 0 {
		close(l.grown)
		l.grown = make(chan struct{})
	}
	l.mu.Unlock()
	return synced, nil
}

// ack answers every request of the batch: err, or the error a write
// failed with alone.
func (b *batch) ack(err error) {
	for _, req := range b.reqs {
		if req.err == nil {
			req.err = err
		}
		close(req.done)
	}
}

// write runs fn in the transaction of the next commit, under a savepoint,
// and returns once that commit is durable: fn's error, with nothing of
// what it wrote kept, or the commit's. fn must not keep tx, and runs its
// statements under the context it is given, the commit's: ctx only bounds
// the wait to be taken (an interrupted statement would roll back the
// whole transaction, everyone's appends with it).
func (l *Ledger) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	req := &appendReq{side: fn, done: make(chan struct{})}
	if err := l.submit(ctx, req); err != nil {
		return err
	}
	return req.err
}

// submit hands req to the commit loop and waits for its commit: the
// commit's error, or the request's own, is then in req.err. ctx bounds
// only the wait to be taken, counted in queued meanwhile; once taken,
// req is committed or failed with its batch.
func (l *Ledger) submit(ctx context.Context, req *appendReq) error {
	l.queued.Add(1)
	var err error
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		err = ctx.Err()
	case <-l.quit:
		err = ErrClosed
	}
	l.queued.Add(-1)
	if err != nil {
		return err
	}
	<-req.done
	return nil
}
