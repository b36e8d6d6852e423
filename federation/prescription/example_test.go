package prescription_test

import (
	"fmt"

	"github.com/medfed/medfed/federation/prescription"
)

// A token is what the patient takes to a pharmacy: the issuing centre,
// the prescription's index on its ledger, and the secret whose hash the
// prescription holds.
func ExampleParseToken() {
	tok, err := prescription.ParseToken("rx1.centre-a.42.000102030405060708090a0b0c0d0e0f")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.Issuer, tok.Index, tok.Secret)
	_, err = prescription.ParseToken("rx1.centre-a.42.not-a-secret")
	fmt.Println(err)
	// Output:
	// centre-a 42 (secret)
	// invalid: malformed prescription token: the secret: want rx1.<issuing centre>.<index>.<32 hex digits>
}

// A medication code is a SNOMED CT identifier, dm+d's included: its last
// digit is a Verhoeff check digit.
func ExampleValidCode() {
	fmt.Println(prescription.ValidCode("39732311000001104"), prescription.ValidCode("39732311000001105"))
	// Output: true false
}
