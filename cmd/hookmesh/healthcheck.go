package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const healthcheckUsage = "usage: hookmesh healthcheck [flags] [/readyz|/healthz]\n" +
	"Asks the hookmesh serving on -http-addr (HOOKMESH_HTTP_ADDR) of this machine whether it is ready\n" +
	"(/readyz, the default) or live (/healthz); exits 0 when it answers 200."

// healthcheck asks the process serving on the configured address of this
// machine whether it is ready (or live), for images that have no shell or
// HTTP client of their own (the distroless image of deploy/Dockerfile): a
// container health check runs `hookmesh healthcheck` in the container.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, rest, err := parseOptions("hookmesh healthcheck", args, getenv, stderr, healthcheckUsage)
	if err != nil {
		return err
	}
	path := "/readyz"
	if len(rest) > 0 {
		path = rest[0]
	}
	if path != "/readyz" && path != "/healthz" {
		return fmt.Errorf("healthcheck %q: want /readyz or /healthz", path)
	}
	host, port, err := net.SplitHostPort(o.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HOOKMESH_HTTP_ADDR %q: %w", o.cfg.HTTPAddr, err)
	}
	// A process listening on every address is reached on loopback.
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	transport := &http.Transport{}
	if o.cfg.TLSCertFile != "" {
		scheme = "https"
		// The process checks itself over loopback, a name its certificate
		// does not carry.
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := scheme + "://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", url, err)
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return fmt.Errorf("check %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, strings.TrimSpace(string(body)))
	return nil
}
