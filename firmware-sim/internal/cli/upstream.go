package cli

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/firmware-sim/internal/upstreamsim"
)

// upstreamCommands returns the upstream service simulators.
func upstreamCommands(d *deps) []*cobra.Command {
	return []*cobra.Command{newOGDCommand(d), newStatsCommand(d)}
}

// faultFlags are the fault flags both upstream simulators take.
type faultFlags struct {
	fault      string
	rate       float64
	slow       time.Duration
	retryAfter time.Duration
}

func (f *faultFlags) register(cmd *cobra.Command, retryAfter time.Duration, unit string) {
	fs := cmd.Flags()
	fs.StringVar(&f.fault, "fault", "none", "random fault on --fault-rate of the requests: "+faultNames(upstreamsim.Faults()))
	fs.Float64Var(&f.rate, "fault-rate", 0.2, "share of requests hit by --fault, in [0, 1]")
	fs.DurationVar(&f.slow, "slow", 30*time.Second, "how long the slow fault holds an answer")
	fs.DurationVar(&f.retryAfter, "retry-after", retryAfter, "Retry-After of a 429, sent in "+unit)
}

// check resolves the flags, collecting every problem.
func (f *faultFlags) check() (upstreamsim.FaultConfig, []error) {
	var problems []error
	fault, err := upstreamsim.ParseFault(f.fault)
	if err != nil {
		problems = append(problems, fmt.Errorf("invalid fault: %w", err))
	}
	if f.rate < 0 || f.rate > 1 {
		problems = append(problems, fmt.Errorf("invalid fault-rate %v: must be within [0, 1]", f.rate))
	}
	if f.slow < 0 || f.retryAfter < 0 {
		problems = append(problems, fmt.Errorf("invalid slow or retry-after: must not be negative"))
	}
	return upstreamsim.FaultConfig{Fault: fault, FaultRate: f.rate, SlowDelay: f.slow, RetryAfter: f.retryAfter}, problems
}

// faultControlHelp documents the fault control endpoint in --help.
const faultControlHelp = `Faults on demand: POST /_sim/fault with the form fields kind (429, 500, 502, 503,
slow, malformed), count (how many requests, default 1), path (only requests whose path
starts with it) and, for ogd, offset (only the page at that offset), e.g.

  curl -d kind=429 -d count=2 http://ADDR/_sim/fault

queues faults for the next matching requests; DELETE /_sim/fault clears the queue and
GET /_sim/fault lists it with what each fault has hit. --fault adds a random fault.
`

