package kappa

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/kappa-streams/kappa/internal/runner"
	"github.com/kappa-streams/kappa/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// appMetrics are an App's metrics: the runtime fills runner across Runs,
// so counters continue from one Run to the next; gatherer is what /metrics
// serves.
type appMetrics struct {
	runner   *runner.Metrics // nil when metrics are off
	gatherer prometheus.Gatherer
}

// initMetrics registers the app's collector in the registry of
// MetricsRegistry, or in a registry of the app's own.
func (a *App) initMetrics() error {
	own := prometheus.NewRegistry()
	a.metrics.gatherer = own
	if a.cfg.metricsRegSet && a.cfg.metricsReg == nil {
		return nil // off
	}
	m := runner.NewMetrics()
	a.metrics.runner = m
	collector := func() prometheus.Collector { return metrics.NewCollector(a.cfg.appID, m.Snapshot) }
	if reg := a.cfg.metricsReg; reg != nil {
		if err := reg.Register(collector()); err != nil {
			if _, dup := errors.AsType[prometheus.AlreadyRegisteredError](err); dup {
				return fmt.Errorf("kappa: MetricsRegistry: the metrics of app %q are already registered in this registry: "+
					"give each instance its own registry, or register each through prometheus.WrapRegistererWith(prometheus.Labels{\"instance\": ...}, reg)", a.cfg.appID)
			}
			return fmt.Errorf("kappa: MetricsRegistry: %w", err)
		}
		if g, ok := reg.(prometheus.Gatherer); ok {
			a.metrics.gatherer = g
			return nil
		}
	}
	// The app's own registry: the default, or what /metrics serves when the
	// user's registry cannot be gathered.
	own.MustRegister(collector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return nil
}

// metricsHandler returns the handler of /metrics: the app's metrics in
// the Prometheus exposition formats, from the registry given with
// MetricsRegistry when it is also a Gatherer, from the app's own
// otherwise.
func (a *App) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.gatherer, promhttp.HandlerOpts{
		ErrorLog:      promLogger{a.log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// promLogger logs promhttp's errors (a collector that failed) as warnings.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) { p.l.Warn("metrics: " + fmt.Sprint(v...)) }
