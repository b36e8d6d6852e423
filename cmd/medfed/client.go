package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/smart"
)

func newClientCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Register and revoke the EHRs that reach the centre's FHIR API (SMART Backend Services)",
		Long: `A hospital's EHR reaches the centre's FHIR API as a SMART Backend Services
client: it signs a JWT with its private key (RS384 or ES384) and trades it
at /auth/token for an access token of a few minutes. The centre knows it
by the public keys it was registered with (a JSON Web Key Set), the system
scopes it may ask for and the staff roles it may act for; the registrations
are kept in clients.db in the data directory, each row with its MAC. The
node need not be stopped: a new or revoked client counts at once, and a
revoked client's access tokens stop working.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newClientAddCmd(), newClientListCmd(), newClientRevokeCmd())
	return cmd
}

// openClients opens the client store of a centre that exists.
func openClients(cfg centre.Config) (*smart.Server, error) {
	key, err := rowKey(cfg, smart.ClientsFile)
	if err != nil {
		return nil, err
	}
	return smart.Open(smart.Options{Dir: cfg.Data.Dir, Key: key, Now: clock.Now})
}

// readJWKS reads a JWK Set from path, or standard input for "-".
func readJWKS(cmd *cobra.Command, path string) ([]byte, error) {
	var r io.Reader = cmd.InOrStdin()
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("client add: --jwks: %v", err)
		}
		defer f.Close()
		r = f
	}
	// One byte over smart's limit, so that a set too big is refused as
	// such rather than cut short.
	b, err := io.ReadAll(io.LimitReader(r, smart.MaxJWKSBytes+1))
	if err != nil {
		return nil, usagef("client add: --jwks: %v", err)
	}
	return b, nil
}

func newClientAddCmd() *cobra.Command {
	var (
		jwks, label   string
		scopes, roles []string
	)
	cmd := &cobra.Command{
		Use:   "add --config FILE --jwks JWKS.json --scope SCOPES --role ROLES [--label TEXT]",
		Short: "Register an EHR and print its client ID",
		Long: `add registers a client and prints its client ID alone on standard output
(so that ID=$(medfed client add ...) keeps it): the iss and sub of every
assertion it signs. --jwks is its JSON Web Key Set, public keys only (RSA
of at least 2048 bits or EC P-384, each with a kid and alg RS384 or ES384,
or use "sig"); "-" reads it from standard input. --scope lists the system
scopes it may be granted, space-separated or repeated, such as
"system/Patient.rs system/DocumentReference.crs" (SMART v2) or
system/Patient.read (v1); --role the staff roles it may act for, of
` + strings.Join(smart.Roles, ", ") + `.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&jwks, "jwks", "", "the client's JSON Web Key Set `file` (public keys), - for standard input")
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "the system scopes the client may be granted, space-separated (repeatable)")
	cmd.Flags().StringSliceVar(&roles, "role", nil, "the staff roles the client may act for, comma-separated: "+strings.Join(smart.Roles, ", "))
	cmd.Flags().StringVar(&label, "label", "", "a note for this centre's administrators, such as the hospital and system")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		switch {
		case jwks == "":
			return usagef("client add: --jwks: give the client's JSON Web Key Set file")
		case strings.TrimSpace(strings.Join(scopes, " ")) == "":
			return usagef("client add: --scope: give the system scopes the client may be granted, such as system/Patient.rs")
		case len(roles) == 0:
			return usagef("client add: --role: give the roles the client acts for, of %s", strings.Join(smart.Roles, ", "))
		}
		set, err := readJWKS(cmd, jwks)
		if err != nil {
			return err
		}
		srv, err := openClients(cfg)
		if err != nil {
			return err
		}
		defer srv.Close()
		c, err := srv.Add(cmd.Context(), label, set, scopes, roles)
		if err != nil {
			return err // refused input is of kind invalid: a usage error
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "client %s registered at %s for %s, acting for %s\n", c.ID, cfg.Centre.Name, strings.Join(c.Scopes, " "), strings.Join(c.Roles, ", "))
		_, err = fmt.Fprintln(cmd.OutOrStdout(), c.ID)
		return err
	})
}

// keyIDs lists a registered JWK Set's keys as kid (alg).
func keyIDs(set []byte) string {
	var s struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if json.Unmarshal(set, &s) != nil {
		return "?"
	}
	ids := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		ids[i] = fmt.Sprintf("%s (%s)", k.Kid, k.Alg)
	}
	return strings.Join(ids, ", ")
}

func newClientListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list --config FILE",
		Short: "List the centre's registered clients",
		Args:  cobra.NoArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		srv, err := openClients(cfg)
		if err != nil {
			return err
		}
		defer srv.Close()
		list, err := srv.List(cmd.Context())
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CLIENT ID\tADDED\tREVOKED\tROLES\tSCOPES\tKEYS\tLABEL")
		tampered := 0
		for _, c := range list {
			revoked := "-"
			if !c.Revoked.IsZero() {
				revoked = c.Revoked.Format(time.DateTime)
			}
			id := c.ID
			if c.Tampered {
				id += " (TAMPERED: fails its MAC; medfed check)"
				tampered++
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, c.Created.Format(time.DateTime), revoked,
				strings.Join(c.Roles, ","), strings.Join(c.Scopes, " "), keyIDs(c.JWKS), c.Label)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if tampered > 0 {
			return fmt.Errorf("%d registration(s) changed outside medfed: they authenticate no one; revoke them, and run medfed check", tampered)
		}
		return nil
	})
}

func newClientRevokeCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "revoke --config FILE --id ID",
		Short: "Revoke a client at once: its assertions are refused, its access tokens stop working",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&id, "id", "", "the client ID, 32 hex digits")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if id == "" {
			return usagef("client revoke: --id: give the client ID (medfed client list shows them)")
		}
		srv, err := openClients(cfg)
		if err != nil {
			return err
		}
		defer srv.Close()
		if err := srv.Revoke(cmd.Context(), id); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "client %s revoked\n", id)
		return err
	})
}
