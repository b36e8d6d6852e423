package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/atna"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/metrics"
	"github.com/medfed/medfed/node/smart"
	"github.com/medfed/medfed/node/tracing"
	"github.com/medfed/medfed/node/web"
)

// configCmd gives cmd a --config flag and runs run with the centre's
// configuration loaded from it (and the environment and flags).
func configCmd(cmd *cobra.Command, run func(cmd *cobra.Command, cfg centre.Config, args []string) error) *cobra.Command {
	var path string
	cmd.Flags().StringVar(&path, "config", "", "the centre's YAML configuration `file`")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := loadConfig(cmd, path)
		if err != nil {
			return err
		}
		return run(cmd, cfg, args)
	}
	return cmd
}

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node --config FILE",
		Short: "Run a centre until interrupted (SIGINT or SIGTERM)",
		Long: `node runs every service of the centre: its libp2p host (membership,
witnessing, the directory, pseudonyms, consent, queries, patients'
requests), the admin socket the medfed commands use, and the HTTP API on
api.listen (/healthz, /readyz, /openapi.json and the /v1 routes). Logs are
structured (log.format text or json) on standard error. SIGINT or SIGTERM
stops it gracefully: the API finishes the requests under way (up to 10 s),
then the node closes its services and its ledger.`,
		Args: cobra.NoArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		return runNode(cmd, cfg)
	})
}

