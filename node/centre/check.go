package centre

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
)

// DataError names what a full check found wrong in a centre's own data:
// the file, the table and the row.
type DataError struct {
	File, Table, Row string
	Reason           string
}

func (e *DataError) Error() string {
	return fmt.Sprintf("%s, table %s, %s: %s", e.File, e.Table, e.Row, e.Reason)
}

// Is makes a DataError an ErrTampered.
func (e *DataError) Is(target error) bool { return target == ErrTampered }

// ErrTampered is the kind of what a full check finds: data that does not
// check out against the keys and the other tables.
var ErrTampered = node.E(node.Conflict, "centre data tampered with")

// CheckReport is what a full check of a centre's own data went through.
type CheckReport struct {
	Ledger    ledger.Report
	Charter   int // versions of the charter the ledger was checked against; 0: the centre's own key alone
	Witnessed int // other logs' checkpoints this centre cosigned, each checked
	Evidence  int // pairs of another log's conflicting checkpoints, each checked
	Payloads  int // record payloads opened and matched to their commitments
	Erased    int // erased payloads, each with its erasure entry
	Directory int // rows of the directory's file, each with its MAC
	Devices   int // device registrations, each with its MAC, and their seal
	Format    int // the data directory's format: CurrentFormat once checked
	FormatWas int // its format before the check opened, and so upgraded, it
}

// Check is the full check of the data of the centre of cfg, with its
// keys, that the node must not be running for. First the ledger and its
// pseudonym index as they are on disk, before the centre opens them (it
// rebuilds an index that does not match): as medfed ledger verify checks
// them, against the charter adopted on the ledger, whose key for this
// centre must be centre.key's. Then, the centre open: the checkpoint it
// last cosigned of every other log (signed by that log's key, its size
// and root those of the note), the evidence it holds of logs that signed
// two histories, every record's payload, which must open with the records
// key and match the commitment on the ledger, or be erased with an
// erasure entry naming it, and the MAC of every row of the directory's
// file and of the device store (and the device registrations' seal). It
// returns a *DataError (ErrTampered) naming the first file, table and
// row that does not check out. A data directory of an older
// format is upgraded as the centre opens, after its ledger was checked as
// it was on disk; one of a newer format is refused, changing nothing.
func Check(ctx context.Context, cfg Config) (rep CheckReport, err error) {
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	pub, err := PublicKey(cfg.Data.Dir)
	if err != nil {
		return rep, err
	}
	lock, err := lockDir(cfg.Data.Dir)
	if err != nil {
		return rep, err
	}
	versions, err := checkLedger(ctx, cfg, pub, &rep)
	if err := errors.Join(err, lock.unlock()); err != nil {
		return rep, err
	}
	c, err := Open(ctx, cfg, nil)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	rep.Format, rep.FormatWas = CurrentFormat, c.formatWas
	if err := c.checkWitnessing(ctx, versions, &rep); err != nil {
		return rep, err
	}
	if err := c.checkPayloads(ctx, &rep); err != nil {
		return rep, err
	}
	if err := c.checkDirectory(ctx, &rep); err != nil {
		return rep, err
	}
	return rep, c.checkDevices(ctx, &rep)
}

// checkLedger verifies the ledger of the centre of cfg, whose key is pub,
// and returns the charter's versions on it.
func checkLedger(ctx context.Context, cfg Config, pub ed25519.PublicKey, rep *CheckReport) ([]federation.Signed, error) {
	path := filepath.Join(cfg.Data.Dir, LedgerFile)
	chain, err := ChainOnLedger(ctx, path)
	if err != nil {
		return nil, &DataError{File: LedgerFile, Table: "entries", Row: "the charter's entries", Reason: err.Error()}
	}
	var versions []federation.Signed
	if len(chain) == 0 {
		rep.Ledger, err = ledger.Verify(ctx, path, pub)
	} else {
		if versions, err = federation.VerifyVersions(chain); err != nil {
			return nil, &DataError{File: LedgerFile, Table: "entries", Row: "the charter's entries", Reason: err.Error()}
		}
		rep.Charter = len(versions)
		if m, ok := versions[len(versions)-1].MemberByName(cfg.Centre.Name); ok {
			if k, err := m.PublicKey(); err != nil || !k.Equal(pub) {
				return nil, &DataError{File: KeyFile, Table: "-", Row: "the key", Reason: "not the key the charter lists for this centre"}
			}
		}
		rep.Ledger, err = VerifyPublic(ctx, path, chain)
	}
	var te *ledger.TamperError
	switch {
	case errors.As(err, &te) && te.Table == "blocks":
		return nil, &DataError{File: filepath.Base(ledger.BlocksPath(path)), Table: te.Table, Row: te.Error(), Reason: "does not match the ledger"}
	case errors.As(err, &te) && te.InIndex():
		return nil, &DataError{File: filepath.Base(ledger.IndexPath(path)), Table: te.Table, Row: te.Error(), Reason: "does not match the ledger"}
	case errors.As(err, &te):
		return nil, &DataError{File: LedgerFile, Table: te.Table, Row: te.Error(), Reason: "does not verify"}
	case err != nil:
		return nil, &DataError{File: LedgerFile, Table: "meta", Row: "the ledger", Reason: err.Error()}
	}
	return versions, nil
}

