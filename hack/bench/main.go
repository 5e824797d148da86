// Command bench measures the tokensync operator of the tree it sits in
// against a real control plane (the envtest kube-apiserver and etcd from
// KUBEBUILDER_ASSETS, or bin/k8s/), the in-process fake providers and the
// manager binary run as a subprocess, and prints one markdown table:
// scenario, figure, limit, ratio, target, result. docs/performance.md says
// what each scenario measures. It is a Go module of its own, so that the
// product's go test ./... does not build it; from the repository root:
//
//	make bench                          # go -C hack/bench run . --scale=default, about 11 minutes on 2 cores
//	make bench BENCH_SCALE=large        # the burst at 5,000 TokenRequests
//	make bench BENCH_SCALE=xl           # 10,000 TokenRequests in the burst, restart, idle and memory scenarios
//	make bench BENCH_FLAGS=--shards=2   # and the burst again over two managers on disjoint namespaces
//	make bench BENCH_FLAGS='--only=1,2 --manager-flags="--kube-api-qps=500"'
//
// API request counts come from the API server's own apiserver_request_total,
// logins from the fake providers' counters, CPU time and RSS from /proc, and
// the heap from the manager's go_memstats_heap_inuse_bytes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	scaleName := flag.String("scale", "default", "Size of the run: "+strings.Join(scaleNames(), ", ")+".")
	managerFlags := flag.String("manager-flags", "", "Extra flags for the manager, space-separated, e.g. \"--kube-api-qps=200 --kube-api-burst=400\".")
	managerSource := flag.String("manager-source", "", "Build the manager from this source tree instead of the repository's, e.g. a copy with a change to measure.")
	diagnose := flag.Bool("diagnose", false, "Build the manager with pprof and client-go's rate-limiter metrics; keep profiles and logs.")
	only := flag.String("only", "", fmt.Sprintf("Comma-separated scenarios to run (1-%d), e.g. 1,2; scenarios 3-5 also run 2, whose TokenRequests they use, and 8 runs 6, its quiet twin. Empty runs all.", scenarioCount))
	loginLatency := flag.Duration("login-latency", 0, "Delay every fake login by this much (sweeps only: the targets assume instant answers).")
	shards := flag.Int("shards", 0, "With 2 or more, end the run with scenario 2's burst spread over this many namespaces, each with a manager of its own (--namespaces).")
	flag.Parse()

	selected := map[int]bool{}
	for _, f := range strings.FieldsFunc(*only, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > scenarioCount {
			fmt.Fprintf(os.Stderr, "--only: %q is not a scenario number 1-%d\n", f, scenarioCount)
			os.Exit(2)
		}
		selected[n] = true
	}
	sc, ok := scales[*scaleName]
	if !ok {
		fmt.Fprintf(os.Stderr, "--scale: unknown scale %q (want %s)\n", *scaleName, strings.Join(scaleNames(), ", "))
		os.Exit(2)
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep, err := run(ctx, options{
		scale: sc, root: root, managerSource: *managerSource, managerFlags: strings.Fields(*managerFlags),
		diagnose: *diagnose, only: selected, loginLatency: *loginLatency, shards: *shards, progress: os.Stderr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("\ntokensync bench, scale %s, %s, %s; other processes used %.0f%% of the CPUs (%.0f%% at most over 5 s); runtime %s\n\n",
		rep.Scale, time.Now().UTC().Format("2006-01-02 15:04 UTC"), rep.Machine, 100*rep.NeighboursMean, 100*rep.NeighboursPeak, rep.Runtime.Round(time.Second))
	rep.writeTable(os.Stdout)
	fmt.Println()
	rep.writeDetails(os.Stdout)
	if failed := rep.failed(); len(failed) > 0 {
		fmt.Printf("\n%d target(s) missed: %s\n", len(failed), strings.Join(failed, "; "))
	}
	if rep.NeighboursMean > 0.10 || rep.NeighboursPeak > 0.50 {
		fmt.Printf("\nWarning: other processes took %.0f%% of the CPUs on average and %.0f%% at their busiest; timings and refresh accuracy suffer. Rerun on an idle machine before reading them.\n",
			100*rep.NeighboursMean, 100*rep.NeighboursPeak)
	}
}

// repoRoot is the tokensync module's root, the tree the bench measures: the
// nearest directory above the working directory whose go.mod declares it
// (the bench's own go.mod, in hack/bench, declares another module).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if raw, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(raw) == tokensyncModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", tokensyncModule)
		}
		dir = parent
	}
}

const tokensyncModule = "github.com/tokensync/tokensync"

// modulePath is the path a go.mod file declares.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