// runNode runs the centre's node, its API and its admin socket until the
// command's context ends (a signal): the API and the socket stop first, so
// that no request finds the node closed under it.
func runNode(cmd *cobra.Command, cfg centre.Config) error {
	log := newLogger(cmd, cfg.Log)
	// The API's port first: a port in use is the commonest start-up
	// failure, and it is better found before the node opens anything.
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w (is another node or program using it?)", cfg.API.Listen, err)
	}
	defer ln.Close()
	var (
		metricsLn net.Listener
		registry  *prometheus.Registry
		startOpts []centre.Option
	)
	if cfg.Metrics.Enabled {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen %s: %w (is another node or program using it?)", cfg.Metrics.Listen, err)
		}
		defer metricsLn.Close()
		registry = prometheus.NewRegistry()
		startOpts = append(startOpts, centre.WithMetrics(registry))
	}
	info, _ := debug.ReadBuildInfo()
	buildVersion, buildRevision := buildLabels(version, info)
	if cfg.Tracing.Endpoint != "" {
		tp, err := tracing.New(cfg.Tracing, cfg.Centre.Name, buildVersion)
		if err != nil {
			return err
		}
		defer func() {
			// What the batcher holds is sent before the process ends.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(ctx); err != nil {
				log.Warn("traces not all sent", "err", err)
			}
		}()
		startOpts = append(startOpts, centre.WithTracing(tp))
		log.Info("tracing queries", "centre", cfg.Centre.Name, "sample_ratio", cfg.Tracing.SampleRatio)
	}
	n, err := centre.Start(cmd.Context(), cfg, log, startOpts...)
	if err != nil {
		return err
	}
	// After the node: it has checked that the data directory is a centre's.
	staff, err := api.OpenStaff(cfg.Data.Dir, n.Centre.RowKey(api.StaffFile))
	if err != nil {
		return errors.Join(err, n.Close())
	}
	defer staff.Close()
	clients, err := smart.Open(smart.Options{Dir: cfg.Data.Dir, Key: n.Centre.RowKey(smart.ClientsFile), Now: clock.Now, Staff: staff.Role,
		Logger: log.With("centre", cfg.Centre.Name)})
	if err != nil {
		return errors.Join(err, n.Close())
	}
	defer clients.Close()
	scheme, pin := "http", "plain HTTP, on a loopback address only"
	var (
		hosts func(string) bool // plain HTTP is served on loopback alone: any Host there
		leaf  *x509.Certificate // the API's certificate, nil for plain HTTP
	)
	if !cfg.API.TLS.Plain {
		cert, err := api.ServerCertificate(cfg.Data.Dir, cfg.API, time.Now())
		if err != nil {
			return errors.Join(err, n.Close())
		}
		if cert.Made {
			log.Info("api certificate made", "centre", cfg.Centre.Name, "file", cert.File, "sha256", cert.Fingerprint)
		}
		hosts = cert.Serves(ln.Addr().(*net.TCPAddr).Port)
		leaf = cert.TLS.Certificates[0].Leaf
		ln = tls.NewListener(ln, cert.TLS)
		scheme, pin = "https", fmt.Sprintf("clients pin %s, sha256 %s", cert.File, cert.Fingerprint)
	}
	pages, err := web.New(web.Options{Node: n, Staff: staff, Logger: log.With("centre", cfg.Centre.Name)})
	if err != nil {
		return errors.Join(err, n.Close())
	}
	mounts := map[string]http.Handler{}
	for _, p := range web.Paths {
		mounts[p] = pages
	}
	srv, err := api.New(api.Options{Node: n, Staff: staff, SMART: clients, Hosts: hosts, Pages: mounts, Logger: log.With("centre", cfg.Centre.Name)})
	if err != nil {
		return errors.Join(err, n.Close())
	}
	sock, err := admin.Listen(cfg.Data.Dir)
	if err != nil {
		return errors.Join(err, n.Close())
	}
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(cmd.Context()))
	defer stopNode()
	adminCtx, stopAdmin := context.WithCancel(nodeCtx)
	defer stopAdmin()
	ran, adminDone, metricsDone, auditDone := make(chan error, 1), make(chan error, 1), make(chan error, 1), make(chan error, 1)
	var audit *atna.Exporter
	if cfg.Audit.Collector == "" {
		auditDone <- nil
	} else {
		if audit, err = newAuditExporter(cfg, n, log); err != nil {
			return errors.Join(err, n.Close())
		}
		go func() { auditDone <- audit.Run(adminCtx) }()
		log.Info("audit export", "centre", cfg.Centre.Name, "collector", cfg.Audit.Collector, "format", cfg.Audit.Format)
	}
	if metricsLn == nil {
		metricsDone <- nil
	} else {
		mo := metrics.Options{Source: n, Registry: registry, Certificate: func() *x509.Certificate { return leaf }, Throttled: srv.Throttled,
			Version: buildVersion, Revision: buildRevision, Logger: log.With("centre", cfg.Centre.Name)}
		if audit != nil {
			mo.Audit = func() metrics.Audit {
				st := audit.Status()
				return metrics.Audit{Backlog: st.Backlog, Exported: st.Exported, Connected: st.Connected, Failures: st.Failures, LastDelivery: st.LastDelivery}
			}
		}
		m, err := metrics.New(mo)
		if err != nil {
			return errors.Join(err, n.Close())
		}
		go func() { metricsDone <- m.Serve(adminCtx, metricsLn) }()
		log.Info("metrics listening", "centre", cfg.Centre.Name, "addr", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	go func() { ran <- n.Run(nodeCtx) }()
	go func() {
		adminDone <- admin.New(n, srv.Operator(), log.With("centre", cfg.Centre.Name)).Serve(adminCtx, sock)
	}()
	log.Info("api listening", "centre", cfg.Centre.Name, "addr", scheme+"://"+ln.Addr().String())
	fmt.Fprintf(cmd.OutOrStdout(), "centre %s running as %s on %v; API on %s://%s (%s)\n", cfg.Centre.Name, n.Centre.ID(), n.Host.Addrs(), scheme, ln.Addr(), pin)
	serveErr := srv.Serve(cmd.Context(), ln)
	stopAdmin()
	adminErr, metricsErr, auditErr := <-adminDone, <-metricsDone, <-auditDone
	stopNode()
	return errors.Join(serveErr, adminErr, metricsErr, auditErr, <-ran)
}

func newLogger(cmd *cobra.Command, cfg centre.LogConfig) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo // Validate has refused anything else
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts))
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts))
}

func newFederationCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "federation",
		Short: "Found, join and change a federation",
		Long: `A federation is founded with files exchanged out of band:

  every founder:     medfed federation request --config FILE --out NAME-request.txt
  the first founder: medfed federation init --config FILE --member B-request.txt ... --out charter.txt
  each other one:    medfed federation sign charter.txt --config FILE
  every founder:     medfed federation install charter.txt --config FILE

then, once their nodes run, the founders generate the pseudonym key
together, nobody ever holding it, each on its own node and within the
first round's wait (5 minutes) of the others:

  every founder:     medfed federation keygen --committee A,B,... --threshold T --config FILE

The version of the charter that lists the key is adopted once the council
approved it (the founders that took part approve it as the ceremony ends).
"medfed federation reshare" moves the same key to a new committee later.

A centre joins a running federation by sending its request to the members,
who each run "medfed federation approve REQUEST" against their running node;
once a quorum approved, it runs "medfed federation join --peer ADDR".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newFedRequestCmd(), newFedInitCmd(), newFedSignCmd(), newFedInstallCmd(),
		newFedJoinCmd(), newFedApproveCmd(), newFedRemoveCmd(), newFedKeygenCmd(), newFedReshareCmd(), newFedCouncilCmd(), newFedApproveDraftCmd(), newFedBlockCmd(), newFedUnblockCmd(), newFedStatusCmd(), newFedCharterCmd(), newFedPSKCmd())
	return cmd
}

// withCentre opens the centre offline (its node must not be running), for
// commands that need its key.
func withCentre(ctx context.Context, cfg centre.Config, f func(*centre.Centre) error) error {
	c, err := centre.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	return errors.Join(f(c), c.Close())
}

// writeOut writes b to path (refusing to overwrite unless allowed), or to
// stdout when path is "-".
func writeOut(cmd *cobra.Command, path string, b []byte, overwrite bool) error {
	if path == "-" {
		_, err := cmd.OutOrStdout().Write(b)
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if overwrite {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readIn(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, usageError{err}
	}
	if fi.Size() > 1<<20 {
		return nil, usagef("%s: %d bytes is too large for a charter or request", path, fi.Size())
	}
	return os.ReadFile(path)
}

func newFedRequestCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "request --config FILE [--out FILE]",
		Short: "Write this centre's signed join request (who it is, where it listens)",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&out, "out", "-", "where to write the request (- for stdout)")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		return withCentre(cmd.Context(), cfg, func(c *centre.Centre) error {
			req, err := c.JoinRequest(cfg.P2P.Listen)
			if err != nil {
				return err
			}
			return writeOut(cmd, out, req, false)
		})
	})
}

func newFedInitCmd() *cobra.Command {
	var (
		out, sharesOut string
		members        []string
		dealKey        bool
		policy         = federation.DefaultPolicy(1) // the quorums are set once the founders are known
	)
	cmd := &cobra.Command{
		Use:   "init --config FILE --member REQUEST... --out FILE",
		Short: "Draft and sign version 1 of a charter (the first founder)",
		Long: `init drafts version 1 of the federation's charter, listing this centre and
the founders whose join requests are given, and signs it. Quorums default to
a majority of the founders.

The charter lists no pseudonym key: once their nodes run, the founders
generate it together with "medfed federation keygen", a distributed key
generation in which each founder deals a secret and the key is their sum,
so that nobody ever holds it.