// checkDirectory checks the MAC of every row of the directory's file, when
// the centre has one (a node has run).
func (c *Centre) checkDirectory(ctx context.Context, rep *CheckReport) error {
	path := filepath.Join(c.dir, DirectoryFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	n, err := directory.CheckStore(ctx, path, c.RowKey(DirectoryFile))
	var te *directory.TamperError
	if errors.As(err, &te) {
		return &DataError{File: DirectoryFile, Table: "kv", Row: "key " + te.Key, Reason: te.Reason}
	}
	rep.Directory = n
	return err
}

// checkDevices checks the MAC of every row of the device store, and the
// registrations' seal, when the centre has one.
func (c *Centre) checkDevices(ctx context.Context, rep *CheckReport) error {
	n, err := device.CheckStore(ctx, filepath.Join(c.dir, DeviceFile), c.RowKey(DeviceFile))
	var te *device.TamperError
	if errors.As(err, &te) {
		return &DataError{File: DeviceFile, Table: te.Table, Row: te.Row, Reason: te.Reason}
	}
	rep.Devices = n
	return err
}

// keyOf returns the key of the log with origin under the newest version
// that lists it.
func keyOf(versions []federation.Signed, origin string) (ed25519.PublicKey, bool) {
	newest := slices.Clone(versions)
	slices.Reverse(newest)
	m, ok := memberOf(newest, origin)
	if !ok {
		return nil, false
	}
	k, err := m.PublicKey()
	return k, err == nil
}

// checkWitnessing checks the witnessed, evidence and mirrors tables.
func (c *Centre) checkWitnessing(ctx context.Context, versions []federation.Signed, rep *CheckReport) error {
	logs, err := c.Ledger.WitnessedLogs(ctx)
	if err != nil {
		return err
	}
	for origin, w := range logs {
		bad := func(reason string) error {
			return &DataError{File: LedgerFile, Table: "witnessed", Row: origin, Reason: reason}
		}
		key, ok := keyOf(versions, origin)
		if !ok {
			return bad("a log of no centre the charter lists")
		}
		cp, err := ledger.OpenCheckpoint(w.Note, origin, key)
		switch {
		case err != nil:
			return bad("the checkpoint held is not that log's: " + err.Error())
		case cp.Size != w.Size || cp.Root != w.Root:
			return bad(fmt.Sprintf("size %d and root stored beside a checkpoint of size %d", w.Size, cp.Size))
		}
		rep.Witnessed++
	}
	evidence, err := c.Ledger.Evidence(ctx)
	if err != nil {
		return err
	}
	for i, e := range evidence {
		bad := func(reason string) error {
			return &DataError{File: LedgerFile, Table: "evidence", Row: fmt.Sprintf("row %d (%s)", i+1, e.Origin), Reason: reason}
		}
		key, ok := keyOf(versions, e.Origin)
		if !ok {
			return bad("a log of no centre the charter lists")
		}
		for _, msg := range [][]byte{e.Held, e.Offered} {
			if _, err := ledger.OpenCheckpoint(msg, e.Origin, key); err != nil {
				return bad("a checkpoint that log did not sign: " + err.Error())
			}
		}
		if bytes.Equal(e.Held, e.Offered) {
			return bad("the same checkpoint twice: no evidence of anything")
		}
		rep.Evidence++
	}
	// The mirrors are sealed by each log's centre, which checks what it
	// reads back: here, that each row is as this centre stored it and
	// each log's mirror has no gap.
	var me *ledger.MirrorError
	switch err := c.Ledger.CheckMirrors(ctx); {
	case errors.As(err, &me):
		return &DataError{File: LedgerFile, Table: "mirrors", Row: fmt.Sprintf("%s from %d", me.Origin, me.Start), Reason: me.Reason}
	case err != nil:
		return err
	}
	return nil
}

// checkPayloads opens every record's payload against its commitment.
func (c *Centre) checkPayloads(ctx context.Context, rep *CheckReport) error {
	es, err := c.Ledger.EntriesOfKind(ctx, ledger.KindErasure)
	if err != nil {
		return err
	}
	erased := map[int64]bool{}
	for _, e := range es {
		x, err := e.Erasure()
		if err != nil {
			return &DataError{File: LedgerFile, Table: "entries", Row: fmt.Sprintf("entry %d", e.Index), Reason: err.Error()}
		}
		erased[x.Target] = true
	}
	for _, kind := range []ledger.Kind{ledger.KindRecord, ledger.KindAmendment} {
		es, err := c.Ledger.EntriesOfKind(ctx, kind)
		if err != nil {
			return err
		}
		for _, e := range es {
			r, err := e.Record()
			if err != nil {
				return &DataError{File: LedgerFile, Table: "entries", Row: fmt.Sprintf("entry %d", e.Index), Reason: err.Error()}
			}
			id := records.ID(r.Payload)
			bad := func(reason string) error {
				return &DataError{File: records.File, Table: "payloads/sealed", Row: fmt.Sprintf("the payload of ledger entry %d", e.Index), Reason: reason}
			}
			payload, opening, err := c.Records.Get(ctx, id)
			switch {
			case erased[e.Index] && errors.Is(err, records.ErrErased):
				rep.Erased++
			case erased[e.Index]:
				return bad("an erasure entry names it, but it is not erased")
			case errors.Is(err, records.ErrErased):
				return bad("erased, but no erasure entry names it")
			case err != nil:
				return bad(err.Error())
			case !records.Commitment(r.Commitment).Verify(opening, payload):
				return bad("it does not match the commitment on the ledger")
			default:
				rep.Payloads++
			}
		}
	}
	return nil
}
