package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// diagnosticsSource is added to the manager's main package, through
// go build -overlay and without touching the tree, when the bench runs with
// --diagnose: it turns on client-go's opt-in rate-limiter and request
// latency metrics and serves net/http/pprof on $TOKENSYNC_BENCH_PPROF.
const diagnosticsSource = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

func init() {
	metrics.RegisterRESTClientMetrics(metrics.MetricRateLimiterLatency, metrics.MetricRequestLatency)
	if addr := os.Getenv("TOKENSYNC_BENCH_PPROF"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// buildManager builds the operator binary (without -race, whatever the
// caller's flags) into dir; with diagnose, with diagnosticsSource added.
func buildManager(ctx context.Context, root, dir string, diagnose bool) (string, error) {
	bin := filepath.Join(dir, "manager")
	args := []string{"build", "-race=false", "-o", bin}
	if diagnose {
		src := filepath.Join(dir, "bench_diagnostics.go")
		if err := os.WriteFile(src, []byte(diagnosticsSource), 0o600); err != nil {
			return "", err
		}
		overlay, err := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(root, "zz_bench_diagnostics.go"): src},
		})
		if err != nil {
			return "", err
		}
		overlayPath := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(overlayPath, overlay, 0o600); err != nil {
			return "", err
		}
		args = append(args, "-overlay="+overlayPath)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build the manager: %w\n%s", err, out)
	}
	return bin, nil
}

// managerProcess is the operator running as a subprocess, so that its CPU
// time and memory are its own.
type managerProcess struct {
	cmd        *exec.Cmd
	metricsURL string
	logPath    string
	done       chan error
}

// managerConfig says how to run the manager.
type managerConfig struct {
	binary, kubeconfig, logDir string
	// flags are added after the bench's own (metrics, probes, leader election).
	flags []string
	// pprofAddr, when set, is where a --diagnose build serves net/http/pprof.
	pprofAddr string
}

// startManager runs the manager and waits until it leads and serves metrics.
func startManager(ctx context.Context, c managerConfig, generation int) (*managerProcess, error) {
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	probeAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=" + probeAddr,
		// As deployed (config/manager): a restart must hand over the lease.
		"--leader-elect", "--leader-election-namespace=default",
	}
	args = append(args, c.flags...)
	logPath := filepath.Join(c.logDir, fmt.Sprintf("manager-%d.log", generation))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	if c.pprofAddr != "" {
		cmd.Env = append(cmd.Env, "TOKENSYNC_BENCH_PPROF="+c.pprofAddr)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start the manager: %w", err)
	}
	m := &managerProcess{cmd: cmd, metricsURL: "http://" + metricsAddr + "/metrics", logPath: logPath, done: make(chan error, 1)}
	go func() {
		m.done <- cmd.Wait()
		logFile.Close()
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-m.done:
			return nil, fmt.Errorf("the manager exited at start: %v\n%s", err, m.logTail())
		case <-ctx.Done():
			_ = m.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if s, err := m.metrics(); err == nil && sumOf(s, "leader_election_master_status", nil) == 1 {
			return m, nil
		}
		if time.Now().After(deadline) {
			_ = m.stop()
			return nil, fmt.Errorf("the manager did not become leader within 60s\n%s", m.logTail())
		}
	}
}

// stop sends SIGTERM and waits for the manager to exit.
func (m *managerProcess) stop() error {
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(45 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
		return errors.New("the manager did not stop within 45s of SIGTERM")
	}
}

// metrics scrapes the manager's /metrics.
func (m *managerProcess) metrics() ([]sample, error) {
	resp, err := http.Get(m.metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", m.metricsURL, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseMetrics(body), nil
}

// cpuTime is the user and system CPU time of the manager so far.
func (m *managerProcess) cpuTime() (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", m.cmd.Process.Pid, s)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// rss is the manager's resident set size in bytes.
func (m *managerProcess) rss() (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// logTail is the end of the manager's log, for error messages.
func (m *managerProcess) logTail() string {
	raw, _ := os.ReadFile(m.logPath)
	const keep = 4000
	if len(raw) > keep {
		raw = raw[len(raw)-keep:]
	}
	return string(raw)
}

// freeAddr returns a loopback address with a port free at the time of asking.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
