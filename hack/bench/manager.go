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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

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

// buildManager builds the operator binary from source into dir, without
// -race whatever the caller's flags; with diagnose, with diagnosticsSource
// added. It builds as the Dockerfile does (CGO_ENABLED=0, -trimpath), which
// also lets it share the build cache with make test's Dockerfile check.
func buildManager(ctx context.Context, source, dir string, diagnose bool) (string, error) {
	bin := filepath.Join(dir, "manager")
	args := []string{"build", "-race=false", "-trimpath", "-o", bin}
	if diagnose {
		src := filepath.Join(dir, "bench_diagnostics.go")
		overlay, err := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(source, "zz_bench_diagnostics.go"): src},
		})
		if err != nil {
			return "", err
		}
		overlayPath := filepath.Join(dir, "overlay.json")
		if err := errors.Join(os.WriteFile(src, []byte(diagnosticsSource), 0o600), os.WriteFile(overlayPath, overlay, 0o600)); err != nil {
			return "", err
		}
		args = append(args, "-overlay="+overlayPath)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = source
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build the manager in %s: %w\n%s", source, err, out)
	}
	return bin, nil
}

// managerSettings are the concurrency, client and login limits the manager
// runs with.
type managerSettings struct {
	workers int
	qps     float64
	burst   int
	// loginRate and loginBurst are the logins a second (and their burst)
	// sent to one endpoint host; namespaceInFlight the logins in flight for
	// one namespace.
	loginRate         float64
	loginBurst        int
	namespaceInFlight int
}

func (s managerSettings) String() string {
	return fmt.Sprintf("--max-concurrent-reconciles=%d --kube-api-qps=%g --kube-api-burst=%d", s.workers, s.qps, s.burst)
}

// settingsOf reads the manager's settings: its defaults from its --help,
// overridden by the flags given (as --name=value), so that the report names
// the settings a run measured.
func settingsOf(binary string, flags []string) (managerSettings, error) {
	help, _ := exec.Command(binary, "--help").CombinedOutput() // exits 0 or 2 depending on the flag package
	value := func(name string) string {
		var v string
		// The flag package prints "  -name type" and, on the next line, the
		// usage ending in "(default value)".
		if m := regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `( .*)?\n.*\(default ([^)]+)\)`).FindSubmatch(help); m != nil {
			v = string(m[2])
		}
		for _, f := range flags {
			if n, fv, ok := strings.Cut(strings.TrimLeft(f, "-"), "="); ok && n == name {
				v = fv
			}
		}
		return v
	}
	var s managerSettings
	var errs [6]error
	s.workers, errs[0] = strconv.Atoi(value("max-concurrent-reconciles"))
	s.qps, errs[1] = strconv.ParseFloat(value("kube-api-qps"), 64)
	s.burst, errs[2] = strconv.Atoi(value("kube-api-burst"))
	s.loginRate, errs[3] = strconv.ParseFloat(value("login-rate-per-endpoint"), 64)
	s.loginBurst, errs[4] = strconv.Atoi(value("login-burst-per-endpoint"))
	s.namespaceInFlight, errs[5] = strconv.Atoi(value("max-logins-in-flight-per-namespace"))
	if err := errors.Join(errs[:]...); err != nil {
		return s, fmt.Errorf("read the manager's concurrency settings from %s --help: %w", filepath.Base(binary), err)
	}
	return s, nil
}

// managerConfig says how to run the manager.
type managerConfig struct {
	binary, kubeconfig, logDir string
	// flags are added after the bench's own (metrics, probes, leader election).
	flags []string
	// pprofAddr, when set, is where a --diagnose build serves net/http/pprof.
	pprofAddr string
}

// managerProcess is the operator running as a subprocess, so that its CPU
// time and memory are its own.
type managerProcess struct {
	cmd        *exec.Cmd
	metricsURL string
	logPath    string
	// exited is closed once the process has exited and been waited for.
	exited chan struct{}
}

