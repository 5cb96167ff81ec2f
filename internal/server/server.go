// Package server serves Connect handlers (which speak Connect, gRPC and
// gRPC-Web) on one address over HTTP/1.1 and HTTP/2 (TLS or cleartext), next
// to gRPC health checking, server reflection, /healthz, /readyz and
// /metrics, and shuts down gracefully.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	connectcors "connectrpc.com/cors"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/rs/cors"
)

// Config configures a Server.
type Config struct {
	// Addr is the listen address; port 0 picks a free port.
	Addr string
	// ShutdownTimeout bounds the graceful shutdown; 15 s when zero.
	ShutdownTimeout time.Duration
	// TLSCertFile and TLSKeyFile, when both set, make the server speak TLS.
	TLSCertFile string
	TLSKeyFile  string
	// Pprof serves Go's profiler at /debug/pprof/.
	Pprof bool
	// CORSAllowedOrigins are the browser origins (scheme://host[:port], or
	// "*") that may call every route from another origin; none when empty.
	CORSAllowedOrigins []string
}

// ReadyFunc reports whether a dependency (database, broker) is reachable.
type ReadyFunc func(ctx context.Context) error

// Server is one HTTP server for every service of the process.
type Server struct {
	cfg    Config
	logger *slog.Logger
	mux    *http.ServeMux

	mu       sync.Mutex
	names    []string
	checks   map[string]ReadyFunc
	listener net.Listener
}

// New returns a server with the health, readiness and metrics routes
// mounted; metrics may be nil.
func New(cfg Config, logger *slog.Logger, metrics http.Handler) *Server {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	s := &Server{cfg: cfg, logger: logger, mux: http.NewServeMux(), checks: map[string]ReadyFunc{}}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	if metrics != nil {
		s.mux.Handle("GET /metrics", metrics)
	}
	if cfg.Pprof {
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s
}

// handler is the mux, behind the CORS handler when origins are allowed.
// Connect, gRPC-Web and the REST routes all need the same headers: those
// Connect and gRPC-Web define (connectrpc.com/cors), plus Authorization.
func (s *Server) handler() http.Handler {
	if len(s.cfg.CORSAllowedOrigins) == 0 {
		return s.mux
	}
	return cors.New(cors.Options{
		AllowedOrigins: s.cfg.CORSAllowedOrigins,
		AllowedMethods: connectcors.AllowedMethods(),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
		ExposedHeaders: connectcors.ExposedHeaders(),
		// Browsers cache a preflight answer for up to this long (Chromium
		// caps it at 2 h).
		MaxAge: 7200,
	}).Handler(s.mux)
}

// Mux is where services mount their handlers.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// AddServices records fully-qualified service names for health checking and
// reflection. Call it before Serve.
func (s *Server) AddServices(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, names...)
}

// AddReadyCheck adds a dependency that /readyz checks.
func (s *Server) AddReadyCheck(name string, f ReadyFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = f
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	s.mu.Lock()
	checks := make(map[string]ReadyFunc, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	var failed []string
	for name, check := range checks {
		if err := check(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, f := range failed {
			_, _ = fmt.Fprintln(w, f)
		}
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Listen binds the address, so that its port is known before the services
// that call themselves through it are built.
func (s *Server) Listen() (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.listener = ln
	return ln.Addr(), nil
}

// Serve mounts health checking and reflection for the services added, serves
// until ctx is done, then shuts down gracefully: in-flight requests finish
// within ShutdownTimeout.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.listener
	names := append([]string(nil), s.names...)
	s.mu.Unlock()
	if ln == nil {
		return errors.New("server: Serve called before Listen")
	}
	s.mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(names...)))
	reflector := grpcreflect.NewStaticReflector(names...)
	s.mux.Handle(grpcreflect.NewHandlerV1(reflector))
	s.mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           s.handler(),
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.cfg.TLSCertFile != "" && s.cfg.TLSKeyFile != "" {
			err = srv.ServeTLS(ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		} else {
			err = srv.Serve(ln)
		}
		errc <- err
	}()
	s.logger.Info("serving", "addr", ln.Addr().String(), "tls", s.cfg.TLSCertFile != "")
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Connections that never sent a request count as busy for their
		// first 5 s; whatever is left at the deadline is cut.
		s.logger.Warn("graceful shutdown timed out; closing the remaining connections", "timeout", s.cfg.ShutdownTimeout, "err", err)
		return srv.Close()
	}
	return nil
}
