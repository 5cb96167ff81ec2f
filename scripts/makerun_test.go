// Package scripts holds tests of the developer scripts (scripts/*.sh and
// the Makefile targets that run them).
package scripts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// lockedBuffer collects a process's output for the failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// marked returns the pids of the processes whose environment holds marker.
func marked(marker string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(env, []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func describe(pids []int) string {
	var out []string
	for _, pid := range pids {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		out = append(out, strconv.Itoa(pid)+" "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return strings.Join(out, "; ")
}

// TestMakeRunStopsOnSIGINTToMake starts `make run` with its own HTTP port,
// its own FerretDB port and its own database and queue names, waits until
// hookmesh answers, sends SIGINT to the make process alone (as `kill -INT`
// would; make does not pass it on), and checks that nothing `make run`
// started is left: not hookmesh, not the FerretDB it started.
func TestMakeRunStopsOnSIGINTToMake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the processes are found through /proc")
	}
	if testing.Short() {
		t.Skip("starts the whole local stack")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	name := "makerun_" + hex.EncodeToString(id[:])
	marker := "HOOKMESH_TEST_MAKE_RUN=" + name
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ferretPort := freePort(t)

	env := []string{marker}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOOKMESH_MONGODB_URI", "HOOKMESH_POSTGRES_URL", "HOOKMESH_TARGET", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HOOKMESH_HTTP_ADDR="+httpAddr,
		"HOOKMESH_FERRETDB_PORT="+strconv.Itoa(ferretPort),
		"HOOKMESH_DATABASE_PREFIX="+name,
		"HOOKMESH_AMQP_PREFIX="+name,
		"HOOKMESH_POSTGRES_URL=none",
		"HOOKMESH_ADMIN_KEY=hm_admin_"+name+"_0123456789",
		"HOOKMESH_SECRET_KEY=5rnBbP1fKGgpYuN1AzRkW5dYb0Ynbj2AQAq7eUMR5Vs=",
	)
	var out lockedBuffer
	cmd := exec.Command("make", "--no-print-directory", "run")
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &out, &out
	// A group of its own: a Ctrl-C of the test run does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Whatever happens, nothing of this test outlives it.
	t.Cleanup(func() {
		for _, pid := range marked(marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		deleteTopology(name)
	})

	// Up: the first run may build FerretDB and hookmesh (minutes).
	deadline := time.Now().Add(10 * time.Minute)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("make run exited before hookmesh was ready: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			t.Fatalf("hookmesh did not become ready on %s within 10 minutes\n%s", httpAddr, out.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	started := marked(marker)
	if len(started) < 3 {
		t.Fatalf("found %d processes of make run (%s), want make, the script, hookmesh, FerretDB", len(started), describe(started))
	}
	ferretURI := "mongodb://127.0.0.1:" + strconv.Itoa(ferretPort) + "/"
	dropDatabases(t, ferretURI, name)

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run did not exit within 3 minutes of SIGINT to make (left: %s)\n%s", describe(marked(marker)), out.String())
	}
	deadline = time.Now().Add(time.Minute)
	for {
		left := marked(marker)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of make run left after SIGINT to make: %s\n%s", describe(left), out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, addr := range []string{httpAddr, "127.0.0.1:" + strconv.Itoa(ferretPort)} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("something still listens on %s after make run stopped", addr)
		}
	}
}

// dropDatabases removes the databases the test's hookmesh made, through the
// test's FerretDB while it runs.
func dropDatabases(t *testing.T, uri, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop databases: %v", err)
		return
	}
	defer c.Disconnect(ctx)
	for _, svc := range []string{"registry", "ingest", "status"} {
		if err := c.Database(prefix + "_" + svc).Drop(ctx); err != nil {
			t.Logf("drop %s_%s: %v", prefix, svc, err)
		}
	}
}

// deleteTopology removes the exchanges and queues of the test's hookmesh
// from the broker `make run` used.
func deleteTopology(prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := os.Getenv("HOOKMESH_TEST_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	topo := mesh.NewTopology(prefix, 0)
	c, err := bus.Dial(ctx, topo.BusConfig(url, ""), sdktrace.NewTracerProvider(), propagation.TraceContext{}, slog.New(slog.DiscardHandler))
	if err != nil {
		return
	}
	defer c.Close()
	if ch, err := c.Channel(ctx); err == nil {
		_ = topo.Delete(ch)
		_ = ch.Close()
	}
}
