package notify

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Channel kinds (contract: the configuration's notify[].kind).
const (
	KindWebhook = "webhook"
	KindEmail   = "email"
)

// How an e-mail channel secures its SMTP connection (SMTP.TLS).
const (
	// TLSAuto: TLS from the first byte on port 465, otherwise STARTTLS whenever the
	// server offers it.
	TLSAuto = "auto"
	// TLSStartTLS: STARTTLS, and no message when the server does not offer it.
	TLSStartTLS = "starttls"
	// TLSImplicit: TLS from the first byte (SMTPS), whatever the port.
	TLSImplicit = "tls"
	// TLSNone: never TLS. Credentials then go to a server on this host only (net/smtp
	// refuses to send them in clear elsewhere).
	TLSNone = "none"
)

// Defaults. A zero field of Options or Channel means its default.
const (
	// DefaultGroup: at most one message per station and channel a minute; what comes
	// meanwhile goes together in the next.
	DefaultGroup          = time.Minute
	DefaultWebhookTimeout = 10 * time.Second
	DefaultEmailTimeout   = 30 * time.Second
	DefaultSMTPPort       = 587
	// DefaultInterval is how often a dispatcher looks for due messages (ends of grouping
	// windows, retries) besides being woken by new transitions.
	DefaultInterval      = time.Second
	DefaultWorkers       = 2
	DefaultMaxPerMessage = 100
	// Retries of a failed message wait a random time below a ceiling that doubles from
	// DefaultRetryBase to DefaultRetryMax (never less than half of it).
	DefaultRetryBase = 10 * time.Second
	DefaultRetryMax  = 30 * time.Minute
	// DefaultFailingAfter consecutive failed attempts open the notify_failing alert of
	// the station whose messages failed (about 5 minutes of retries with the retry
	// defaults).
	DefaultFailingAfter = 5
	// DefaultMaxAge: a transition not delivered to a channel within three days is given
	// up (counted as expired): news that old is better read on the dashboard.
	DefaultMaxAge = 72 * time.Hour
	// DefaultRetention: delivered and expired transitions are kept a week for audit.
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultPruneInterval = time.Hour
	DefaultStatsInterval = 10 * time.Second
	// DefaultRouteBatch is how many queued transitions one routing transaction takes.
	DefaultRouteBatch = 500
)

// DefaultStations is a channel's station filter when none is given: every station.
func DefaultStations() []string { return []string{"*"} }

// DefaultSeverities is a channel's severity filter when none is given.
func DefaultSeverities() []string { return []string{"critical", "warning"} }

// DefaultOn is a channel's transition filter when none is given.
func DefaultOn() []string { return []string{"opened", "resolved"} }

// The values the filters know (the alert contract, shared/wire).
var (
	severities = []string{"info", "warning", "critical"}
	// updated: a cloud alert whose message or evidence changed (a forecast that moved);
	// no channel gets it unless its `on` lists it.
	transitions = []string{"opened", "acknowledged", "escalated", "updated", "resolved"}
)

// Channel is one destination of notifications: the configuration's notify[] entry
// (contract for the keys name, kind, url, secret, smtp, to, stations, severities, on).
type Channel struct {
	Name string // unique; in /stats, /metrics, the log and the notify_failing alert's key
	Kind string // KindWebhook or KindEmail

	URL    string // webhook: where to POST
	Secret string // webhook: the key of the body's HMAC-SHA256 in X-PH-Signature

	SMTP SMTP     // email: the server that takes the mail
	To   []string // email: recipients, RFC 5322 addresses

	Stations   []string // station ids, or "*" for every station (default)
	Severities []string // info, warning, critical (default: critical, warning)
	On         []string // opened, acknowledged, escalated, updated, resolved (default: opened, resolved)

	// Group is the least time between two messages about one station: the first
	// transition of a quiet station goes at once, and what follows within Group goes
	// together at its end. Default DefaultGroup.
	Group time.Duration
	// Timeout bounds one attempt. Default DefaultWebhookTimeout or DefaultEmailTimeout.
	Timeout time.Duration
}

// SMTP says how an e-mail channel reaches its server.
type SMTP struct {
	Host     string
	Port     int    // default DefaultSMTPPort
	Username string // with Password: AUTH PLAIN, only over TLS (or to this host)
	Password string
	From     string // the sender address, RFC 5322
	TLS      string // TLSAuto (default), TLSStartTLS, TLSImplicit or TLSNone
	// CAFile, when set, holds the PEM certificates to trust instead of the system's
	// (a private mail relay).
	CAFile string
}

// Options configure a Dispatcher. A zero field means its default.
type Options struct {
	Channels []Channel

	Interval      time.Duration // DefaultInterval
	Workers       int           // messages sent at once (each holds a pooled connection); DefaultWorkers
	MaxPerMessage int           // transitions in one message at most; DefaultMaxPerMessage
	RetryBase     time.Duration // DefaultRetryBase
	RetryMax      time.Duration // DefaultRetryMax
	FailingAfter  int           // DefaultFailingAfter
	MaxAge        time.Duration // DefaultMaxAge
	Retention     time.Duration // DefaultRetention
	PruneInterval time.Duration // DefaultPruneInterval
	StatsInterval time.Duration // how often Stats reads the database; DefaultStatsInterval
	RouteBatch    int           // DefaultRouteBatch

	// Hostname names this host to SMTP servers (EHLO) and in Message-IDs. Default: the
	// system's host name.
	Hostname string
	Log      *slog.Logger     // default: discard
	Now      func() time.Time // the clock of grouping windows, retries and ages; default time.Now
}

func (o *Options) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&o.Interval, DefaultInterval)
	defInt(&o.Workers, DefaultWorkers)
	defInt(&o.MaxPerMessage, DefaultMaxPerMessage)
	def(&o.RetryBase, DefaultRetryBase)
	def(&o.RetryMax, DefaultRetryMax)
	defInt(&o.FailingAfter, DefaultFailingAfter)
	def(&o.MaxAge, DefaultMaxAge)
	def(&o.Retention, DefaultRetention)
	def(&o.PruneInterval, DefaultPruneInterval)
	def(&o.StatsInterval, DefaultStatsInterval)
	defInt(&o.RouteBatch, DefaultRouteBatch)
	if o.Hostname == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			o.Hostname = h
		} else {
			o.Hostname = "localhost"
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for i := range o.Channels {
		o.Channels[i].fill()
	}
}