// startManager runs the manager and waits until it leads and serves metrics.
// extra flags come after the bench's and the run's.
func startManager(ctx context.Context, c managerConfig, generation int, extra ...string) (*managerProcess, error) {
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
		"--leader-elect", "--leader-election-namespace=default", "--operator-namespace=default",
		// The fake providers listen on loopback (127.x.y.z, see endpoints.go).
		"--allow-loopback-endpoints",
	}
	logPath := filepath.Join(c.logDir, fmt.Sprintf("manager-%d.log", generation))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.binary, slices.Concat(args, c.flags, extra)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig, "TOKENSYNC_BENCH_PPROF="+c.pprofAddr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start the manager: %w", err)
	}
	m := &managerProcess{cmd: cmd, metricsURL: "http://" + metricsAddr + "/metrics", logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(m.exited)
	}()

	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, false, func(context.Context) (bool, error) {
		select {
		case <-m.exited:
			return false, fmt.Errorf("the manager exited at start: %s", cmd.ProcessState)
		default:
		}
		s, err := m.metrics()
		return err == nil && s.value("leader_election_master_status", nil) == 1, nil
	})
	if err != nil {
		_ = m.stop()
		return nil, fmt.Errorf("wait for the manager to lead: %w\n%s", err, m.logTail())
	}
	return m, nil
}

func (m *managerProcess) pid() int { return m.cmd.Process.Pid }

// stop sends SIGTERM and waits for the manager to exit.
func (m *managerProcess) stop() error {
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-m.exited:
		return nil
	case <-time.After(45 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		return errors.New("the manager did not stop within 45s of SIGTERM")
	}
}

// metrics scrapes the manager's /metrics.
func (m *managerProcess) metrics() (metrics, error) {
	resp, err := http.Get(m.metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", m.metricsURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// logTail is the end of the manager's log, for error messages.
func (m *managerProcess) logTail() string {
	raw, _ := os.ReadFile(m.logPath)
	const keep = 4000
	return string(raw[max(0, len(raw)-keep):])
}

// managerSummary explains a figure (never makes one) from the manager's own
// metrics between two scrapes: reconciles, where they waited and, in a
// --diagnose build, how long requests waited for client-go's client-side
// rate limiter.
func managerSummary(before, after metrics) string {
	return managerSummaryOf("tokenrequest", before, after)
}

// managerSummaryOf is managerSummary for the named controller.
func managerSummaryOf(controller string, before, after metrics) string {
	delta := func(get func(metrics, string, map[string]string) float64, name string, match map[string]string) float64 {
		return get(after, name, match) - get(before, name, match)
	}
	mean := func(sum, n float64) string {
		if n == 0 {
			return "—"
		}
		return ms(seconds(sum / n))
	}
	const reconcileTime, queueTime, limiter = "controller_runtime_reconcile_time_seconds", "workqueue_queue_duration_seconds", "rest_client_rate_limiter_duration_seconds"
	ctrl, queue := map[string]string{"controller": controller}, map[string]string{"name": controller}
	reconciles, queued := delta(metrics.observations, reconcileTime, ctrl), delta(metrics.observations, queueTime, queue)
	out := fmt.Sprintf("%.0f reconciles, mean %s in Reconcile, mean %s waiting in the queue", reconciles,
		mean(delta(metrics.value, reconcileTime, ctrl), reconciles), mean(delta(metrics.value, queueTime, queue), queued))

	var verbs, waits []string
	for _, s := range after.series(limiter, nil) {
		verbs = append(verbs, label(s, "verb"))
	}
	slices.Sort(verbs)
	for _, verb := range slices.Compact(verbs) {
		v := map[string]string{"verb": verb}
		n, waited := delta(metrics.observations, limiter, v), delta(metrics.value, limiter, v)
		if n > 0 {
			waits = append(waits, fmt.Sprintf("%s %.0f requests, %s waited in all (mean %s)", verb, n, secs(seconds(waited)), mean(waited, n)))
		}
	}
	if len(waits) > 0 {
		out += "; client-side rate limiter: " + strings.Join(waits, ", ")
	}
	return out
}

// profile saves a pprof profile of a --diagnose build of the manager into
// the run's directory; seconds > 0 asks for a CPU profile of that length.
// It does nothing when the run is not diagnosing.
func (b *bench) profile(ctx context.Context, kind string, seconds int, name string) error {
	if b.mcfg.pprofAddr == "" {
		return nil
	}
	url := fmt.Sprintf("http://%s/debug/pprof/%s", b.mcfg.pprofAddr, kind)
	if seconds > 0 {
		url += fmt.Sprintf("?seconds=%d", seconds)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pprof %s: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", kind, resp.Status)
	}
	f, err := os.Create(filepath.Join(b.mcfg.logDir, name))
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
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
