package main

import (
	"cmp"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
)

func newStaffCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "staff",
		Short: "Issue and revoke staff credentials for the centre's HTTP API",
		Long: `Staff reach the centre's HTTP API with a bearer token of one role:
` + strings.Join(api.Roles, ", ") + `. Each staff member has a stable
pseudonymous staff ID, the one the ledgers record; the token itself is
printed once and only its SHA-256 is kept (staff.db in the data directory).
A token works for its lifetime (api.token-lifetime, 12h unless configured,
or --lifetime; at most 90 days), then until an administrator renews it.
The node need not be stopped: a new, renewed or revoked credential counts
at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newStaffAddCmd(), newStaffListCmd(), newStaffRenewCmd(), newStaffRevokeCmd())
	return cmd
}

// openStaff opens the staff store of a centre that exists.
func openStaff(cfg centre.Config) (*api.StaffStore, error) {
	key, err := rowKey(cfg, api.StaffFile)
	if err != nil {
		return nil, err
	}
	return api.OpenStaff(cfg.Data.Dir, key)
}

// rowKey is the row key of the centre's file named file (centre.RowKey),
// for a centre that exists.
func rowKey(cfg centre.Config, file string) ([]byte, error) {
	key, err := centre.RowKey(cfg.Data.Dir, file)
	if err != nil {
		return nil, fmt.Errorf("%s is not a centre's data directory (medfed federation request or init creates one): %w", cfg.Data.Dir, err)
	}
	return key, nil
}

func newStaffAddCmd() *cobra.Command {
	var role, label string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "add --config FILE --role ROLE [--label TEXT] [--lifetime D]",
		Short: "Add a staff member and print their bearer token (once)",
		Long: `add issues a credential and prints its bearer token alone on standard
output (so that TOKEN=$(medfed staff add ...) keeps it), and the staff ID
on standard error. Keep the token secret: whoever holds it acts as this
staff member.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&role, "role", "", "the role: "+strings.Join(api.Roles, ", "))
	cmd.Flags().StringVar(&label, "label", "", "a note for this centre's administrators (never on a ledger)")
	cmd.Flags().DurationVar(&lifetime, "lifetime", 0, "how long the token works before it must be renewed (default: api.token-lifetime, 12h unless configured)")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if !api.ValidRole(role) {
			return usagef("staff add: --role: give one of %s", strings.Join(api.Roles, ", "))
		}
		st, err := openStaff(cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		token, s, err := st.AddFor(cmd.Context(), role, label, cmp.Or(lifetime, cfg.API.TokenLifetime))
		if err != nil {
			return usagef("%v", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "staff %s (%s) added at %s until %s; the token below is shown only now\n", s.ID, s.Role, cfg.Centre.Name, s.Expires.Format(time.DateTime))
		_, err = fmt.Fprintln(cmd.OutOrStdout(), token)
		return err
	})
}

func newStaffListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list --config FILE",
		Short: "List the centre's staff credentials",
		Args:  cobra.NoArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		st, err := openStaff(cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		list, err := st.List(cmd.Context())
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "STAFF ID\tROLE\tADDED\tEXPIRES\tREVOKED\tLABEL")
		tampered := 0
		for _, s := range list {
			revoked := "-"
			if !s.Revoked.IsZero() {
				revoked = s.Revoked.Format(time.DateTime)
			}
			id := s.ID
			if s.Tampered {
				id += " (TAMPERED: fails its MAC; medfed check)"
				tampered++
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", id, s.Role, s.Created.Format(time.DateTime), s.Expires.Format(time.DateTime), revoked, s.Label)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if tampered > 0 {
			return fmt.Errorf("%d credential(s) changed outside medfed: they authenticate no one; revoke them, and run medfed check", tampered)
		}
		return nil
	})
}

func newStaffRenewCmd() *cobra.Command {
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "renew --config FILE STAFF-ID [--lifetime D]",
		Short: "Let a staff member's token work for another lifetime, from now",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().DurationVar(&lifetime, "lifetime", 0, "how long the token works from now (default: api.token-lifetime)")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		st, err := openStaff(cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		s, err := st.Renew(cmd.Context(), args[0], cmp.Or(lifetime, cfg.API.TokenLifetime))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "staff %s renewed until %s\n", s.ID, s.Expires.Format(time.DateTime))
		return err
	})
}

func newStaffRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke --config FILE STAFF-ID",
		Short: "Revoke a staff member's credential at once",
		Args:  cobra.ExactArgs(1),
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		st, err := openStaff(cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.Revoke(cmd.Context(), args[0]); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "staff %s revoked\n", args[0])
		return err
	})
}