func newOGDCommand(d *deps) *cobra.Command {
	var (
		listen, apiKey, resource string
		seed                     int64
		months                   int
		reviseAfter              time.Duration
		ff                       faultFlags
	)
	cmd := &cobra.Command{
		Use:   "ogd --listen ADDR [--api-key KEY]",
		Short: "Serve a simulated data.gov.in Open Government Data resource (CPCB river monitoring)",
		Long: `Serve a data.gov.in-shaped gateway with one resource at /resource/{id}: the monthly
water quality of Maharashtra rivers under CPCB's NWMP, --months of samples for each
station. GET /resource/{id}?api-key=KEY&format=json&offset=0&limit=10[&filters[field]=v]
answers with the gateway's envelope (index_name, title, field, updated_date, total and
count as numbers, limit and offset as strings, records), limits above 1000 served as
1000. Values come as strings ("7.42") and temperature as a JSON number; missing values
as "NA", "NAN", "-" and "", BOD and nitrate below detection as "BDL".

Without a key the gateway answers 400 {"error": "Authorization field missing"}; with
--api-key set, another key gets 403 {"error": "Key not authorised"}.

--revise-after after the start the resource is republished (updated_date moves) with the
newest Pune BOD corrected; POST /_sim/revise republishes it at once.

Stations (NWMP code, our station):
` + ogdStationList() + `

` + faultControlHelp + ` A 429 carries Retry-After in seconds.

The resource URL is printed on stdout once the server listens. SIGINT or SIGTERM stops it.`,
		Example: `  ph-sim ogd --listen 127.0.0.1:8091 --api-key demo-key
  ph-sim ogd --listen 127.0.0.1:0 --revise-after 30s --fault 502 --fault-rate 0.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			faults, problems := ff.check()
			if _, _, err := net.SplitHostPort(listen); err != nil {
				problems = append(problems, fmt.Errorf("invalid listen %q: want host:port", listen))
			}
			if months < 1 {
				problems = append(problems, fmt.Errorf("invalid months %d: at least 1", months))
			}
			if reviseAfter == 0 {
				problems = append(problems, fmt.Errorf("invalid revise-after 0: a duration, or negative for never"))
			}
			if len(problems) > 0 {
				return usage(cmd, oneLine(problems))
			}
			srv, err := upstreamsim.NewOGD(upstreamsim.OGDConfig{
				ResourceID: resource, APIKey: apiKey, Seed: seed, Months: months, ReviseAfter: reviseAfter,
				FaultConfig: faults,
			}, d.log.With("component", "ogdsim"))
			if err != nil {
				return usage(cmd, err)
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fail(fmt.Errorf("listen: %w", err))
			}
			if err := printURLs(cmd, []string{srv.URL(l.Addr())}); err != nil {
				return fail(errorsJoinClose(err, l.Close()))
			}
			d.log.Info("serving OGD", "addr", l.Addr().String(), "resource", resource, "key_required", apiKey != "")
			return fail(srv.Serve(cmd.Context(), l))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", "127.0.0.1:8091", "address to listen on, host:port (port 0: any free port)")
	fs.StringVar(&apiKey, "api-key", "", "the only API key accepted (default: any key, but one is required)")
	fs.StringVar(&resource, "resource", upstreamsim.DefaultResourceID, "resource id served at /resource/{id}")
	fs.Int64Var(&seed, "seed", 1, "seed of the simulated rivers")
	fs.IntVar(&months, "months", upstreamsim.DefaultMonths, "months of samples per station")
	fs.DurationVar(&reviseAfter, "revise-after", upstreamsim.DefaultReviseAfter, "when the resource is republished with a corrected value (negative: never)")
	ff.register(cmd, 2*time.Second, "seconds")
	return cmd
}

func ogdStationList() string {
	var b strings.Builder
	for _, s := range upstreamsim.OGDStations() {
		ours := s.Station
		if ours == "" {
			ours = "-"
		}
		fmt.Fprintf(&b, "  %-6s %-16s %s\n", s.Code, ours, s.Location)
	}
	return b.String()
}

func newStatsCommand(d *deps) *cobra.Command {
	var (
		listen, clientID, clientSecret string
		seed                           int64
		ttl                            time.Duration
		ff                             faultFlags
	)
	cmd := &cobra.Command{
		Use:   "stats --listen ADDR",
		Short: "Serve a simulated Copernicus Statistical API and its OAuth2 token endpoint",
		Long: `Serve a Sentinel Hub / Copernicus Data Space-shaped Statistical API for the cloud's
satellite estimates. POST /oauth/token (grant_type=client_credentials with client_id
and client_secret, in the form or as basic auth) answers {"access_token", "expires_in",
"token_type": "Bearer"}; an unknown client gets 401 {"error": "invalid_client"}.
POST /api/v1/statistics with a bearer token answers {"data": [{"interval", "outputs"}],
"status"} for sentinel-2-l2a (every 5 days: B0 = B04, B1 = B05, B2 = B8A as digital
numbers with the offset of processing baseline 04.00) and landsat-ot-l2 (every 8 days:
B0 = ST_B10) over a Polygon or bbox, aggregated P1D, for the evalscript's first output
other than dataMask. Values follow the station models (turbidity, chlorophyll-a and water
temperature of the four Maharashtra rivers).

Scenes above the request's maxCloudCoverage are left out (monsoon skies are overcast);
some scenes are cloudy over the station, fully masked ("mean": "NaN" as a string with
noDataCount == sampleCount) or partly; some intervals fail ("error": {"type":
"EXECUTION_ERROR"}, and the response's status is PARTIAL). An expired or unknown token
gets 401 COMMON_UNAUTHORIZED.

` + faultControlHelp + ` A 429 carries {"status":429,"code":"RATE_LIMIT_EXCEEDED"} and
retry-after in milliseconds.

The API base URL and the token URL are printed on stdout, one per line, once the server
listens. SIGINT or SIGTERM stops it.`,
		Example: `  ph-sim stats --listen 127.0.0.1:8092
  ph-sim stats --listen 127.0.0.1:0 --client-id demo --client-secret s3cret --token-ttl 2m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			faults, problems := ff.check()
			if _, _, err := net.SplitHostPort(listen); err != nil {
				problems = append(problems, fmt.Errorf("invalid listen %q: want host:port", listen))
			}
			if ttl < time.Second {
				problems = append(problems, fmt.Errorf("invalid token-ttl %s: at least 1s", ttl))
			}
			if (clientID == "") != (clientSecret == "") {
				problems = append(problems, fmt.Errorf("--client-id and --client-secret go together"))
			}
			if len(problems) > 0 {
				return usage(cmd, oneLine(problems))
			}
			srv, err := upstreamsim.NewStatistics(upstreamsim.StatisticsConfig{
				ClientID: clientID, ClientSecret: clientSecret, TokenTTL: ttl, Seed: seed, FaultConfig: faults,
			}, d.log.With("component", "statssim"))
			if err != nil {
				return usage(cmd, err)
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fail(fmt.Errorf("listen: %w", err))
			}
			base, tokenURL := srv.URLs(l.Addr())
			if err := printURLs(cmd, []string{base, tokenURL}); err != nil {
				return fail(errorsJoinClose(err, l.Close()))
			}
			d.log.Info("serving the Statistical API", "addr", l.Addr().String(), "token_ttl", ttl)
			return fail(srv.Serve(cmd.Context(), l))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", "127.0.0.1:8092", "address to listen on, host:port (port 0: any free port)")
	fs.StringVar(&clientID, "client-id", "", "the only OAuth2 client accepted (default: any)")
	fs.StringVar(&clientSecret, "client-secret", "", "its secret")
	fs.DurationVar(&ttl, "token-ttl", upstreamsim.DefaultTokenTTL, "lifetime of issued tokens (expires_in)")
	fs.Int64Var(&seed, "seed", 1, "seed of the simulated rivers and skies")
	ff.register(cmd, upstreamsim.DefaultRetryAfterMS, "milliseconds")
	return cmd
}
