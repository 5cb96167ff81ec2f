package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no admin key", []string{"all"}, nil, "HOOKMESH_ADMIN_KEY"},
		{"short admin key", []string{"all"}, map[string]string{"HOOKMESH_ADMIN_KEY": "short"}, "too short"},
		{"unknown target", []string{"mailer"}, map[string]string{"HOOKMESH_ADMIN_KEY": "0123456789abcdef0123"}, `unknown target "mailer"`},
		{"router without registry", []string{"router"}, map[string]string{"HOOKMESH_ADMIN_KEY": "0123456789abcdef0123"}, "HOOKMESH_REGISTRY_URL"},
		{"registry without secret key", []string{"registry"}, map[string]string{"HOOKMESH_ADMIN_KEY": "0123456789abcdef0123"}, "HOOKMESH_SECRET_KEY"},
		{"bad secret key", []string{"all"}, map[string]string{"HOOKMESH_ADMIN_KEY": "0123456789abcdef0123", "HOOKMESH_SECRET_KEY": "too-short"}, "32 bytes"},
		{"bad allowed network", []string{"all"}, map[string]string{"HOOKMESH_ALLOWED_NETWORKS": "10.0.0.0/99"}, "CIDR"},
		{"half of TLS", []string{"all"}, map[string]string{"HOOKMESH_ADMIN_KEY": "0123456789abcdef0123", "HOOKMESH_SECRET_KEY": "5rnBbP1fKGgpYuN1AzRkW5dYb0Ynbj2AQAq7eUMR5Vs=", "HOOKMESH_TLS_CERT_FILE": "c.pem"}, "HOOKMESH_TLS_KEY_FILE"},
		{"bad log level", []string{"-log-level", "loud", "all"}, nil, "-log-level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%v) = %v, want an error mentioning %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseReadsEnvironmentAndFlags(t *testing.T) {
	t.Parallel()
	cfg, _, err := parse([]string{"-http-addr", "127.0.0.1:9999", "ingest,router"}, env(map[string]string{
		"HOOKMESH_HTTP_ADDR":              "127.0.0.1:1111",
		"HOOKMESH_MONGODB_URI":            "mongodb://db:27017",
		"HOOKMESH_ALLOW_PRIVATE_NETWORKS": "true",
		"HOOKMESH_MAX_EVENT_BYTES":        "2048",
		"OTEL_TRACES_EXPORTER":            "otlp",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9999" || cfg.MongoURI != "mongodb://db:27017" || !cfg.AllowPrivateNetworks || cfg.Ingest.MaxPayloadBytes != 2048 || !cfg.ExportTraces {
		t.Fatalf("config = %+v", cfg)
	}
	if strings.Join(cfg.Targets, " ") != "ingest,router" {
		t.Fatalf("targets = %v", cfg.Targets)
	}
}
