// Command composecheck loads a compose file the way docker compose does
// (compose-spec's loader, which checks the file against the Compose
// Specification's schema and resolves its anchors, variables and
// dependencies) and fails on anything it refuses. .ci/run runs it on
// deploy/compose.yaml where Docker's compose plugin is missing:
//
//	go run . ../compose.yaml ../env.example
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: composecheck COMPOSE_FILE ENV_FILE")
		os.Exit(2)
	}
	if err := check(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
}

func check(file, envFile string) error {
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithEnvFiles(envFile), cli.WithDotEnv, cli.WithName("hookmesh"))
	if err != nil {
		return fmt.Errorf("read options: %w", err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return fmt.Errorf("load %s: %w", file, err)
	}
	var names []string
	for name := range project.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Printf("%s: %d services: %s\n", file, len(names), strings.Join(names, ", "))
	return nil
}