--deal instead has this centre deal the key now, as medfed did before key
generation: it draws the key, splits it into one share per founder (any
oprf-threshold of them can compute a pseudonym, fewer cannot), lists the
public shares in the charter and writes each share sealed to its founder's
centre key to the shares file. It trusts this one founder: it held the key
and could have kept a copy. A federation founded so can move to shares
nobody dealt with "medfed federation reshare".`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&out, "out", "-", "where to write the draft charter (- for stdout)")
	cmd.Flags().BoolVar(&dealKey, "deal", false, "deal the pseudonym key from this centre (trusts this founder with the key; without it the founders generate it together with federation keygen)")
	cmd.Flags().StringVar(&sharesOut, "shares", "", "with --deal: where to write the sealed key shares (default: the --out file with .shares appended)")
	cmd.Flags().StringArrayVar(&members, "member", nil, "another founder's join request `file` (repeat)")
	policy.AdmissionQuorum, policy.WitnessQuorum, policy.OPRFThreshold = 0, 0, 0
	cmd.Flags().IntVar(&policy.AdmissionQuorum, "admission-quorum", 0, "approvals needed to change the charter (default: a majority)")
	cmd.Flags().IntVar(&policy.WitnessQuorum, "witness-quorum", 0, "cosignatures that make a checkpoint final (default: a majority)")
	cmd.Flags().IntVar(&policy.OPRFThreshold, "oprf-threshold", 0, "centres needed to compute a pseudonym (default: a majority)")
	cmd.Flags().Int64Var(&policy.Witnesses, "witnesses", federation.DefaultWitnesses, "size of each log's witness set (1 to 64)")
	cmd.Flags().Int64Var(&policy.ConsentReplicas, "consent-replicas", federation.DefaultConsentReplicas, "members holding each patient's consent documents (1 to 64)")
	cmd.Flags().StringVar(&policy.ConsentDefault, "consent-default", policy.ConsentDefault, "policy for patients without a consent contract: opt-in or opt-out")
	cmd.Flags().StringVar(&policy.EmergencyAccess, "emergency-access", policy.EmergencyAccess, "break-glass access: allowed or forbidden")
	cmd.Flags().DurationVar(&policy.TokenMaxLifetime, "token-max-lifetime", policy.TokenMaxLifetime, "longest consent token a patient may issue")
	cmd.Flags().DurationVar(&policy.KeyNotice, "key-notice", federation.DefaultKeyNotice, "how long an approved replacement of a patient's key waits for the old key's veto, and how long a key is in force before it can erase")
	cmd.Flags().Int64Var(&policy.MemberRate, "member-rate", federation.DefaultMemberRate, "queries and patients' requests one member may send a centre per second")
	cmd.Flags().DurationVar(&policy.EmergencyDuration, "emergency-duration", federation.DefaultEmergencyDuration, "how long break-glass access lasts unless stopped")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		var reqs [][]byte
		for _, path := range members {
			b, err := readIn(path)
			if err != nil {
				return err
			}
			reqs = append(reqs, b)
		}
		def := federation.DefaultPolicy(len(reqs) + 1)
		policy.AdmissionQuorum = cmp.Or(policy.AdmissionQuorum, def.AdmissionQuorum)
		policy.OPRFThreshold = cmp.Or(policy.OPRFThreshold, def.OPRFThreshold)
		if policy.WitnessQuorum == 0 { // a majority of a log and its witness set
			policy.WitnessQuorum = min(len(reqs)+1, int(policy.Witnesses)+1)/2 + 1
		}
		if !dealKey && sharesOut != "" {
			return usagef("federation init: --shares is for the key --deal deals")
		}
		if dealKey && sharesOut == "" && out != "-" {
			sharesOut = out + ".shares"
		}
		if dealKey && (sharesOut == "" || sharesOut == "-") {
			return usagef("federation init: --shares FILE is required when the charter goes to stdout")
		}
		return withCentre(cmd.Context(), cfg, func(c *centre.Centre) error {
			draft, shares, err := c.Found(centre.Founding{Listen: cfg.P2P.Listen, Requests: reqs, Policy: policy, Deal: dealKey})
			if err != nil {
				return usageError{err}
			}
			if shares != nil { // nil for a federation of one founder: no pseudonym key
				if err := writeOut(cmd, sharesOut, shares, false); err != nil {
					return err
				}
			}
			return writeOut(cmd, out, draft, false)
		})
	})
}

// fileCmd is a command over the centre's configuration and one file
// argument (a charter or a join request), read with a size limit.
func fileCmd(use, short string, run func(cmd *cobra.Command, cfg centre.Config, path string, data []byte) error) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1)}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		data, err := readIn(args[0])
		if err != nil {
			return err
		}
		return run(cmd, cfg, args[0], data)
	})
}

func newFedSignCmd() *cobra.Command {
	var sharesPath string
	cmd := fileCmd("sign CHARTER --config FILE", "Add this centre's signature to a draft version 1 (a founder)",
		func(cmd *cobra.Command, cfg centre.Config, path string, draft []byte) error {
			shares, err := readShares(path, sharesPath)
			if err != nil {
				return err
			}
			return withCentre(cmd.Context(), cfg, func(c *centre.Centre) error {
				signed, err := c.SignCharter(draft, shares)
				if err != nil {
					return usageError{err}
				}
				return writeOut(cmd, path, signed, true)
			})
		})
	cmd.Flags().StringVar(&sharesPath, "shares", "", "the sealed key shares `file` federation init wrote with the charter, to check this centre's share before signing (default: CHARTER.shares, if it exists)")
	return cmd
}

// readShares reads the sealed key shares file given, or CHARTER.shares if
// none was given and it exists; nil if neither.
func readShares(charterPath, given string) ([]byte, error) {
	if given == "" {
		if _, err := os.Stat(charterPath + ".shares"); err != nil {
			return nil, nil
		}
		given = charterPath + ".shares"
	}
	return readIn(given)
}

func newFedInstallCmd() *cobra.Command {
	var sharesPath string
	cmd := fileCmd("install CHARTER --shares FILE --config FILE", "Adopt version 1 of a charter that every founder signed",
		func(cmd *cobra.Command, cfg centre.Config, path string, note []byte) error {
			shares, err := readShares(path, sharesPath)
			if err != nil {
				return err
			}
			return withCentre(cmd.Context(), cfg, func(c *centre.Centre) error {
				s, err := c.InstallFounding(cmd.Context(), note, shares)
				if err != nil {
					return usageError{err}
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "installed charter version %d of federation %s: %d members\n", s.Version, s.Federation, len(s.Members))
				return err
			})
		})
	cmd.Flags().StringVar(&sharesPath, "shares", "", "the sealed key shares `file` federation init wrote with the charter (default: CHARTER.shares, if it exists)")
	return cmd
}

func newFedJoinCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "join --config FILE --peer MULTIADDR",
		Short: "Fetch and install the charter from a member, once the federation admitted this centre",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&addr, "peer", "", "a member's address, ending in /p2p/<its peer ID>")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if addr == "" {
			return usagef("federation join: --peer is required")
		}
		s, err := centre.Join(cmd.Context(), cfg, addr)
		if err != nil {
			return err
		}
		h := s.Hash()
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "joined federation %s: charter version %d, %d members (charter hash %x)\n", s.Federation, s.Version, len(s.Members), h[:8])
		return err
	})
}

func printProgress(cmd *cobra.Command, what string, p api.Progress) error {
	state := fmt.Sprintf("has %d of %d approvals so far", p.Approvals, p.Quorum)
	if p.Adopted {
		state = fmt.Sprintf("is adopted, with %d approvals (quorum %d)", p.Approvals, p.Quorum)
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s: charter version %d %s\n", what, p.Version, state)
	return err
}

func newFedApproveCmd() *cobra.Command {
	return fileCmd("approve REQUEST --config FILE", "Approve a centre's join request on this centre's running node",
		func(cmd *cobra.Command, cfg centre.Config, _ string, req []byte) error {
			p, err := admin.Dial(cfg.Data.Dir).Approve(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printProgress(cmd, "approved", p)
		})
}

func newFedRemoveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove CENTRE --config FILE",
		Short: "Approve removing a centre, on this centre's running node",
		Args:  cobra.ExactArgs(1),
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		p, err := admin.Dial(cfg.Data.Dir).Remove(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return printProgress(cmd, "removal approved", p)
	})
}

// keyCeremonyCmd is keygen's and reshare's command: they take the same
// flags and print the same outcome.
func keyCeremonyCmd(use, short, long string, run func(ctx context.Context, a *admin.Client, r admin.KeyCeremonyRequest) (admin.KeyCeremonyResponse, error)) *cobra.Command {
	var (
		committee   []string
		threshold   int
		attempt     int
		wait, round time.Duration
	)
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs}
	cmd.Flags().StringSliceVar(&committee, "committee", nil, "the members that will hold the key, by name, comma-separated (every participant names the same)")
	cmd.Flags().IntVar(&threshold, "threshold", 0, "holders needed to compute a pseudonym, 2 to the committee's size (default: a majority of the committee)")
	cmd.Flags().IntVar(&attempt, "attempt", 1, "which run this is: give every participant a new number to run again after a failed run")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long the first round waits for every participant to start")
	cmd.Flags().DurationVar(&round, "round-timeout", 30*time.Second, "how long each later round waits for a participant")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if len(committee) == 0 {
			return usagef("federation %s: --committee is required", cmd.Name())
		}
		if wait <= 0 || round <= 0 {
			return usagef("federation %s: --wait and --round-timeout must be positive", cmd.Name())
		}
		res, err := run(cmd.Context(), admin.Dial(cfg.Data.Dir), admin.KeyCeremonyRequest{
			Committee: committee, Threshold: threshold, Attempt: attempt, Wait: wait.String(), Round: round.String()})
		if err != nil {
			return err
		}
		out := &stickyWriter{w: cmd.OutOrStdout()}
		share := "this centre holds no share"
		if res.Index > 0 {
			share = fmt.Sprintf("this centre holds share %d, pending until the version is adopted", res.Index)
		}
		fmt.Fprintf(out, "pseudonym key %d of %d, held by %s; %s\n", res.Threshold, len(res.Holders), strings.Join(res.Holders, ", "), share)
		if len(res.Left) > 0 {
			fmt.Fprintf(out, "the ceremony went on without %s (absent, or dealing wrongly)\n", strings.Join(res.Left, ", "))
		}
		if out.err != nil {
			return out.err
		}
		switch {
		case !res.Approved && res.Draft.Adopted:
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "charter version %d listing the key is adopted: the other participants' approvals came first (draft %s)\n", res.Draft.Version, res.Draft.Draft)
			return err
		case !res.Approved:
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "drafted charter version %d (draft %s); this centre is not on the council: its members approve it\n", res.Draft.Version, res.Draft.Draft)
			return err
		}
		if err := printProgress(cmd, "key drafted and approved (draft "+res.Draft.Draft+")", res.Draft); err != nil || res.Draft.Adopted {
			return err
		}
		return awaitAdoption(cmd, admin.Dial(cfg.Data.Dir), res.Draft.Version)
	})
}

// keyAdoptionWait is how long keygen and reshare wait, once approved, for
// the version listing the key to be adopted (the other participants'
// approvals are usually seconds away).
const keyAdoptionWait = 30 * time.Second

// awaitAdoption waits a while for the node to adopt charter version v,
// and says whether it did.
func awaitAdoption(cmd *cobra.Command, a *admin.Client, v uint64) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), keyAdoptionWait)
	defer cancel()
	for {
		st, err := a.Status(ctx)
		if err == nil && st.Version >= v {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "charter version %d is adopted: the key is in force\n", st.Version)
			return err
		}
		select {
		case <-ctx.Done():
			if cmd.Context().Err() != nil {
				return cmd.Context().Err()
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "charter version %d is not adopted yet: it awaits the council's approvals (medfed federation status lists it)\n", v)
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func newFedKeygenCmd() *cobra.Command {
	return keyCeremonyCmd("keygen --committee NAME,... [--threshold T] --config FILE",
		"Generate the federation's pseudonym key with the committee, nobody ever holding it (on the running node)",
		`keygen has this centre's running node take part in generating the
