// Command hookmesh runs the webhooks gateway: `hookmesh all` runs every
// service in one process; `hookmesh registry|ingest|router|deliverer|status`
// (or a comma-separated list) runs some of them, each as many replicas as
// wanted. Every flag has a HOOKMESH_* environment variable.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hookmesh/hookmesh/app"
	"github.com/hookmesh/hookmesh/internal/telemetry"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hookmesh:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd(ctx, args[1:], getenv, os.Stdout, stderr)
		}
	}
	cfg, level, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})))
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// parse reads flags, whose defaults come from HOOKMESH_* variables (see
// the settings table).
func parse(args []string, getenv func(string) string, stderr io.Writer) (app.Config, slog.Level, error) {
	o, rest, err := parseOptions("hookmesh", args, getenv, stderr, usageLine)
	if err != nil {
		return o.cfg, 0, err
	}
	if len(rest) > 0 {
		o.cfg.Targets = rest
	} else if o.target != "" {
		o.cfg.Targets = strings.Split(o.target, ",")
	}
	return finish(o, getenv)
}

const usageLine = "usage: hookmesh [flags] all|registry|ingest|router|deliverer|status[,...]\n" +
	"       hookmesh reset-secrets [flags] | hookmesh reseal -old-secret-key OLD_KEY [flags]\n" +
	"Every flag has the environment variable named in its description."

// parseOptions parses args with the flags of every hookmesh command and
// those of scopes, each defaulting to its variable's value.
func parseOptions(name string, args []string, getenv func(string) string, stderr io.Writer, usage string, scopes ...string) (*options, []string, error) {
	var o options
	fs := newFlagSet(name, &o, scopes...)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	if err := applyEnv(fs, getenv); err != nil {
		return &o, nil, err
	}
	o.target = getenv("HOOKMESH_TARGET")
	if err := fs.Parse(args); err != nil {
		return &o, nil, err
	}
	return &o, fs.Args(), nil
}

// finish turns the options into the configuration.
func finish(o *options, getenv func(string) string) (app.Config, slog.Level, error) {
	cfg := o.cfg
	// Spans are exported only when the standard variables ask for it.
	cfg.ExportTraces = getenv("OTEL_TRACES_EXPORTER") != "" && getenv("OTEL_TRACES_EXPORTER") != "none" ||
		getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return cfg, 0, fmt.Errorf("-log-level %q: want debug, info, warn or error", o.logLevel)
	}
	return cfg, level, nil
}
