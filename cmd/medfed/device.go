package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

func newDeviceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Devices that contribute a patient's readings: keygen, register, revoke, list, post",
		Long: `A patient's own device (a glucose meter, a blood pressure monitor, a
pulse oximeter, a scale, an app) has a key of its own and posts batches of
FHIR Observations signed with it to a centre that holds its registration.

keygen makes a device's key. register and revoke sign, with the patient's
key on this machine, the statement that lets the device contribute (its
key, its type, the data classes, from when until when) or that ends it,
and hand it to the running node (--config), or write it (--out) as the
JSON body of POST /v1/devices or /v1/devices/revocations for the patient
to post themselves. list shows the devices registered for a patient at
this centre. post is what a device does: it signs a file of Observations
with the device's key and posts them to a centre's HTTPS API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDeviceKeygenCmd(), newDeviceRegisterCmd(), newDeviceRevokeCmd(), newDeviceListCmd(), newDevicePostCmd())
	return cmd
}

func newDeviceKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE.key",
		Short: "Make a device's signing key",
		Long: `keygen writes a new Ed25519 key to FILE.key (PKCS #8 PEM, mode 0600) and
its public key, 64 hex digits, to FILE.pub beside it (it refuses to
overwrite either), and prints the public key and the device's ID, the
first 16 bytes of a hash of the key: the ID ledgers name it by. The key
stays on the device; the patient registers FILE.pub.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("device keygen: --out: give the file to write the key to")
			}
			k, file, err := consent.GenerateKey()
			if err != nil {
				return err
			}
			pub := k.Public().(ed25519.PublicKey)
			pubFile := strings.TrimSuffix(out, ".key") + ".pub"
			if pubFile == out {
				pubFile = out + ".pub"
			}
			if _, err := os.Stat(pubFile); err == nil {
				return fmt.Errorf("device keygen: %s exists", pubFile)
			}
			if err := writeSecret(out, file); err != nil {
				return fmt.Errorf("device keygen: %w", err)
			}
			if err := os.WriteFile(pubFile, []byte(consent.FormatPublicKey(pub)+"\n"), 0o644); err != nil {
				return fmt.Errorf("device keygen: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "public key %s (%s)\ndevice ID  %s\n", consent.FormatPublicKey(pub), pubFile, device.ID(pub))
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the key `file` to create (its public key goes to the same name with .pub)")
	return cmd
}

// readDevicePublic reads a device's public key: a file holding it in
// hex (keygen's .pub) or its key file, or the 64 hex digits themselves.
func readDevicePublic(s string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(s)
	switch {
	case err == nil:
		if k, kerr := consent.ParseKey(b); kerr == nil {
			return k.Public().(ed25519.PublicKey), nil
		}
		s = strings.TrimSpace(string(b))
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	k, err := consent.ParsePublicKey(s)
	if err != nil {
		return nil, fmt.Errorf("a device's public key is a file holding 64 hex digits (medfed device keygen's .pub), or the digits themselves")
	}
	return k, nil
}

// deviceAddress is what a patient's statement names: the federation and
// the centre of cfg, as its running node has them.
func deviceAddress(cmd *cobra.Command, cfg centre.Config) (string, peer.ID, error) {
	st, err := admin.Dial(cfg.Data.Dir).Status(cmd.Context())
	if err != nil {
		return "", "", err
	}
	return st.Federation, st.Self, nil
}

func nonce() [16]byte {
	var n [16]byte
	rand.Read(n[:])
	return n
}

func newDeviceRegisterCmd() *cobra.Command {
	var (
		pf                                   patientFlags
		deviceKey, typ, classes, from, until string
		out                                  string
		asJSON                               bool
	)
	cmd := &cobra.Command{
		Use:   "register --config FILE --key FILE --pseudonym P --device-key FILE.pub --type TYPE --classes C,... --until T",
		Short: "Sign and submit a patient's registration of a device at this centre",
		Long: `register signs, with the patient's key (attested for them: medfed patient
attest), the statement that lets the device whose public key is in
FILE.pub post readings about them to this centre: its type (` + strings.Join(device.Types(), ", ") + `),
the data classes it may contribute (of this centre's records.classes:
readings of vital signs and glucose are recorded as observation, HbA1c
and INR as lab-result), from --from (default now) until --until (RFC 3339
or a date; at most two years). The centre puts the device's ID (never its
key or type) on its ledger. A later registration of the device replaces
this one.

With --out, the statement is signed and written to FILE as the JSON body
of POST /v1/devices, not submitted.`,
		Args: cobra.NoArgs,
	}
	pf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&deviceKey, "device-key", "", "the device's public key: medfed device keygen's .pub `file`, or 64 hex digits")
	f.StringVar(&typ, "type", "", "what the device is: "+strings.Join(device.Types(), ", "))
	f.StringVar(&classes, "classes", "", "the data classes it may contribute, comma-separated (e.g. observation)")
	f.StringVar(&from, "from", "", "when its term begins (RFC 3339 or a date; default now)")
	f.StringVar(&until, "until", "", "when its term ends (RFC 3339 or a date)")
	f.StringVar(&out, "out", "", outHelp("registration"))
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if deviceKey == "" || typ == "" || classes == "" || until == "" {
			return usagef("device register: --device-key, --type, --classes and --until are required")
		}
		dk, err := readDevicePublic(deviceKey)
		if err != nil {
			return usagef("device register: --device-key: %v", err)
		}
		t, err := device.ParseType(typ)
		if err != nil {
			return usagef("device register: --type: %v", err)
		}
		cs := strings.Split(classes, ",")
		slices.Sort(cs)
		cs = slices.Compact(cs)
		start, end := now(), time.Time{}
		if from != "" {
			if start, err = consent.ParseTime(from); err != nil {
				return usagef("device register: --from: %v", err)
			}
		}
		if end, err = consent.ParseTime(until); err != nil {
			return usagef("device register: --until: %v", err)
		}
		k, p, _, err := pf.load(cmd, cfg)
		if err != nil {
			return err
		}
		fed, self, err := deviceAddress(cmd, cfg)
		if err != nil {
			return err
		}
		statement, err := device.Registration{Federation: fed, Centre: self, Subject: p, Device: dk, Type: t, Classes: cs,
			NotBefore: start.UTC().Truncate(time.Second), Expires: end.UTC().Truncate(time.Second), Nonce: nonce(), Time: time.Now().UTC()}.Sign(k)
		if err != nil {
			return usagef("device register: %v", err)
		}
		if out != "" {
			return writeBody(cmd, out, api.DeviceRegistrationBody{Registration: statement}, "device registration", "/v1/devices")
		}
		v, err := admin.Dial(cfg.Data.Dir).RegisterDevice(cmd.Context(), statement)
		if err != nil {
			return err
		}
		return printResult(cmd, asJSON, v, func(w io.Writer) error {
			fmt.Fprintf(w, "device %s registered: ledger entry %d\n", v.Device, v.Entry)
			printDevice(w, v)
			return nil
		})
	})
}

