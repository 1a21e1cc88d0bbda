package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ConnOpt configures a connection to a cluster.
type ConnOpt func(*connCfg)

type connCfg struct {
	tls      *tls.Config
	sasl     sasl.Mechanism
	saslName string
	clientID string
	logger   *slog.Logger
}

// TLS encrypts connections with cfg. A zero &tls.Config{} uses the system
// roots, which is what most managed clusters need. The default is plaintext.
func TLS(cfg *tls.Config) ConnOpt { return func(c *connCfg) { c.tls = cfg } }

// SASLPlain authenticates with SASL/PLAIN. Use it with TLS.
func SASLPlain(user, pass string) ConnOpt {
	return func(c *connCfg) {
		c.saslName = "PLAIN"
		c.sasl = plain.Auth{User: user, Pass: pass}.AsMechanism()
	}
}

// SASLScram256 authenticates with SASL/SCRAM-SHA-256.
func SASLScram256(user, pass string) ConnOpt {
	return func(c *connCfg) {
		c.saslName = "SCRAM-SHA-256"
		c.sasl = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
	}
}

// SASLScram512 authenticates with SASL/SCRAM-SHA-512.
func SASLScram512(user, pass string) ConnOpt {
	return func(c *connCfg) {
		c.saslName = "SCRAM-SHA-512"
		c.sasl = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	}
}

// SASL parses a mechanism name (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, case
// insensitive) into a ConnOpt, for flags and config files.
func SASL(mechanism, user, pass string) (ConnOpt, error) {
	switch strings.ToUpper(mechanism) {
	case "PLAIN":
		return SASLPlain(user, pass), nil
	case "SCRAM-SHA-256":
		return SASLScram256(user, pass), nil
	case "SCRAM-SHA-512":
		return SASLScram512(user, pass), nil
	}
	return nil, fmt.Errorf("broker: SASL mechanism %q is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mechanism)
}

// ClientID sets the client.id sent to brokers, overriding the default "kappa".
func ClientID(id string) ConnOpt { return func(c *connCfg) { c.clientID = id } }

// ConnLogger sends the Kafka client's warnings and errors to l, overriding
// the default of no logs.
func ConnLogger(l *slog.Logger) ConnOpt { return func(c *connCfg) { c.logger = l } }

// Conn is a checked connection to a cluster. It holds the client options
// (seeds, TLS, SASL) that every client of an application shares, and an
// admin client.
type Conn struct {
	seeds []string
	opts  []kgo.Opt
	cl    *kgo.Client
	admin *Admin
}

// ErrNoSeeds is returned by Connect without any seed address.
var ErrNoSeeds = errors.New("broker: no seed brokers: pass at least one host:port")

// Connect dials the cluster at seeds and waits until it answers a metadata
// request, so a wrong address or credential fails here. ctx bounds the wait.
func Connect(ctx context.Context, seeds []string, opts ...ConnOpt) (*Conn, error) {
	if len(seeds) == 0 {
		return nil, ErrNoSeeds
	}
	cfg := connCfg{clientID: "kappa"}
	for _, o := range opts {
		o(&cfg)
	}
	kopts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID(cfg.clientID)}
	if cfg.tls != nil {
		kopts = append(kopts, kgo.DialTLSConfig(cfg.tls))
	}
	if cfg.sasl != nil {
		kopts = append(kopts, kgo.SASL(cfg.sasl))
	}
	if cfg.logger != nil {
		kopts = append(kopts, kgo.WithLogger(kgoLogger{cfg.logger}))
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("broker: client for %v: %w", seeds, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(pingCtx); err != nil {
		cl.Close()
		hint := "check the addresses and that the broker is running"
		if cfg.sasl != nil {
			hint += "; check the " + cfg.saslName + " credentials"
		}
		return nil, fmt.Errorf("broker: cannot reach %s: %w (%s)", strings.Join(seeds, ","), err, hint)
	}
	return &Conn{seeds: seeds, opts: kopts, cl: cl, admin: newAdmin(cl)}, nil
}

// Seeds returns the seed addresses.
func (c *Conn) Seeds() []string { return append([]string(nil), c.seeds...) }

// ClientOpts returns the franz-go options (seeds, TLS, SASL, client ID) for
// building further clients to the same cluster. Append your own options.
func (c *Conn) ClientOpts() []kgo.Opt { return append([]kgo.Opt(nil), c.opts...) }

// Client returns the connection's shared franz-go client.
func (c *Conn) Client() *kgo.Client { return c.cl }

// Admin returns topic administration over this connection.
func (c *Conn) Admin() *Admin { return c.admin }

// Close closes the connection's client.
func (c *Conn) Close() { c.cl.Close() }

type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	k.l.Log(context.Background(), lv, msg, keyvals...)
}

// NewKgoLogger adapts l to franz-go's logger interface at warn level, for
// the clients an application builds from ClientOpts.
func NewKgoLogger(l *slog.Logger) kgo.Logger { return kgoLogger{l} }
