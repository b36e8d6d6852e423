package records_test

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/medfed/medfed/node/records"
)

// TestTamperedRowFailsAuthentication alters sealed rows behind the store's
// back; Get must refuse each with an authentication error, not return
// garbage or panic.
func TestTamperedRowFailsAuthentication(t *testing.T) {
	flipLast := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 0x80
		return b
	}
	flipFirst := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[0] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		columns []string
		// value computes a column's new value from the target's and another
		// row's current values.
		value func(target, other []byte) []byte
	}{
		{"ciphertext bit flipped", []string{"ciphertext"}, func(b, _ []byte) []byte { return flipLast(b) }},
		{"ciphertext nonce changed", []string{"ciphertext"}, func(b, _ []byte) []byte { return flipFirst(b) }},
		{"ciphertext truncated", []string{"ciphertext"}, func(b, _ []byte) []byte { return b[:len(b)-1] }},
		{"ciphertext shorter than a nonce", []string{"ciphertext"}, func(b, _ []byte) []byte { return b[:5] }},
		{"ciphertext from another row", []string{"ciphertext"}, func(_, o []byte) []byte { return o }},
		{"wrapped key bit flipped", []string{"wrapped_key"}, func(b, _ []byte) []byte { return flipLast(b) }},
		{"wrapped key truncated", []string{"wrapped_key"}, func(b, _ []byte) []byte { return b[:len(b)-1] }},
		{"wrapped key from another row", []string{"wrapped_key"}, func(_, o []byte) []byte { return o }},
		// Only the ID as additional data stops this one: the moved pair is
		// consistent and would otherwise open to the other payload.
		{"whole sealed row from another row", []string{"wrapped_key", "ciphertext"}, func(_, o []byte) []byte { return o }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, records.Options{})
			payload, otherPayload := []byte("creatinine 82 umol/L"), []byte("creatinine 91 umol/L")
			target, _, _ := put(t, s, payload)
			other, _, _ := put(t, s, otherPayload)

			db := rawDB(t, dir)
			for _, c := range tt.columns {
				setColumn(t, db, c, target, tt.value(column(t, db, c, target), column(t, db, c, other)))
			}

			got, _, err := s.Get(context.Background(), target)
			if err == nil {
				t.Fatalf("Get of a tampered row returned %q and no error", got)
			}
			msg := err.Error()
			if want := "payload " + target.String() + " failed authentication"; !strings.Contains(msg, want) {
				t.Errorf("Get error %q does not contain %q", msg, want)
			}
			if strings.Contains(msg, "creatinine") {
				t.Errorf("Get error %q contains a payload", msg)
			}
			if got, _, err := s.Get(context.Background(), other); err != nil || !bytes.Equal(got, otherPayload) {
				t.Errorf("Get of the untouched row = %q, %v", got, err)
			}
		})
	}
}

func column(t *testing.T, db *sql.DB, name string, id records.ID) []byte {
	t.Helper()
	var b []byte
	// name comes from the test table, never from input.
	if err := db.QueryRow(`SELECT `+name+` FROM sealed WHERE id = ?`, id[:]).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func setColumn(t *testing.T, db *sql.DB, name string, id records.ID, value []byte) {
	t.Helper()
	res, err := db.Exec(`UPDATE sealed SET `+name+` = ? WHERE id = ?`, value, id[:])
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("updated %d rows, want 1", n)
	}
}