func newDeviceRevokeCmd() *cobra.Command {
	var (
		pf             patientFlags
		deviceKey, out string
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "revoke --config FILE --key FILE --pseudonym P --device-key FILE.pub",
		Short: "Sign and submit a patient's revocation of a device at this centre",
		Long: `revoke signs, with the patient's key, the statement that ends every
registration of the device the patient signed before it, and hands it to
the running node: from its answer on, the device's batches are refused;
the revocation goes on the centre's ledger. What the device added stays
the patient's records.

With --out, the statement is signed and written to FILE as the JSON body
of POST /v1/devices/revocations, not submitted.`,
		Args: cobra.NoArgs,
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&deviceKey, "device-key", "", "the device's public key: medfed device keygen's .pub `file`, or 64 hex digits")
	cmd.Flags().StringVar(&out, "out", "", outHelp("revocation"))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if deviceKey == "" {
			return usagef("device revoke: --device-key is required")
		}
		dk, err := readDevicePublic(deviceKey)
		if err != nil {
			return usagef("device revoke: --device-key: %v", err)
		}
		k, p, _, err := pf.load(cmd, cfg)
		if err != nil {
			return err
		}
		fed, self, err := deviceAddress(cmd, cfg)
		if err != nil {
			return err
		}
		statement, err := device.Revocation{Federation: fed, Centre: self, Subject: p, Device: dk, Nonce: nonce(), Time: time.Now().UTC()}.Sign(k)
		if err != nil {
			return usagef("device revoke: %v", err)
		}
		if out != "" {
			return writeBody(cmd, out, api.DeviceRevocationBody{Revocation: statement}, "device revocation", "/v1/devices/revocations")
		}
		v, err := admin.Dial(cfg.Data.Dir).RevokeDevice(cmd.Context(), statement)
		if err != nil {
			return err
		}
		return printResult(cmd, asJSON, v, func(w io.Writer) error {
			fmt.Fprintf(w, "device %s revoked: ledger entry %d\n", v.Device, v.RevokedEntry)
			printDevice(w, v)
			return nil
		})
	})
}

