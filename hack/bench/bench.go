package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// options configure one run.
type options struct {
	scale scale
	// root is the repository root (where the tokensync go.mod is).
	root string
	// managerSource is the source tree the manager is built from: root
	// unless a patched copy is to be measured.
	managerSource string
	// managerFlags are passed to the manager after the bench's own.
	managerFlags []string
	// diagnose builds the manager with pprof and client-go's rate-limiter
	// metrics (see diagnosticsSource), saves profiles and keeps the logs.
	diagnose bool
	// only, when not empty, names the scenarios to run.
	only map[int]bool
	// loginLatency delays every fake login, for sweeps that ask how the
	// operator's concurrency copes with a slow provider; the scenarios'
	// targets assume instant answers.
	loginLatency time.Duration
	// shards, when 2 or more, adds a burst like scenario 2's spread over as
	// many namespaces, each reconciled by a manager of its own
	// (--namespaces), at the end of the run.
	shards int
	// progress receives one line per step; nil discards them.
	progress io.Writer
}

// bench is one run: a control plane, the fake providers and the operator,
// shared by every scenario. Scenarios run one after another, each in
// namespaces of its own.
type bench struct {
	opts    options
	sc      scale
	machine machine
	cl      *cluster
	obs     *observer
	// fake answers the logins of every scenario, through endpoints, which
	// serves it on as many loopback addresses as the batches ask for.
	fake      *providertest.Server
	endpoints *endpointPool
	addrs     addressCounter
	mcfg      managerConfig
	mgr       *managerProcess
	gen       int
	settings  managerSettings
	started   time.Time
	rep       *report
	// fan is scenario 9's namespaces and endpoint, made by its first step.
	fan *fanoutSetup
}

// scenarioCount is the number of scenarios, numbered from 1 as in
// docs/performance.md.
const scenarioCount = 10

// step is a part of a run. Steps run in order; a step runs when any of its
// scenarios is selected (--only), or always when it names none.
type step struct {
	name      string
	scenarios []int
	run       func(context.Context) error
}

func (b *bench) steps() []step {
	steps := []step{
		{"1 latency, plain client", []int{1, 3}, b.plainLatency},
		{"start the manager", nil, b.startManager},
		{"5 heap with no TokenRequest", []int{5}, b.emptyHeap},
		{"1 latency", []int{1, 3}, b.latency},
		{"2 burst, plain client", []int{2, 3, 4, 5}, b.plainBurst},
		{"2 burst", []int{2, 3, 4, 5}, b.burstScenario},
		{"3 logins", []int{3}, b.loginsCheck},
		{"3 restart", []int{3}, b.restart},
		{"4 idle", []int{4}, b.idle},
		{"5 memory", []int{5}, b.memory},
		// 8 is compared with 6, so it runs it too. Each runs alone: the
		// request counts of 6 are the refreshes' only, and the noise in 8
		// is only the hanging namespace.
		{"6 refresh", []int{6, 8}, b.refreshScenario},
		{"8 noisy neighbour", []int{8}, b.noisyNeighbour},
		{"7 flaky provider", []int{7}, b.flaky},
		// 10 runs after 7, whose provider it takes over (7's tokens then
		// live an hour: none of them comes due).
		{"10 provider outage", []int{10}, b.outageScenario},
		// 9 runs last: its ClusterTokenRequest and its Secrets stay, and
		// would count in the restart, idle and memory scenarios.
		{"9 fan-out, plain client", []int{9}, b.plainFanOut},
		{"9 fan-out", []int{9}, b.fanOutScenario},
	}
	if b.opts.shards > 1 {
		steps = append(steps, step{fmt.Sprintf("2 burst over %d managers", b.opts.shards), []int{2}, b.shardedBurst})
	}
	return steps
}

