package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// options configure one run.
type options struct {
	scale scale
	// root is the repository root (where go.mod is).
	root string
	// managerSource is the source tree the manager is built from: root
	// unless a patched copy is to be measured.
	managerSource string
	// managerFlags are passed to the manager after the bench's own.
	managerFlags []string
	// keepLogs keeps the manager logs and kubeconfig when the run ends.
	keepLogs bool
	// diagnose builds the manager with pprof and client-go's rate-limiter
	// metrics (see diagnosticsSource) and saves profiles with the logs.
	diagnose bool
	// only, when not empty, names the scenarios (1 to 7) to run.
	only map[int]bool
	// loginLatency delays every fake login, for sweeps that ask how the
	// operator's concurrency copes with a slow provider; the scenarios'
	// targets assume instant answers.
	loginLatency time.Duration
	// progress receives one line per step; nil discards them.
	progress io.Writer
}

// bench is one run: a control plane, the fake providers and the operator,
// shared by every scenario. Scenarios run one after another, each in
// namespaces of its own.
type bench struct {
	opts     options
	sc       scale
	cl       *cluster
	obs      *observer
	fake     *providertest.Server
	mcfg     managerConfig
	mgr      *managerProcess
	gen      int
	settings managerSettings
	started  time.Time
	rep      *report
}

// managerSettings are the concurrency and client limits the manager runs with.
type managerSettings struct {
	workers int
	qps     float64
	burst   int
}

func (s managerSettings) String() string {
	return fmt.Sprintf("--max-concurrent-reconciles=%d --kube-api-qps=%g --kube-api-burst=%d", s.workers, s.qps, s.burst)
}

