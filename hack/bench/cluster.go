package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tokensyncv1alpha1.AddToScheme(scheme))
}

// cluster is the envtest control plane shared by every scenario of a run.
type cluster struct {
	env *envtest.Environment
	// config is the admin's, without a client-side rate limit.
	config *rest.Config
	// client has no client-side rate limit: the bench's own calls must never
	// be what a figure measures.
	client client.Client
	// kubeconfig is the file the manager subprocess reads.
	kubeconfig string
	clientset  *kubernetes.Clientset
}

// startCluster starts kube-apiserver and etcd from KUBEBUILDER_ASSETS (or
// bin/k8s/ when unset), installs the CRDs and writes a kubeconfig for the
// manager into dir.
func startCluster(root, dir string) (*cluster, error) {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dirs, _ := filepath.Glob(filepath.Join(root, "bin", "k8s", "*"))
		if len(dirs) == 0 {
			return nil, errors.New("envtest binaries not found: run `make envtest` (or hack/envtest-binaries.sh) first")
		}
		env.BinaryAssetsDirectory = slices.Max(dirs)
	}
	admin, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	c := &cluster{env: env}
	fail := func(err error) (*cluster, error) {
		_ = env.Stop()
		return nil, err
	}

	unlimited := rest.CopyConfig(admin)
	unlimited.QPS, unlimited.Burst = -1, 0
	unlimited.UserAgent = "tokensync-bench"
	c.config = unlimited
	if c.client, err = client.New(unlimited, client.Options{Scheme: scheme}); err != nil {
		return fail(fmt.Errorf("bench client: %w", err))
	}
	if c.clientset, err = kubernetes.NewForConfig(unlimited); err != nil {
		return fail(fmt.Errorf("bench clientset: %w", err))
	}

	// The manager runs as its own user, as it would in a cluster, with a
	// kubeconfig file like any out-of-cluster client.
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "tokensync-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fail(fmt.Errorf("add the manager's user: %w", err))
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fail(fmt.Errorf("manager kubeconfig: %w", err))
	}
	c.kubeconfig = filepath.Join(dir, "manager.kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kubeconfig, 0o600); err != nil {
		return fail(err)
	}
	return c, nil
}

func (c *cluster) stop() error { return c.env.Stop() }

// createNamespace creates a fresh namespace. envtest runs no namespace
// controller, so namespaces are never deleted: every scenario gets its own.
func (c *cluster) createNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.client.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// requestKey identifies one apiserver_request_total series, less the labels
// the bench does not distinguish.
type requestKey struct {
	verb, resource, subresource, code string
}

// requestCounts are the API server's own request counters.
type requestCounts map[requestKey]float64

// requestCounts reads apiserver_request_total from the API server's /metrics.
// It has no user label, so the bench tells writers apart by what it did
// itself; in the windows where it writes nothing, every write is the
// operator's.
func (c *cluster) requestCounts(ctx context.Context) (requestCounts, error) {
	raw, err := c.clientset.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the API server's /metrics: %w", err)
	}
	m, err := parseMetrics(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse the API server's /metrics: %w", err)
	}
	counts := requestCounts{}
	for _, s := range m.series("apiserver_request_total", nil) {
		k := requestKey{verb: label(s, "verb"), resource: label(s, "resource"), subresource: label(s, "subresource"), code: label(s, "code")}
		counts[k] += s.GetCounter().GetValue()
	}
	return counts, nil
}

