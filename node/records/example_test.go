package records_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/medfed/medfed/node/records"
)

func ExampleStore() {
	dir, err := os.MkdirTemp("", "records-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := records.Open(dir, records.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	// The centre stores the payload and puts only the commitment on its
	// ledger.
	id, _, commitment, err := s.Put(ctx, []byte("HbA1c 48 mmol/mol"))
	if err != nil {
		log.Fatal(err)
	}

	// To share it, the centre sends payload and opening; the recipient
	// checks them against the commitment it reads from the ledger.
	payload, opening, err := s.Get(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, matches ledger: %v\n", payload, commitment.Verify(opening, payload))

	// On the patient's request the payload is crypto-shredded.
	if err := s.Erase(ctx, id); err != nil {
		log.Fatal(err)
	}
	_, _, err = s.Get(ctx, id)
	fmt.Println(errors.Is(err, records.ErrErased))
	// Output:
	// HbA1c 48 mmol/mol, matches ledger: true
	// true
}
