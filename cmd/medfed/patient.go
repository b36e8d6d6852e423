package main

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/pseudonym"
)

func newPatientCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "patient",
		Short: "Patient identifiers, pseudonyms and keys; a patient's own view and erasure",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPatientPseudonymCmd(), newPatientKeygenCmd(), newPatientAttestCmd(), newPatientViewCmd(), newPatientEraseCmd(), newPatientHoldersCmd())
	return cmd
}

// maxStdinIdentifiers bounds one run of patient pseudonym --stdin.
const maxStdinIdentifiers = 1 << 20

func newPatientPseudonymCmd() *cobra.Command {
	var (
		nhs, ids []string
		stdin    bool
	)
	cmd := &cobra.Command{
		Use:   "pseudonym --config FILE (--nhs NUMBER | --id SYSTEM|VALUE | --stdin)...",
		Short: "Print the federation pseudonym of patient identifiers (registrar use; the node must be running)",
		Long: `pseudonym prints the federation pseudonym of each identifier, one per line:
NHS numbers (--nhs) first, then --id identifiers, then those read from
standard input, each in the order given. The running node computes them
with the federation's holders of the pseudonym key; the identifiers never
leave this centre.

An identifier is checked before anything is sent (an NHS number's check
digit, for example); an invalid one is refused without repeating it.
Arguments are visible to other users of this machine: on a shared machine
prefer --stdin, one "system|value" (or bare NHS number) per line.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringArrayVar(&nhs, "nhs", nil, "an NHS number (spaces and dashes allowed; repeat)")
	cmd.Flags().StringArrayVar(&ids, "id", nil, "an identifier as SYSTEM|VALUE, SYSTEM a configured name or URI (repeat)")
	cmd.Flags().BoolVar(&stdin, "stdin", false, "also read identifiers from standard input, one per line")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		rules, err := cfg.Pseudonym.Rules()
		if err != nil {
			return err
		}
		var canonical []string
		add := func(what string, id pseudonym.Identifier, err error) error {
			if err != nil {
				return usagef("patient pseudonym: %s: %v", what, err)
			}
			canonical = append(canonical, id.System+"|"+id.Value)
			return nil
		}
		for i, v := range nhs {
			id, err := pseudonym.ParseNHS(v)
			if err := add(fmt.Sprintf("--nhs %d", i+1), id, err); err != nil {
				return err
			}
		}
		for i, v := range ids {
			id, err := rules.Parse(v)
			if err := add(fmt.Sprintf("--id %d", i+1), id, err); err != nil {
				return err
			}
		}
		if stdin {
			if err := readIdentifiers(cmd.InOrStdin(), rules, add); err != nil {
				return err
			}
		}
		if len(canonical) == 0 {
			return usagef("patient pseudonym: give --nhs, --id or --stdin")
		}
		sock := admin.Dial(cfg.Data.Dir)
		out := &stickyWriter{w: cmd.OutOrStdout()}
		for start := 0; start < len(canonical); start += centre.MaxPseudonymRequest {
			ps, err := sock.Pseudonyms(cmd.Context(), canonical[start:min(start+centre.MaxPseudonymRequest, len(canonical))])
			if err != nil {
				return err
			}
			for _, p := range ps {
				fmt.Fprintln(out, p)
			}
		}
		return out.err
	})
}

// readIdentifiers reads one identifier per line: SYSTEM|VALUE, or a bare
// NHS number. Blank lines are skipped.
func readIdentifiers(r io.Reader, rules *pseudonym.Rules, add func(string, pseudonym.Identifier, error) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	line, n := 0, 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if n++; n > maxStdinIdentifiers {
			return usagef("patient pseudonym: more than %d identifiers on standard input", maxStdinIdentifiers)
		}
		var id pseudonym.Identifier
		var err error
		if strings.Contains(s, "|") {
			id, err = rules.Parse(s)
		} else {
			id, err = pseudonym.ParseNHS(s)
		}
		if err := add(fmt.Sprintf("standard input line %d", line), id, err); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return usagef("patient pseudonym: standard input line %d is too long", line+1)
		}
		return err
	}
	return nil
}

func newPatientKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make a patient's signing key",
		Long: `keygen writes a new Ed25519 key to FILE (PKCS #8 PEM, mode 0600; it
refuses to overwrite a file) and prints its public key, 64 hex digits,
for a registrar to attest with medfed patient attest. The patient signs
their consent with it (medfed consent grant); keep it as safe as a
house key: whoever holds it can change the patient's consent until a
registrar attests a new key as replacing a compromised one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("patient keygen: --out: give the file to write the key to")
			}
			k, file, err := consent.GenerateKey()
			if err != nil {
				return err
			}
			if err := writeSecret(out, file); err != nil {
				return fmt.Errorf("patient keygen: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", consent.FormatPublicKey(k.Public().(ed25519.PublicKey)))
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the key `file` to create")
	return cmd
}

func newPatientAttestCmd() *cobra.Command {
	var req admin.AttestRequest
	cmd := &cobra.Command{
		Use:   "attest --config FILE --pseudonym P --public-key KEY [--compromised]",
		Short: "Attest that a key is a patient's (registrar use, after checking identity in person)",
		Long: `attest has this centre sign that KEY (64 hex digits, printed by medfed
patient keygen) belongs to the patient with pseudonym P, and delivers the
attestation to every centre holding the patient's records. Check the
patient's identity in person first: the key will speak for the patient.

A new attestation supersedes the patient's earlier keys: what they signed
before it still counts, what they sign after does not. With
--compromised (a lost or stolen key), nothing the earlier keys signed
counts any more, and the patient's consent stands withdrawn until they
sign a contract with the new key.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().StringVar(&req.Key, "public-key", "", "the patient's public key, 64 hex digits")
	cmd.Flags().BoolVar(&req.Compromised, "compromised", false, "the keys it replaces are lost or stolen")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		d, err := admin.Dial(cfg.Data.Dir).Attest(cmd.Context(), req)
		if err != nil {
			return err
		}
		return reportDelivery(cmd, "attestation", d)
	})
}

func newPatientHoldersCmd() *cobra.Command {
	var pseudonym string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "holders --config FILE --pseudonym P",
		Short: "List the centres holding a patient's records (the node must be running)",
		Long: `holders lists the centres that hold records of the patient with
pseudonym P, as the centre's queries and consent find them: the
directory's holders, and this centre when it holds records it has not
announced yet. It prints one holder per line, name then peer ID, and
exits 1 when the list may be incomplete.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		var res api.DirectoryLookup
		if err := admin.Dial(cfg.Data.Dir).Get(cmd.Context(), "/v1/patients/"+url.PathEscape(pseudonym)+"/holders", &res); err != nil {
			return err
		}
		if err := printResult(cmd, asJSON, res, func(w io.Writer) error { printLookup(w, res); return nil }); err != nil {
			return err
		}
		if !res.Complete {
			return fmt.Errorf("patient holders: %s", res.Problem)
		}
		return nil
	})
}
