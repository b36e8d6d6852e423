package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

// centralIndex is the floor a federation is compared with: every centre's
// directory and records in one SQLite file on one node, as a central
// server would keep them. A lookup is one indexed read. A query is one
// transaction that reads the patient's records, decides each with the same
// consent code the holders run (contracts kept decoded in memory, as the
// holders keep them), appends an access row and commits durably (WAL,
// synchronous=FULL, as the ledger). No network, no signatures, no proofs,
// no encryption and no central owner to distrust: the physical floor,
// not a design medfed would adopt.
type centralIndex struct {
	db        *sql.DB
	lookup    *sql.Stmt
	records   *sql.Stmt
	audit     *sql.Stmt
	contracts map[ledger.Pseudonym]consent.Standing
}

func openCentral(path string) (*centralIndex, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	q.Set("_busy_timeout", "10000")
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	// One connection: SQLite has one writer, and a query writes its access
	// row; queries in flight queue for it rather than spin on SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	c := &centralIndex{db: db, contracts: map[ledger.Pseudonym]consent.Standing{}}
	if _, err := db.Exec(`
		CREATE TABLE holders (pseudonym BLOB NOT NULL, centre BLOB NOT NULL, PRIMARY KEY (pseudonym, centre)) WITHOUT ROWID;
		CREATE TABLE records (pseudonym BLOB NOT NULL, centre BLOB NOT NULL, n INTEGER NOT NULL, class TEXT NOT NULL,
			recorded INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (pseudonym, centre, n)) WITHOUT ROWID;
		CREATE TABLE access (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, requester TEXT NOT NULL, role TEXT NOT NULL,
			purpose TEXT NOT NULL, pseudonym BLOB NOT NULL, released INTEGER NOT NULL);`); err != nil {
		return nil, errors.Join(fmt.Errorf("central index: %w", err), db.Close())
	}
	for _, s := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&c.lookup, `SELECT centre FROM holders WHERE pseudonym = ? ORDER BY centre`},
		{&c.records, `SELECT centre, class, recorded, payload FROM records WHERE pseudonym = ?`},
		{&c.audit, `INSERT INTO access (at, requester, role, purpose, pseudonym, released) VALUES (?, ?, ?, ?, ?, ?)`},
	} {
		if *s.stmt, err = db.Prepare(s.query); err != nil {
			return nil, errors.Join(fmt.Errorf("central index: %w", err), db.Close())
		}
	}
	return c, nil
}

func (c *centralIndex) Close() error { return c.db.Close() }

// addHolders records, in one transaction, that each patient is held at
// the centres given.
func (c *centralIndex) addHolders(ctx context.Context, patients []ledger.Pseudonym, holders [][]peer.ID) error {
	return c.inTx(ctx, func(tx *sql.Tx) error {
		for i, p := range patients {
			for _, h := range holders[i] {
				if _, err := tx.ExecContext(ctx, `INSERT INTO holders (pseudonym, centre) VALUES (?, ?)`, p[:], []byte(h)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// centralRecord is one record as the central index keeps it.
type centralRecord struct {
	Centre   peer.ID
	Class    string
	Recorded time.Time
	Payload  []byte
}

// addRecords stores each patient's records and consent.
func (c *centralIndex) addRecords(ctx context.Context, patients []ledger.Pseudonym, records [][]centralRecord, standing []consent.Standing) error {
	for i, p := range patients {
		c.contracts[p] = standing[i]
	}
	return c.inTx(ctx, func(tx *sql.Tx) error {
		for i, p := range patients {
			for n, r := range records[i] {
				if _, err := tx.ExecContext(ctx, `INSERT INTO records (pseudonym, centre, n, class, recorded, payload) VALUES (?, ?, ?, ?, ?, ?)`,
					p[:], []byte(r.Centre), n, r.Class, r.Recorded.UnixMilli(), r.Payload); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (c *centralIndex) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("central index: %w", err)
	}
	if err := f(tx); err != nil {
		return errors.Join(fmt.Errorf("central index: %w", err), tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("central index: %w", err)
	}
	return nil
}

// holdersOf is the central lookup: the holders in peer.ID order (SQLite
// orders BLOBs bytewise, as Go orders strings).
func (c *centralIndex) holdersOf(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error) {
	rows, err := c.lookup.QueryContext(ctx, p[:])
	if err != nil {
		return nil, fmt.Errorf("central lookup: %w", err)
	}
	defer rows.Close()
	var out []peer.ID
	for rows.Next() {
		var centre []byte
		if err := rows.Scan(&centre); err != nil {
			return nil, fmt.Errorf("central lookup: %w", err)
		}
		out = append(out, peer.ID(centre))
	}
	return out, rows.Err()
}

// query is the central query: the records consent releases to q, with
// the access row durable before they are returned. It returns how many
// records it read and the payloads released.
func (c *centralIndex) query(ctx context.Context, p ledger.Pseudonym, q consent.Request, policy consent.Policy) (read int, released [][]byte, err error) {
	standing := c.contracts[p]
	err = c.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, c.records).QueryContext(ctx, p[:])
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				centre   []byte
				recorded int64
				payload  []byte
			)
			if err := rows.Scan(&centre, &q.Class, &recorded, &payload); err != nil {
				return err
			}
			read++
			q.Recorded = time.UnixMilli(recorded)
			if consent.Decide(standing, policy, q).Permit {
				released = append(released, payload)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.StmtContext(ctx, c.audit).ExecContext(ctx, q.Time.UnixMilli(), q.Centre.String(), q.Role.String(), q.Purpose.String(), p[:], len(released))
		return err
	})
	return read, released, err
}