// since returns the requests made between before and rc.
func (rc requestCounts) since(before requestCounts) requestCounts {
	d := requestCounts{}
	for k, v := range rc {
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

var writeVerbs = []string{"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}

// writes counts write requests to the given resources (any subresource),
// failed ones included: a conflict costs the API server as much as a success.
func (rc requestCounts) writes(resources ...string) int {
	var n float64
	for k, v := range rc {
		if slices.Contains(writeVerbs, k.verb) && slices.Contains(resources, k.resource) {
			n += v
		}
	}
	return int(n)
}

// writesTo counts write requests to resource/subresource exactly.
func (rc requestCounts) writesTo(resource, subresource string) int {
	var n float64
	for k, v := range rc {
		if slices.Contains(writeVerbs, k.verb) && k.resource == resource && k.subresource == subresource {
			n += v
		}
	}
	return int(n)
}

// count counts requests with the given verb on resource/subresource whose
// status code starts with codePrefix ("" for any).
func (rc requestCounts) count(verb, resource, subresource, codePrefix string) int {
	var n float64
	for k, v := range rc {
		if k.verb == verb && k.resource == resource && k.subresource == subresource && strings.HasPrefix(k.code, codePrefix) {
			n += v
		}
	}
	return int(n)
}

// requestsPer is a scenario's API requests divided by n, the number of
// TokenRequests it created or of logins it saw.
type requestsPer struct {
	requestCounts
	n int
}

func (r requestsPer) String() string {
	if r.n == 0 {
		return "—"
	}
	per := func(x int) string { return fmt.Sprintf("%.2f", float64(x)/float64(r.n)) }
	return fmt.Sprintf("GET secrets %s, POST secrets %s, PUT secrets %s, PUT tokenrequests/status %s (409 conflicts %s), GET tokenrequests %s, events written %s",
		per(r.count("GET", "secrets", "", "")), per(r.count("POST", "secrets", "", "")), per(r.count("PUT", "secrets", "", "")),
		per(r.count("PUT", "tokenrequests", "status", "")), per(r.count("PUT", "tokenrequests", "status", "409")),
		per(r.count("GET", "tokenrequests", "", "")), per(r.writes("events")))
}

// perRefresh are the API requests of a window in which the operator did
// nothing but refresh tokens, divided by the refreshes in it.
type perRefresh struct {
	requestCounts
	refreshes int
}

// reads are GETs of what the operator reads: Secrets (credentials, target
// Secrets whose cached copy is behind) and TokenRequests. The other GETs in
// a window are the leader election's (leases) and the API server's own
// housekeeping; getsByResource lists them all.
func (p perRefresh) reads() int {
	return p.count("GET", "secrets", "", "") + p.count("GET", "tokenrequests", "", "")
}

func (p perRefresh) statusWrites() int { return p.writesTo("tokenrequests", "status") }

// exact says that each refresh cost exactly one read, one Secret write, one
// status write and one event, and no other TokenRequest write. Events are
// exact too: client-go's events broadcaster folds repeats of an event into
// a series only when they regard the same object at the same
// resourceVersion, and every refresh's status write gives the TokenRequest
// a new one.
func (p perRefresh) exact() bool {
	n := p.refreshes
	return n > 0 && p.reads() == n && p.writes("secrets") == n && p.statusWrites() == n &&
		p.writesTo("tokenrequests", "") == 0 && p.writes("events") == n
}

// String gives each count per refresh and, since the targets are exact,
// the count itself.
func (p perRefresh) String() string {
	if p.refreshes == 0 {
		return "—"
	}
	per := func(x int) string { return fmt.Sprintf("%.2f (%s)", float64(x)/float64(p.refreshes), count(x)) }
	return fmt.Sprintf("reads %s, Secret writes %s, status writes %s, events %s; of the reads, %s GETs of Secrets and %s of TokenRequests; %s other TokenRequest writes",
		per(p.reads()), per(p.writes("secrets")), per(p.statusWrites()), per(p.writes("events")),
		count(p.count("GET", "secrets", "", "")), count(p.count("GET", "tokenrequests", "", "")), count(p.writesTo("tokenrequests", "")))
}

// getsByResource lists every GET of the window by resource, per refresh.
func (p perRefresh) getsByResource() string {
	if p.refreshes == 0 {
		return "—"
	}
	gets := map[string]float64{}
	for k, v := range p.requestCounts {
		if k.verb == "GET" {
			r := k.resource
			if k.subresource != "" {
				r += "/" + k.subresource
			}
			if r == "" {
				r = "(non-resource)"
			}
			gets[r] += v
		}
	}
	var out []string
	for _, r := range slices.Sorted(maps.Keys(gets)) {
		out = append(out, fmt.Sprintf("%s %.2f", r, gets[r]/float64(p.refreshes)))
	}
	return strings.Join(out, ", ")
}