func newDeviceListCmd() *cobra.Command {
	var (
		pseudonym string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "list --config FILE --pseudonym P",
		Short: "List the devices registered for a patient at this centre",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if _, err := ledger.ParsePseudonym(pseudonym); err != nil {
			return usagef("device list: --pseudonym: %v", err)
		}
		var l api.DeviceList
		if err := admin.Dial(cfg.Data.Dir).Get(cmd.Context(), "/v1/patients/"+url.PathEscape(pseudonym)+"/devices", &l); err != nil {
			return err
		}
		return printResult(cmd, asJSON, l, func(w io.Writer) error {
			if len(l.Devices) == 0 {
				fmt.Fprintln(w, "no device registered for the patient here")
			}
			for _, v := range l.Devices {
				fmt.Fprintf(w, "device %s\n", v.Device)
				printDevice(w, v)
			}
			return nil
		})
	})
}

func printDevice(w io.Writer, v api.DeviceRegistration) {
	fmt.Fprintf(w, "  type      %s\n  classes   %s\n  term      %s to %s\n  state     %s\n", v.Type, strings.Join(v.Classes, ", "),
		v.NotBefore.Format(time.RFC3339), v.Expires.Format(time.RFC3339), v.State)
	if !v.Revoked.IsZero() {
		fmt.Fprintf(w, "  revoked   %s (ledger entry %d)\n", v.Revoked.Format(time.RFC3339), v.RevokedEntry)
	}
}

