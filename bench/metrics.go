package main

// The metrics overhead: W1 and W2 with Kappa's metrics off (kappa-off)
// against metrics on and scraped every second (kappa-on), in one run.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-streams/kappa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metricsMode is how a Kappa contender keeps its metrics.
type metricsMode int

const (
	// metricsDefault: the default, metrics kept in a registry of the
	// app's own that nothing scrapes.
	metricsDefault metricsMode = iota
	// metricsOff: kappa.MetricsRegistry(nil), nothing kept.
	metricsOff
	// metricsScraped: kappa.MetricsRegistry(a registry), the HTTP
	// listener on a free loopback port, and GET /metrics every second.
	metricsScraped
)

// scrapeEvery is how often a metricsScraped contender is scraped.
const scrapeEvery = time.Second

const (
	metricsOffNotes     = "as kappa, with kappa.MetricsRegistry(nil): no metric kept, nothing registered"
	metricsScrapedNotes = "as kappa, with kappa.MetricsRegistry(prometheus.NewRegistry()), kappa.HTTP(\"127.0.0.1:0\") and GET /metrics every second"
)

// opts returns the app options of the mode, and the registry a scraped
// app registers in.
func (m metricsMode) opts() ([]kappa.Opt, *prometheus.Registry) {
	switch m {
	case metricsOff:
		return []kappa.Opt{kappa.MetricsRegistry(nil)}, nil
	case metricsScraped:
		reg := prometheus.NewRegistry()
		return []kappa.Opt{kappa.MetricsRegistry(reg), kappa.HTTP("127.0.0.1:0")}, reg
	}
	return nil, nil
}

// run runs app until ctx is done, scraping it every second in the
// metricsScraped mode.
func (m metricsMode) run(ctx context.Context, app *kappa.App, reg *prometheus.Registry) error {
	if m != metricsScraped {
		return app.Run(ctx)
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var scrapes, bytes, gathered atomic.Int64
	wg.Go(func() {
		tick := time.NewTicker(scrapeEvery)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			n, viaHTTP, err := scrapeApp(sctx, app, reg)
			if err != nil {
				if sctx.Err() == nil {
					logf("kappa-on: scrape: %v", err)
				}
				continue
			}
			scrapes.Add(1)
			bytes.Add(n)
			if !viaHTTP {
				gathered.Add(1)
			}
		}
	})
	err := app.Run(ctx)
	cancel()
	wg.Wait()
	if s := scrapes.Load(); s > 0 {
		logf("kappa-on: %d scrapes, %d bytes each on average, %d of them gathered without HTTP", s, bytes.Load()/s, gathered.Load())
	}
	return err
}

// scrapeApp reads app's metrics: GET /metrics from its HTTP listener,
// or, while that does not serve them (not listening yet, or a Kappa
// without /metrics), the registry's text exposition. It returns the bytes
// read and whether they came over HTTP.
func scrapeApp(ctx context.Context, app *kappa.App, reg *prometheus.Registry) (int64, bool, error) {
	if addr := app.HTTPAddr(); addr != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		if err != nil {
			return 0, false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, false, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, false, err
		}
		if resp.StatusCode == http.StatusOK {
			return n, true, nil
		}
		if resp.StatusCode != http.StatusNotFound {
			return 0, false, fmt.Errorf("GET /metrics: %s", resp.Status)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		return 0, false, err
	}
	w := &countWriter{}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return 0, false, err
		}
	}
	return w.n, false, nil
}

// countWriter counts the bytes written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