// run runs the selected scenarios and returns the report.
func run(ctx context.Context, o options) (rep *report, err error) {
	b := &bench{opts: o, sc: o.scale, started: time.Now(), rep: &report{Scale: o.scale.name, only: o.only}}
	if b.machine, err = newMachine(); err != nil {
		return nil, err
	}
	b.rep.Machine = b.machine.String()
	// The bench's own watches log nothing worth reading; without a logger
	// controller-runtime prints a warning with a stack trace instead.
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	neighbourCtx, stopNeighbours := context.WithCancel(ctx)
	defer stopNeighbours()
	neighbours := make(chan neighbourWatch, 1)
	go b.machine.watchNeighbours(neighbourCtx, neighbours)

	dir, err := os.MkdirTemp("", "tokensync-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if o.diagnose || err != nil {
			b.logf("manager logs, profiles and kubeconfig kept in %s", dir)
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
	b.fake = providertest.New()
	b.endpoints = newEndpointPool(b.fake, &b.addrs)
	defer b.endpoints.close()
	for _, p := range providerNames {
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
	b.rep.Settings = b.settings
	b.logf("control plane up, manager built; manager settings: %s", b.settings)

	defer func() {
		if b.mgr != nil {
			if stopErr := b.mgr.stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}
	}()
	for _, s := range b.steps() {
		if !o.selected(s.scenarios) {
			continue
		}
		stepStart := time.Now()
		b.logf("%s...", s.name)
		if err := s.run(ctx); err != nil {
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
	fmt.Fprintf(b.opts.progress, "[%6.1fs load %s] %s\n", time.Since(b.started).Seconds(), b.machine.load(), fmt.Sprintf(format, args...))
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

func (b *bench) stopManager() error {
	if b.mgr == nil {
		return nil
	}
	err := b.mgr.stop()
	b.mgr = nil
	return err
}

// snapshot is what a scenario compares before and after its window.
type snapshot struct {
	// requests are the API server's request counters.
	requests requestCounts
	// attempts are login attempts at the fake, all providers.
	attempts int
	// manager is the manager's /metrics; nil when no manager runs.
	manager metrics
}

func (b *bench) snapshot(ctx context.Context) (s snapshot, err error) {
	for _, p := range providerNames {
		s.attempts += b.fake.Attempts(p)
	}
	if s.requests, err = b.cl.requestCounts(ctx); err != nil || b.mgr == nil {
		return s, err
	}
	s.manager, err = b.mgr.metrics()
	return s, err
}

// managerCPU is the manager's CPU time so far. A scenario reads it apart
// from its snapshots, so that their scrapes of the manager's /metrics do not
// count as the manager's work.
func (b *bench) managerCPU() (time.Duration, error) {
	return b.machine.cpuTime(b.mgr.pid())
}

// createTokenRequests creates b's TokenRequests with the given number of
// clients.
func (b *bench) createTokenRequests(ctx context.Context, tb batch, clients int) error {
	return parallel(ctx, tb.n, clients, func(ctx context.Context, i int) error {
		if err := b.cl.client.Create(ctx, tb.tokenRequest(i)); err != nil {
			return fmt.Errorf("create TokenRequest %s/%s: %w", tb.ns, tb.name(i), err)
		}
		return nil
	})
}

// deleteBatch deletes a batch's TokenRequests, then, once the operator has
// seen them go, their Secrets. In that order the operator never finds a
// TokenRequest whose Secret is gone, which would be a login.
func (b *bench) deleteBatch(ctx context.Context, tb batch) error {
	if err := b.deleteAll(ctx, tokensyncv1alpha1.GroupVersion.WithKind("TokenRequest"), tb.ns); err != nil {
		return err
	}
	if b.mgr != nil {
		time.Sleep(time.Second)
		if _, err := b.waitQuiet(ctx, 0); err != nil {
			return err
		}
	}
	return b.deleteAll(ctx, corev1.SchemeGroupVersion.WithKind("Secret"), tb.ns)
}

// deleteAll deletes every object of kind in ns, creators at a time. The API
// server's delete-collection removes them one after another; at 10,000
// TokenRequests and 20,000 Secrets that took 106 s of the xl run.
func (b *bench) deleteAll(ctx context.Context, kind schema.GroupVersionKind, ns string) error {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(kind.GroupVersion().WithKind(kind.Kind + "List"))
	if err := b.cl.client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("list %ss in %s: %w", kind.Kind, ns, err)
	}
	return parallel(ctx, len(list.Items), creators, func(ctx context.Context, i int) error {
		obj := &list.Items[i]
		obj.SetGroupVersionKind(kind)
		if err := b.cl.client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete %s %s/%s: %w", kind.Kind, ns, obj.Name, err)
		}
		return nil
	})
}

// waitQuiet waits until the manager has reconciled at least reconciles
// TokenRequests since it started and its queue is empty and idle, twice in
// a row half a second apart, and returns when it first found it so: the
// manager's own account (controller-runtime's reconcile total, workqueue
// depth and active workers).
func (b *bench) waitQuiet(ctx context.Context, reconciles int) (time.Time, error) {
	return b.waitQuietController(ctx, "tokenrequest", reconciles)
}

// waitQuietController is waitQuiet for the named controller
// ("tokenrequest", "clustertokenrequest").
func (b *bench) waitQuietController(ctx context.Context, controller string, reconciles int) (time.Time, error) {
	ctrl, queue := map[string]string{"controller": controller}, map[string]string{"name": controller}
	var quietSince time.Time
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, b.sc.timeout, false, func(context.Context) (bool, error) {
		asked := time.Now()
		m, err := b.mgr.metrics()
		if err != nil {
			return false, err
		}
		if int(m.value("controller_runtime_reconcile_total", ctrl)) < reconciles ||
			m.value("workqueue_depth", queue) != 0 || m.value("controller_runtime_active_workers", ctrl) != 0 {
			quietSince = time.Time{}
			return false, nil
		}
		if quietSince.IsZero() {
			quietSince = asked
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("wait for the manager to settle: %w", err)
	}
	return quietSince, nil
}

// sleep waits for d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