func (c *Channel) fill() {
	if len(c.Stations) == 0 {
		c.Stations = DefaultStations()
	}
	if len(c.Severities) == 0 {
		c.Severities = DefaultSeverities()
	}
	if len(c.On) == 0 {
		c.On = DefaultOn()
	}
	if c.Group == 0 {
		c.Group = DefaultGroup
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultWebhookTimeout
		if c.Kind == KindEmail {
			c.Timeout = DefaultEmailTimeout
		}
	}
	if c.Kind == KindEmail {
		if c.SMTP.Port == 0 {
			c.SMTP.Port = DefaultSMTPPort
		}
		if c.SMTP.TLS == "" {
			c.SMTP.TLS = TLSAuto
		}
	}
}

// Validate reports every problem of the options (after defaults), each naming the
// channel and key.
func (o Options) Validate() error {
	o.Channels = slices.Clone(o.Channels)
	o.fill()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"interval", o.Interval}, {"retry_base", o.RetryBase}, {"retry_max", o.RetryMax}, {"max_age", o.MaxAge},
		{"retention", o.Retention}, {"prune_interval", o.PruneInterval}, {"stats_interval", o.StatsInterval},
	} {
		if d.v < 0 {
			bad("notify %s: %s is negative", d.key, d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{
		{"workers", o.Workers}, {"max_per_message", o.MaxPerMessage}, {"failing_after", o.FailingAfter},
		{"route_batch", o.RouteBatch},
	} {
		if n.v < 0 {
			bad("notify %s: %d is negative", n.key, n.v)
		}
	}
	if o.Retention < o.MaxAge {
		bad("notify retention %s is shorter than max_age %s: undelivered transitions would be deleted", o.Retention, o.MaxAge)
	}
	seen := map[string]bool{}
	for i, c := range o.Channels {
		if err := c.validate(); err != nil {
			errs = append(errs, fmt.Errorf("notify[%d] %q: %w", i, c.Name, err))
		}
		if seen[c.Name] {
			bad("notify[%d]: name %q is used twice", i, c.Name)
		}
		seen[c.Name] = true
	}
	return errors.Join(errs...)
}

var channelName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// validate checks a filled channel.
func (c Channel) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !channelName.MatchString(c.Name) {
		bad("name must be 1–64 letters, digits, '.', '-' or '_'")
	}
	switch c.Kind {
	case KindWebhook:
		u, err := url.Parse(c.URL)
		switch {
		case c.URL == "":
			bad("url is required for a webhook")
		case err != nil:
			bad("url: %v", err)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			bad("url %q must be http:// or https:// with a host", c.URL)
		}
		if c.Secret == "" {
			bad("secret is required for a webhook: receivers check X-PH-Signature with it")
		}
		if c.SMTP != (SMTP{}) || len(c.To) > 0 {
			bad("smtp and to belong to email channels")
		}
	case KindEmail:
		s := c.SMTP
		if s.Host == "" {
			bad("smtp.host is required for email")
		}
		if s.Port < 1 || s.Port > 65535 {
			bad("smtp.port %d is not a port", s.Port)
		}
		if _, err := mail.ParseAddress(s.From); err != nil {
			bad("smtp.from %q: %v", s.From, err)
		}
		if !slices.Contains([]string{TLSAuto, TLSStartTLS, TLSImplicit, TLSNone}, s.TLS) {
			bad("smtp.tls %q must be auto, starttls, tls or none", s.TLS)
		}
		if (s.Username == "") != (s.Password == "") {
			bad("smtp.username and smtp.password go together")
		}
		if s.CAFile != "" {
			if _, err := loadCAs(s.CAFile); err != nil {
				bad("smtp.ca_file: %v", err)
			}
		}
		if len(c.To) == 0 {
			bad("to needs at least one address")
		}
		for _, a := range c.To {
			if _, err := mail.ParseAddress(a); err != nil {
				bad("to %q: %v", a, err)
			}
		}
		if c.URL != "" || c.Secret != "" {
			bad("url and secret belong to webhook channels")
		}
	default:
		bad("kind %q must be webhook or email", c.Kind)
	}
	for _, s := range c.Stations {
		if s != "*" && !telemetry.ValidStationID(s) {
			bad("stations: %q is neither \"*\" nor a station id (%s)", s, telemetry.StationIDRule)
		}
	}
	for _, s := range c.Severities {
		if !slices.Contains(severities, s) {
			bad("severities: %q must be one of %v", s, severities)
		}
	}
	for _, s := range c.On {
		if !slices.Contains(transitions, s) {
			bad("on: %q must be one of %v", s, transitions)
		}
	}
	if c.Group < 0 {
		bad("group %s is negative", c.Group)
	}
	if c.Timeout < 0 {
		bad("timeout %s is negative", c.Timeout)
	}
	return errors.Join(errs...)
}

// loadCAs reads a PEM file of certificates to trust.
func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
