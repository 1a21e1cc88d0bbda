package kappa

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/kappa-streams/kappa/processor"
	"github.com/kappa-streams/kappa/query"
)

// Stores returns the app's interactive queries: typed reads of the stores
// of the tasks this instance runs (query.KeyValue, query.Window), where
// each key lives (Metadata), and the HTTP API that HTTP serves. Reads
// fail with query.ErrNotReady while the app is not running.
func (a *App) Stores() *query.Stores { return a.stores }

// Metadata returns where key of store lives: its partition, and the query
// endpoint of the instance that runs its task (see ApplicationServer), as
// Kafka Streams' queryMetadataForKey does. key is of the store's key type,
// or its text form.
func (a *App) Metadata(store string, key any) (query.KeyMetadata, error) {
	return a.stores.Metadata(store, key)
}

// HTTPAddr returns the address the HTTP listener is bound to, "" when
// HTTP is off or the app is not running.
func (a *App) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// listen binds the HTTP listener and returns the endpoint to advertise.
func (a *App) listen() (string, error) {
	if a.cfg.httpAddr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", a.cfg.httpAddr)
	if err != nil {
		return "", fmt.Errorf("kappa: HTTP(%q): %w", a.cfg.httpAddr, err)
	}
	a.mu.Lock()
	a.ln = ln
	a.mu.Unlock()
	endpoint := a.cfg.appServer
	if endpoint == "" {
		endpoint = ln.Addr().String()
		if host, port, _ := net.SplitHostPort(endpoint); net.ParseIP(host).IsUnspecified() {
			// A wildcard bind: advertise this machine's name.
			if name, err := os.Hostname(); err == nil {
				endpoint = net.JoinHostPort(name, port)
			}
			a.log.Warn("HTTP listens on all interfaces; advertising the host name for queries: set kappa.ApplicationServer to choose", "endpoint", endpoint)
		}
	}
	return endpoint, nil
}

// serve runs the HTTP endpoints on the listener until ctx is done.
func (a *App) serve(ctx context.Context) (stop func(), err error) {
	a.mu.Lock()
	ln := a.ln
	a.mu.Unlock()
	if ln == nil {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	for _, h := range a.cfg.handlers {
		if err := handle(mux, h.pattern, h.h); err != nil {
			ln.Close()
			return nil, err
		}
	}
	for _, h := range []struct {
		pattern string
		h       http.Handler
	}{
		{"GET /metrics", a.metricsHandler()},
		{"GET /healthz", http.HandlerFunc(a.serveHealth)},
		{"GET /readyz", http.HandlerFunc(a.serveReady)},
		{"GET /topology", http.HandlerFunc(a.serveTopology)},
		{"GET /v1/stores", a.stores.Handler()},
		{"GET /v1/stores/", a.stores.Handler()},
	} {
		if err := handle(mux, h.pattern, h.h); err != nil {
			ln.Close()
			return nil, err
		}
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("HTTP listener stopped", "error", err)
		}
	}()
	a.log.Info("HTTP listening", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-done
		a.mu.Lock()
		a.ln = nil
		a.mu.Unlock()
	}, nil
}

// handle registers h on mux, turning the panic of a conflicting pattern
// into an error.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kappa: Handle(%q): %v", pattern, r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// serveHealth answers 200 while Run runs.
func (a *App) serveHealth(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	running := a.running
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !running {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "stopped")
		return
	}
	fmt.Fprintln(w, "ok")
}

// serveReady answers 200 once the instance has joined its group and every
// task it runs is restored, 503 with what it waits for otherwise.
func (a *App) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rt := a.runtime()
	if rt == nil || !rt.Joined() {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: joining the group")
		return
	}
	var waiting []string
	for _, st := range rt.TaskStatus() {
		if !st.Ready && st.State != processor.TaskStandby {
			waiting = append(waiting, fmt.Sprintf("%s %s (%d/%d restored)", st.ID, st.State, st.Restored, st.RestoreTarget))
		}
	}
	if len(waiting) > 0 {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: tasks %v\n", waiting)
		return
	}
	fmt.Fprintln(w, "ready")
}

// serveTopology answers the topology's description: ?format=text (the
// default), dot (Graphviz) or mermaid.
func (a *App) serveTopology(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "text"
	}
	out, err := a.topo.Diagram(format)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "%v (formats: %v)\n", err, processor.DiagramFormats())
		return
	}
	fmt.Fprint(w, out)
}