federation's pseudonym key, where the charter lists none (a federation is
founded without one): a distributed key generation among the committee
(Gennaro, Jarecki, Krawczyk and Rabin's, over /medfed/oprf-ceremony/1), in
which each member deals a secret and the key is the sum of the secrets
dealt correctly. Nobody, not even threshold-1 members together, ever holds
the key or can choose it.

Every member of the committee runs the same command, naming the same
committee and threshold, within --wait of each other; the command returns
when the ceremony has ended. A member that does not start in time is left
out (its share is lost: reshare later to repair that). Each participant then
keeps its share pending and drafts the next charter version listing the
key; a council member approves it at once, and the others of the council
with "medfed federation approve-draft HASH". Once adopted, every holder
uses its new share. If the run fails, run it again with --attempt 2.`,
		func(ctx context.Context, a *admin.Client, r admin.KeyCeremonyRequest) (admin.KeyCeremonyResponse, error) {
			return a.Keygen(ctx, r)
		})
}

func newFedReshareCmd() *cobra.Command {
	return keyCeremonyCmd("reshare --committee NAME,... [--threshold T] --config FILE",
		"Move the federation's pseudonym key to a new committee and threshold, the key unchanged (on the running node)",
		`reshare has this centre's running node take part in moving the federation's
pseudonym key to the committee named, at the threshold given: the current
holders deal their shares afresh to the new committee (any threshold of them
suffice; a dealing that would change the key is refused), so the key, and
every pseudonym, stays what it was, and the shares of holders left out no
longer combine with the new ones. Holders run it to deal, members of the
new committee to receive, many centres to do both, all naming the same
committee and threshold, within --wait of each other.

As with keygen, each participant keeps its new share pending and drafts the
next charter version; once the council adopted it, new holders switch to
their new shares and a holder no longer listed deletes its old one.`,
		func(ctx context.Context, a *admin.Client, r admin.KeyCeremonyRequest) (admin.KeyCeremonyResponse, error) {
			return a.Reshare(ctx, r)
		})
}

func newFedApproveDraftCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approve-draft HASH --config FILE",
		Short: "Approve a draft of the next charter version that another council member offered",
		Long: `approve-draft approves, on this centre's running node, the pending draft
that "medfed federation status" lists with this hash and a line saying what
it changes: how a council member approves a change it did not draft itself,
such as a pseudonym key its holders generated or reshared.`,
		Args: cobra.ExactArgs(1),
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		p, err := admin.Dial(cfg.Data.Dir).ApproveDraft(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return printProgress(cmd, "draft approved", p)
	})
}

func newFedCouncilCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "council CENTRE... --config FILE",
		Short: "Approve a new council (the members whose approvals change the charter), on this centre's running node",
		Long: `council approves the next version of the charter with the council made of
the centres named (at most 64), or of every member when none is named. Only
the council approves a version, at the charter's admission-quorum: a
federation of a thousand centres changes its charter with a few dozen
signatures, not hundreds. The council in force approves the new one, and a
member on the council is removed only once the council no longer names it.`,
		Args: cobra.ArbitraryArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		p, err := admin.Dial(cfg.Data.Dir).Council(cmd.Context(), args)
		if err != nil {
			return err
		}
		return printProgress(cmd, "council approved", p)
	})
}

func newFedBlockCmd() *cobra.Command {
	var d time.Duration
	cmd := &cobra.Command{
		Use:   "block CENTRE --for DURATION --config FILE",
		Short: "Cut a member off from this centre's running node for a while",
		Long: `block closes this centre's connections to a member and refuses it, though
the charter lists it, for the duration given (1s to 24h) or until
"medfed federation unblock": for an incident, such as a member flooding this
centre, while the federation decides on its removal. The charter does not
change, and a restart of the node ends every block.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().DurationVar(&d, "for", 0, "how long (1s to 24h)")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		if d <= 0 {
			return usagef("federation block: --for a duration is required")
		}
		res, err := admin.Dial(cfg.Data.Dir).Block(cmd.Context(), args[0], d)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s blocked until %s\n", res.Centre, res.Until.UTC().Format(time.RFC3339))
		return err
	})
}

func newFedUnblockCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unblock CENTRE --config FILE",
		Short: "End a block of a member on this centre's running node",
		Args:  cobra.ExactArgs(1),
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, args []string) error {
		res, err := admin.Dial(cfg.Data.Dir).Unblock(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s unblocked\n", res.Centre)
		return err
	})
}

func newFedCharterCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "charter --config FILE [--out FILE]",
		Short: "Write the charter chain this centre adopted (the node must be running)",
		Long: `charter writes every version of the federation's charter this centre
adopted, version 1 first, each with its members' signatures: the public
material an auditor checks a ledger copy against with medfed ledger verify
--charter FILE.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&out, "out", "-", "where to write the chain (- for stdout)")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		c, err := admin.Dial(cfg.Data.Dir).Charter(cmd.Context())
		if err != nil {
			return err
		}
		return writeOut(cmd, out, []byte(c.Text), true)
	})
}

func newFedStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status --config FILE [--address]",
		Short: "Show the charter version, the members and who is connected",
		Long: `status asks the running node for the charter version, the members and
who is connected. With --address it prints only this centre's libp2p
addresses with its peer ID, one per line (the node need not run): what a
joining centre passes to medfed federation join --peer.`,
		Args: cobra.NoArgs,
	}
	var address bool
	cmd.Flags().BoolVar(&address, "address", false, "print only this centre's addresses, /p2p/ID included")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if address {
			pub, err := centre.PublicKey(cfg.Data.Dir)
			if err != nil {
				return err
			}
			pk, err := crypto.UnmarshalEd25519PublicKey(pub)
			if err != nil {
				return err
			}
			id, err := peer.IDFromPublicKey(pk)
			if err != nil {
				return err
			}
			for _, a := range cfg.P2P.Listen {
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s/p2p/%s\n", a, id); err != nil {
					return err
				}
			}
			return nil
		}
		st, err := admin.Dial(cfg.Data.Dir).Status(cmd.Context())
		if err != nil {
			return err
		}
		out := &stickyWriter{w: cmd.OutOrStdout()}
		role := "member"
		if !st.Member {
			role = "not a member"
		}
		fmt.Fprintf(out, "federation %s, charter version %d; this centre (%s) is %s\n", st.Federation, st.Version, st.Self, role)
		council := strings.Join(st.Council, ", ")
		if len(st.Council) == len(st.Members) {
			council = "every member"
		}
		fmt.Fprintf(out, "council: %s; %d of them approve a version\n", council, st.Quorum)
		if st.KeyThreshold == 0 {
			fmt.Fprintln(out, "pseudonym key: none")
		} else {
			fmt.Fprintf(out, "pseudonym key: held by %s; %d of them evaluate\n", strings.Join(st.KeyHolders, ", "), st.KeyThreshold)
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CENTRE\tPEER ID\tCONNECTED")
		for _, m := range st.Members {
			conn := "no"
			switch {
			case m.ID == st.Self:
				conn = "(this centre)"
			case m.Connected:
				conn = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, m.ID, conn)
		}
		for _, p := range st.Pending {
			fmt.Fprintf(tw, "pending version %d\t%d of %d approvals\t%s (draft %s)\n", p.Version, p.Approvals, p.Quorum, p.Change, p.Draft)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if out.err != nil {
			return out.err
		}
		return printEvidence(cmd, st.Evidence)
	})
}

func newFedPSKCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "psk --out FILE",
		Short: "Write a new pre-shared key for a private federation (p2p.psk-file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || out == "-" || strings.TrimSpace(out) == "" {
				return usagef("federation psk: --out FILE is required (the key is a secret)")
			}
			k, err := centre.NewPSK()
			if err != nil {
				return err
			}
			return writeSecret(out, k)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the key (mode 0600)")
	return cmd
}

// printEvidence warns about every member caught signing two histories.
func printEvidence(cmd *cobra.Command, ev []api.EvidenceStatus) error {
	for _, e := range ev {
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "EVIDENCE: %s signed conflicting checkpoints (%s), seen %s; this centre no longer witnesses it\n",
			e.Origin, e.Reason, e.Seen.Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return nil
}

// writeSecret writes data to a new file of mode 0600; it never overwrites
// one.
func writeSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync() // durable before anyone is told it exists
	}
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(path) // never leave half a secret behind
		return err
	}
	return nil
}