// run runs every scenario and returns the report.
func run(ctx context.Context, o options) (rep *report, err error) {
	b := &bench{opts: o, sc: o.scale, started: time.Now(), rep: &report{Scale: o.scale.name, only: o.only}}
	// The bench's own watches log nothing worth reading; without a logger
	// controller-runtime prints a warning with a stack trace instead.
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	neighbourCtx, stopNeighbours := context.WithCancel(ctx)
	defer stopNeighbours()
	neighbours := make(chan neighbourWatch, 1)
	go watchNeighbours(neighbourCtx, neighbours)

	dir, err := os.MkdirTemp("", "tokensync-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if o.keepLogs || err != nil {
			b.logf("manager logs and kubeconfig kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	// Building the manager and starting the control plane take about as
	// long; do both at once.
	type built struct {
		bin string
		err error
	}
	buildDone := make(chan built, 1)
	go func() {
		source := o.managerSource
		if source == "" {
			source = o.root
		}
		bin, err := buildManager(ctx, source, dir, o.diagnose)
		buildDone <- built{bin, err}
	}()
	b.logf("starting the control plane")
	if b.cl, err = startCluster(o.root, dir); err != nil {
		return nil, err
	}
	defer func() {
		cancel() // stop the observer's watches first
		if stopErr := b.cl.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	if b.obs, err = startObserver(ctx, b.cl.config); err != nil {
		return nil, err
	}
	if b.fake, err = providertest.NewServer("127.0.0.1:0"); err != nil {
		return nil, err
	}
	defer b.fake.Close()
	for _, p := range []string{providertest.AML, providertest.AmpliFi, providertest.Partner} {
		b.fake.SetLatency(p, o.loginLatency)
	}
	bd := <-buildDone
	if bd.err != nil {
		return nil, bd.err
	}
	b.mcfg = managerConfig{binary: bd.bin, kubeconfig: b.cl.kubeconfig, logDir: dir, flags: o.managerFlags}
	if o.diagnose {
		if b.mcfg.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	if b.settings, err = settingsOf(bd.bin, o.managerFlags); err != nil {
		return nil, err
	}
	b.rep.Settings = b.settings.String()
	b.logf("control plane up, manager built; manager settings: %s", b.settings)

	steps := []struct {
		name string
		// scenarios are the scenarios a step is part of; none: always run.
		scenarios []int
		fn        func(context.Context) error
	}{
		{"1 latency, plain client", []int{1, 3}, b.plainLatency},
		{"start the manager", nil, b.startManager},
		{"1 latency", []int{1, 3}, b.latency},
		{"2 burst, plain client", []int{2, 3, 4, 5}, b.plainBurst},
		{"2 burst", []int{2, 3, 4, 5}, b.burstScenario},
		{"3 logins", []int{3}, b.loginsCheck},
		{"3 restart", []int{3}, b.restart},
		{"4 idle", []int{4}, b.idle},
		{"5 memory", []int{5}, b.memory},
		{"6+7 refresh and flaky provider", []int{6, 7}, b.refreshAndFlaky},
	}
	defer func() {
		if b.mgr != nil {
			if stopErr := b.mgr.stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}
	}()
	for _, s := range steps {
		if !o.selected(s.scenarios) {
			continue
		}
		stepStart := time.Now()
		b.logf("%s...", s.name)
		if err := s.fn(ctx); err != nil {
			if b.mgr != nil {
				err = fmt.Errorf("%w\nmanager log tail:\n%s", err, b.mgr.logTail())
			}
			return b.rep, fmt.Errorf("%s: %w", s.name, err)
		}
		b.logf("%s done in %s", s.name, time.Since(stepStart).Round(100*time.Millisecond))
	}
	b.rep.Runtime = time.Since(b.started)
	stopNeighbours()
	nw := <-neighbours
	b.rep.NeighboursMean, b.rep.NeighboursPeak = nw.mean, nw.peak
	return b.rep, nil
}

// selected reports whether a step of the given scenarios is to run.
func (o options) selected(scenarios []int) bool {
	if len(o.only) == 0 || len(scenarios) == 0 {
		return true
	}
	for _, n := range scenarios {
		if o.only[n] {
			return true
		}
	}
	return false
}

func (b *bench) logf(format string, args ...any) {
	if b.opts.progress == nil {
		return
	}
	fmt.Fprintf(b.opts.progress, "[%6.1fs load %s] %s\n", time.Since(b.started).Seconds(), loadAverage(), fmt.Sprintf(format, args...))
}

// loadAverage is the machine's one-minute load average: the bench shares
// the machine, and a busy neighbour shows in every figure.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(raw))[0]
}

func (b *bench) startManager(ctx context.Context) error {
	b.gen++
	m, err := startManager(ctx, b.mcfg, b.gen)
	if err != nil {
		return err
	}
	b.mgr = m
	return nil
}

// createTokenRequests creates b's TokenRequests with the given number of
// clients and returns when each create call started.
func (b *bench) createTokenRequests(ctx context.Context, tb batch, clients int) ([]time.Time, error) {
	started := make([]time.Time, tb.n)
	err := parallel(ctx, tb.n, clients, func(ctx context.Context, i int) error {
		started[i] = time.Now()
		if err := b.cl.client.Create(ctx, tb.tokenRequest(i, b.fake.URL())); err != nil {
			return fmt.Errorf("create TokenRequest %s/%s: %w", tb.ns, tb.name(i), err)
		}
		return nil
	})
	return started, err
}

// deleteBatch deletes a batch's TokenRequests, then, once the operator has
// seen them go, their Secrets. In that order the operator never finds a
// TokenRequest whose Secret is gone, which would be a login.
func (b *bench) deleteBatch(ctx context.Context, tb batch) error {
	if err := b.cl.client.DeleteAllOf(ctx, &tokensyncv1alpha1.TokenRequest{}, client.InNamespace(tb.ns)); err != nil {
		return fmt.Errorf("delete TokenRequests in %s: %w", tb.ns, err)
	}
	if b.mgr != nil {
		time.Sleep(time.Second)
		if err := b.waitQuiet(ctx, 0); err != nil {
			return err
		}
	}
	if err := b.cl.client.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(tb.ns)); err != nil {
		return fmt.Errorf("delete Secrets in %s: %w", tb.ns, err)
	}
	return nil
}

// waitQuiet waits until the manager has reconciled at least reconciles
// TokenRequests since it started and its queue is empty and idle, twice in
// a row half a second apart.
func (b *bench) waitQuiet(ctx context.Context, reconciles int) error {
	deadline := time.Now().Add(b.sc.timeout)
	quiet := 0
	for quiet < 2 {
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager did not settle within %s", b.sc.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		s, err := b.mgr.metrics()
		if err != nil {
			return err
		}
		c := map[string]string{"controller": "tokenrequest"}
		done := sumOf(s, "controller_runtime_reconcile_total", c)
		depth := sumOf(s, "workqueue_depth", map[string]string{"name": "tokenrequest"})
		active := sumOf(s, "controller_runtime_active_workers", c)
		if int(done) >= reconciles && depth == 0 && active == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return nil
}

// loginAttempts is the fake's request count over all providers.
func (b *bench) loginAttempts() int {
	return b.fake.Attempts(providertest.AML) + b.fake.Attempts(providertest.AmpliFi) + b.fake.Attempts(providertest.Partner)
}

// waitReady waits for key's first Ready and returns when the observer saw it.
func (b *bench) waitReady(ctx context.Context, key types.NamespacedName) (time.Time, error) {
	select {
	case <-b.obs.readyCh(key):
		return b.obs.firstReady(key), nil
	case <-time.After(b.sc.timeout):
		return time.Time{}, fmt.Errorf("%s not Ready within %s", key, b.sc.timeout)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// lastFirstReady is the latest first-Ready time of a batch.
func (b *bench) lastFirstReady(tb batch) time.Time {
	var last time.Time
	for i := range tb.n {
		if t := b.obs.firstReady(types.NamespacedName{Namespace: tb.ns, Name: tb.name(i)}); t.After(last) {
			last = t
		}
	}
	return last
}

var defaultFlag = regexp.MustCompile(`\(default ([^)]+)\)`)

// settingsOf reads the manager's defaults from its --help and applies the
// flags given (as --name=value), so the report names the settings used.
func settingsOf(binary string, flags []string) (managerSettings, error) {
	out, _ := exec.Command(binary, "--help").CombinedOutput() // exits 0 or 2 depending on the flag package
	defaults := map[string]string{}
	var current string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok && strings.HasPrefix(line, "  -") {
			current = strings.Fields(f)[0]
			continue
		}
		if m := defaultFlag.FindStringSubmatch(line); m != nil && current != "" {
			defaults[current] = m[1]
		}
	}
	for _, f := range flags {
		name, value, ok := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if ok {
			defaults[name] = value
		}
	}
	var s managerSettings
	var errs []error
	var err error
	s.workers, err = strconv.Atoi(defaults["max-concurrent-reconciles"])
	errs = append(errs, err)
	s.qps, err = strconv.ParseFloat(defaults["kube-api-qps"], 64)
	errs = append(errs, err)
	s.burst, err = strconv.Atoi(defaults["kube-api-burst"])
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("read the manager's concurrency defaults from %s --help: %w", filepath.Base(binary), err)
	}
	return s, nil
}

// waitGroupErr collects the first error of a group of goroutines.
type waitGroupErr struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (g *waitGroupErr) Go(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	}()
}

func (g *waitGroupErr) Wait() error {
	g.wg.Wait()
	return errors.Join(g.errs...)
}
