//go:build faults

package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// process is a child process of the suite in its own process group, its
// output appended to a log file.
type process struct {
	name string
	path string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *process) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "--- %s: starting %s %s\n", time.Now().Format(time.RFC3339Nano), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own group, so that a Ctrl-C of the suite does not reach it, and
	// the suite's death takes it along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return nil
}

func (p *process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig and waits up to wait for the process to end; then it
// kills it.
func (p *process) signal(sig syscall.Signal, wait time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill9 is kill -9: no goodbye, no cleanup.
func (p *process) kill9() { p.signal(syscall.SIGKILL, 10*time.Second) }

// cleanEnv is the suite's environment without HOOKMESH_ and RABBITMQ_
// variables, so that what a child sees is what the suite sets.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HOOKMESH_") || strings.HasPrefix(kv, "RABBITMQ_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitFor polls cond every 200 ms until it holds, p dies or d passes.
func waitFor(p *process, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if p != nil && !p.running() {
			return fmt.Errorf("%s exited while waiting for %s (%v); log: %s\n%s", p.name, what, p.err, p.log, tail(p.log, 20))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: not within %v", what, d)
			if p != nil {
				msg += fmt.Sprintf("; log: %s\n%s", p.log, tail(p.log, 20))
			}
			return errors.New(msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// rabbitNode is a RabbitMQ node of the suite's own: its own name, port,
// data and log directories, so that stopping it touches nothing else.
type rabbitNode struct {
	server, ctl string
	name        string
	port        int
	dir         string
	// advanced is the node's advanced.config (Erlang terms), when set;
	// erlArgs are extra arguments for its Erlang VM.
	advanced, erlArgs string
	proc              *process
}

func (r *rabbitNode) url() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", r.port) }

func (r *rabbitNode) env() []string {
	var extra []string
	if r.advanced != "" {
		extra = append(extra, "RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(r.dir, "advanced.config"))
	}
	if r.erlArgs != "" {
		extra = append(extra, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+r.erlArgs)
	}
	return append(cleanEnv(
		"RABBITMQ_NODENAME="+r.name,
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", r.port),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", r.port+20000),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(r.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(r.dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(r.dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(r.dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(r.dir, "pid"),
	), extra...)
}

// control runs rabbitmqctl against the node.
func (r *rabbitNode) control(args ...string) (string, error) {
	out, err := exec.Command(r.ctl, append([]string{"-n", r.name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl -n %s %s: %w: %s", r.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// init writes the node's configuration on a fresh data directory.
func (r *rabbitNode) init() error {
	if err := os.RemoveAll(r.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(r.dir, "log"), 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\nloopback_users = none\n", r.port)
	if err := os.WriteFile(filepath.Join(r.dir, "rabbitmq.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	if r.advanced != "" {
		if err := os.WriteFile(filepath.Join(r.dir, "advanced.config"), []byte(r.advanced), 0o644); err != nil {
			return err
		}
	}
	// No plugins: the management plugin would want the port of the
	// machine's own node.
	return os.WriteFile(filepath.Join(r.dir, "enabled_plugins"), []byte("[].\n"), 0o644)
}

// start boots the node and waits until it takes AMQP connections.
func (r *rabbitNode) start() error {
	r.proc = &process{name: "rabbitmq " + r.name, path: r.server, env: r.env(), log: filepath.Join(r.dir, "server.log")}
	if err := r.proc.start(); err != nil {
		return err
	}
	return waitFor(r.proc, 120*time.Second, "RabbitMQ node "+r.name, func() bool {
		c, err := amqp.Dial(r.url())
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stop stops the node the way an operator does, and waits for it.
func (r *rabbitNode) stop() error {
	if r.proc == nil || !r.proc.running() {
		return nil
	}
	out, err := exec.Command(r.ctl, "-n", r.name, "stop").CombinedOutput()
	if err != nil {
		r.proc.signal(syscall.SIGTERM, 30*time.Second)
		return fmt.Errorf("rabbitmqctl stop: %v: %s", err, out)
	}
	select {
	case <-r.proc.done:
	case <-time.After(60 * time.Second):
		r.proc.kill9()
	}
	return nil
}

// ferretDB is the suite's FerretDB, on a PostgreSQL database of its own.
type ferretDB struct {
	bin, pgURL, addr, dir string
	proc                  *process
}

func (f *ferretDB) uri() string { return "mongodb://" + f.addr + "/" }

func (f *ferretDB) start() error {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return err
	}
	f.proc = &process{name: "ferretdb", path: f.bin, args: []string{"-listen-addr", f.addr, "-state-dir", f.dir},
		env: cleanEnv("FERRETDB_POSTGRESQL_URL="+f.pgURL, "FERRETDB_LOG_LEVEL=warn", "FERRETDB_TELEMETRY=disable"),
		log: filepath.Join(f.dir, "ferretdb.log")}
	if err := f.proc.start(); err != nil {
		return err
	}
	return waitFor(f.proc, 30*time.Second, "FerretDB on "+f.addr, func() bool { return portOpen(f.addr) })
}

func (f *ferretDB) stop() { f.proc.signal(syscall.SIGTERM, 20*time.Second) }

// hookmesh is one hookmesh process.
type hookmesh struct {
	*process
	addr string
}

func (h *hookmesh) url() string { return "http://" + h.addr }

// start starts the process and waits until it is ready.
func (h *hookmesh) start() error {
	if err := h.process.start(); err != nil {
		return err
	}
	return waitFor(h.process, 60*time.Second, h.name+" ready", func() bool {
		resp, err := http.Get(h.url() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// pollCtx sleeps d or until ctx ends.
func pollCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
