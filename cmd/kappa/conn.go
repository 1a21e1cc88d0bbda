package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/kappa-streams/kappa/broker"
)

// defaultBrokers is the seed address when neither --brokers nor
// KAPPA_BROKERS is given: the address `kappa broker` listens on by default.
const defaultBrokers = "127.0.0.1:9092"

// connFlags are the flags every client command (topics, produce, consume)
// takes to reach a cluster.
type connFlags struct {
	brokers  string
	tls      bool
	mech     string
	user     string
	password string
}

// connFlagNames are the names addConnFlags registers.
var connFlagNames = map[string]bool{"brokers": true, "tls": true, "sasl-mechanism": true, "sasl-user": true, "sasl-password": true}

// addConnFlags registers the connection flags on c. The --brokers default
// comes from KAPPA_BROKERS when it is set.
func addConnFlags(c *cmdFlags) *connFlags {
	cf := &connFlags{}
	c.conn = true
	def := os.Getenv("KAPPA_BROKERS")
	if def == "" {
		def = defaultBrokers
	}
	c.StringVar(&cf.brokers, "brokers", def, "`HOST:PORT[,HOST:PORT]` seed brokers, comma-separated; $KAPPA_BROKERS sets the default")
	c.BoolVar(&cf.tls, "tls", false, "connect with TLS, trusting the system's root certificates")
	c.StringVar(&cf.mech, "sasl-mechanism", "", "`MECHANISM` SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default none)")
	c.StringVar(&cf.user, "sasl-user", "", "`USER` SASL user name")
	// The default stays empty so that -h never prints a password.
	c.StringVar(&cf.password, "sasl-password", "", "`PASSWORD` SASL password (default $KAPPA_SASL_PASSWORD, which keeps it out of ps)")
	return cf
}

// seeds splits and checks --brokers.
func (cf *connFlags) seeds() ([]string, error) {
	var seeds []string
	for s := range strings.SplitSeq(cf.brokers, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return nil, fmt.Errorf("--brokers %q: %q is not host:port; write for example --brokers 127.0.0.1:9092,10.0.0.2:9092", cf.brokers, s)
		}
		seeds = append(seeds, s)
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("--brokers is empty; give at least one host:port, for example --brokers %s", defaultBrokers)
	}
	return seeds, nil
}

// opts turns the TLS and SASL flags into broker options.
func (cf *connFlags) opts() ([]broker.ConnOpt, error) {
	var opts []broker.ConnOpt
	if cf.tls {
		opts = append(opts, broker.TLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	pass := cf.password
	if pass == "" {
		pass = os.Getenv("KAPPA_SASL_PASSWORD")
	}
	switch {
	case cf.mech != "":
		if cf.user == "" {
			return nil, fmt.Errorf("--sasl-mechanism %s needs --sasl-user", cf.mech)
		}
		o, err := broker.SASL(cf.mech, cf.user, pass)
		if err != nil {
			return nil, fmt.Errorf("--sasl-mechanism: %w", err)
		}
		opts = append(opts, o)
	case cf.user != "" || cf.password != "":
		return nil, fmt.Errorf("--sasl-user and --sasl-password need --sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
	}
	return opts, nil
}

// connect checks the flags and dials the cluster. A flag mistake is a usage
// error of command c. ctx bounds the dial.
func (cf *connFlags) connect(ctx context.Context, c *cmdFlags) (*broker.Conn, error) {
	seeds, err := cf.seeds()
	if err != nil {
		return nil, c.usageErrorf("%v", err)
	}
	opts, err := cf.opts()
	if err != nil {
		return nil, c.usageErrorf("%v", err)
	}
	conn, err := broker.Connect(ctx, seeds, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w; set the addresses with --brokers or KAPPA_BROKERS", err)
	}
	return conn, nil
}