func newDevicePostCmd() *cobra.Command {
	var (
		keyFile, pseudonym, file, base, caFile string
		asJSON                                 bool
	)
	cmd := &cobra.Command{
		Use:   "post --device-key FILE.key --pseudonym P --file READINGS --url https://HOST:PORT [--cacert api.crt]",
		Short: "Post a file of readings as a device does",
		Long: `post reads FHIR R4 Observations from READINGS (a JSON array of them, a
Bundle whose entries hold them, or one; "-" reads standard input), signs
them in batches of up to 100 with the device's key, and posts each batch
to the centre's API (POST /v1/devices/readings), which stores each
reading as it came, as a record of the patient written by the device. It
asks the centre first what a batch names (GET /v1/devices/address).
--cacert pins the centre's certificate (its api.crt) and trusts nothing
else; without it, the system's authorities.

A batch refused is named with why, and the batches after it are not
sent: a forged or unregistered device, a revoked one, one outside its
term, a class it is not registered for, a malformed Observation, or the
device's rate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" || file == "" || base == "" {
				return usagef("device post: --device-key, --file and --url are required")
			}
			p, err := ledger.ParsePseudonym(pseudonym)
			if err != nil {
				return usagef("device post: --pseudonym: %v", err)
			}
			kb, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			k, err := consent.ParseKey(kb)
			if err != nil {
				return usagef("device post: %s: %v", keyFile, err)
			}
			var raw []byte
			if file == "-" {
				raw, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
			} else {
				raw, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			readings, err := splitReadings(raw)
			if err != nil {
				return usagef("device post: %s: %v", file, err)
			}
			c, err := deviceClient(caFile)
			if err != nil {
				return usagef("device post: --cacert: %v", err)
			}
			base = strings.TrimSuffix(base, "/")
			var addr api.DeviceAddress
			if err := c.do(cmd.Context(), http.MethodGet, base+"/v1/devices/address", nil, &addr); err != nil {
				return fmt.Errorf("device post: asking the centre what a batch names: %w", err)
			}
			centreID, err := peer.Decode(addr.Centre)
			if err != nil {
				return fmt.Errorf("device post: the centre's peer ID: %w", err)
			}
			var stored []api.ReadingsStored
			for start := 0; start < len(readings); start += device.MaxReadings {
				part := readings[start:min(start+device.MaxReadings, len(readings))]
				batch, err := device.Batch{Federation: addr.Federation, Centre: centreID, Subject: p, Nonce: nonce(), Time: time.Now().UTC(), Readings: part}.Sign(k)
				if err != nil {
					return usagef("device post: readings %d to %d: %v", start+1, start+len(part), err)
				}
				var res api.ReadingsStored
				if err := c.do(cmd.Context(), http.MethodPost, base+"/v1/devices/readings", api.ReadingsBody{Batch: batch}, &res); err != nil {
					return fmt.Errorf("device post: readings %d to %d: %w", start+1, start+len(part), err)
				}
				stored = append(stored, res)
			}
			return printResult(cmd, asJSON, stored, func(w io.Writer) error {
				for _, s := range stored {
					fmt.Fprintf(w, "stored %d reading(s) of device %s at %s: ledger entries %d to %d\n", s.Count, s.Device, addr.Name, s.First, s.First+int64(s.Count)-1)
					if s.AnnounceError != "" {
						fmt.Fprintf(w, "  not yet announced in the directory (%s): the node announces it again at its next start\n", s.AnnounceError)
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "device-key", "", "the device's key `file` (medfed device keygen)")
	f.StringVar(&pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	f.StringVar(&file, "file", "", "the readings: a JSON `file` of Observations (- for standard input)")
	f.StringVar(&base, "url", "", "the centre's API, https://HOST:PORT")
	f.StringVar(&caFile, "cacert", "", "the centre's certificate `file` (api.crt) to trust, and nothing else")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// splitReadings returns each Observation of a readings file, compacted:
// the bytes the device signs and the centre stores.
func splitReadings(raw []byte) ([][]byte, error) {
	raw = bytes.TrimSpace(raw)
	var items []json.RawMessage
	switch {
	case bytes.HasPrefix(raw, []byte("[")):
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
	default:
		var head struct {
			ResourceType string `json:"resourceType"`
			Entry        []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, err
		}
		if head.ResourceType != "Bundle" {
			items = []json.RawMessage{raw}
			break
		}
		for _, e := range head.Entry {
			items = append(items, e.Resource)
		}
	}
	if len(items) == 0 {
		return nil, errors.New("no Observation in it")
	}
	out := make([][]byte, len(items))
	for i, it := range items {
		var b bytes.Buffer
		if err := json.Compact(&b, it); err != nil {
			return nil, fmt.Errorf("reading %d: %v", i+1, err)
		}
		out[i] = b.Bytes()
	}
	return out, nil
}

// httpClient talks to a centre's API as a device does.
type httpClient struct{ c *http.Client }

func deviceClient(caFile string) (httpClient, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		tc, err := api.PinnedClient(caFile)
		if err != nil {
			return httpClient{}, err
		}
		t.TLSClientConfig = tc
	}
	return httpClient{&http.Client{Transport: t, Timeout: 2 * time.Minute}}, nil
}

// do sends body (as JSON, when not nil) and reads the answer into out;
// an error answer comes back as an error of the kind the centre said.
func (h httpClient) do(ctx context.Context, method, u string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return api.ErrorOf(resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}
