// Command manager runs the tokensync operator: it keeps a short-lived login
// token from a third-party API in a Secret for every TokenRequest.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	// CA roots built in: crypto/x509 uses them when the system has none (the
	// image's empty base has no certificate files).
	_ "golang.org/x/crypto/x509roots/fallback"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/controllers"
	"github.com/tokensync/tokensync/internal/cabundle"
	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/internal/metricsauth"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tokensyncv1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr        string
		secureMetrics, enableHTTP2    bool
		leaderElect                   bool
		leaderElectionID              string
		leaderElectionNamespace       string
		namespaces                    string
		maxConcurrentReconciles       int
		qps                           float64
		burst                         int
		providerTimeout               time.Duration
		allowedEndpoints, allowedFile string
		allowInsecureHTTP             bool
		allowLoopback                 bool
		allowPrivate                  bool
		allowedPrivate                string
		caBundleFile                  string
		operatorNamespace             string
		fingerprintKeySecret          string
		limits                        controllers.LoginLimits
		heldTokens                    controllers.HeldTokenLimits
		restartInterval               time.Duration
		minLoginInterval              time.Duration
		requireCredentialsLabel       bool
		clusterOnly                   bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint, e.g. :8443 (secure) or 127.0.0.1:8080 with --metrics-secure=false; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with Kubernetes authentication and authorization; false serves plain HTTP.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server (off by default: HTTP/2 Rapid Reset and Stream Cancellation CVEs).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica logs in and writes Secrets.")
	flag.StringVar(&leaderElectionID, "leader-election-id", "tokensync.tokensync.io", "Name of the leader election Lease.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	flag.StringVar(&namespaces, "namespaces", "", "Comma-separated namespaces to watch; empty watches all.")
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", 16, "TokenRequests reconciled in parallel; logins run apart from these workers (--max-logins-in-flight; see docs/performance.md).")
	flag.Float64Var(&qps, "kube-api-qps", 200, "Queries per second to the Kubernetes API server (only bursts of new TokenRequests come near it; see docs/performance.md).")
	flag.IntVar(&burst, "kube-api-burst", 1000, "Burst of queries to the Kubernetes API server.")
	flag.DurationVar(&providerTimeout, "provider-timeout", 30*time.Second, "Total timeout of one provider login request.")
	flag.StringVar(&allowedEndpoints, "allowed-endpoints", "", "Endpoint allowlist, comma-separated provider=URL-prefix or provider=host entries (provider as in spec.provider), e.g. one=https://api.example.com/v1,other=login.example.org. A provider without entries accepts any endpoint.")
	flag.StringVar(&allowedFile, "allowed-endpoints-file", "", "File with one provider=URL-prefix entry per line (# comments), merged with --allowed-endpoints.")
	flag.BoolVar(&allowInsecureHTTP, "allow-insecure-http", false, "Allow plain http:// endpoints on non-loopback hosts (link-local and cloud metadata addresses stay refused).")
	flag.BoolVar(&allowLoopback, "allow-loopback-endpoints", false, "Allow endpoints on the operator's own host (127.0.0.0/8, ::1, localhost, 0.0.0.0), plain http included: for local fake providers in tests and demos. Off, no TokenRequest can reach a port of the operator's pod.")
	flag.StringVar(&allowedPrivate, "allowed-private-endpoints", "", "Private addresses (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7) logins may connect to, comma-separated host, host:port or CIDR entries, e.g. idp.internal,vpce.example.com:443,10.20.0.0/16: a host name lets logins to that name reach the private addresses it resolves to. Lifts only the private-address refusal; restricts nothing else (unlike --allowed-endpoints).")
	flag.BoolVar(&allowPrivate, "allow-private-endpoints", false, "Allow every private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7), where the cluster's Services and pods live. Link-local, metadata and loopback addresses stay refused.")
	flag.StringVar(&caBundleFile, "ca-bundle-file", "", "PEM file of certificate authorities trusted for providers' TLS besides the system's roots (an identity provider behind a private CA); read again when it changes, so an updated ConfigMap or Secret is used from the next login on. A file that cannot be read or holds no certificate stops the manager at start; a bad update keeps the certificates read before.")
	flag.StringVar(&operatorNamespace, "operator-namespace", defaultOperatorNamespace(), "Namespace the operator runs in, where it keeps its fingerprint key Secret (default: $POD_NAMESPACE, else the service account's namespace, else tokensync-system).")
	flag.StringVar(&fingerprintKeySecret, "fingerprint-key-secret", "tokensync-fingerprint-key", "Name of the Secret in --operator-namespace holding the HMAC key that fingerprints credentials (created on first start).")
	d := controllers.DefaultLoginLimits
	flag.IntVar(&limits.PerEndpointInFlight, "max-logins-in-flight-per-endpoint", d.PerEndpointInFlight, "Logins in flight to one endpoint host at a time: a hanging endpoint holds at most this many (-1: no bound).")
	flag.IntVar(&limits.PerNamespaceInFlight, "max-logins-in-flight-per-namespace", d.PerNamespaceInFlight, "Logins in flight for one namespace at a time (-1: no bound).")
	flag.IntVar(&limits.TotalInFlight, "max-logins-in-flight", d.TotalInFlight, "Logins in flight in the whole operator at a time; logins run off the reconcile workers, so this only bounds the memory and sockets they take (-1: no bound).")
	flag.BoolVar(&requireCredentialsLabel, "require-credentials-label", true, "Use a Secret as credentials only if it is labelled tokensync.io/credentials: \"true\" (false: any Secret of the TokenRequest's namespace).")
	flag.Float64Var(&limits.PerEndpointRate, "login-rate-per-endpoint", d.PerEndpointRate, "Logins per second sent to one endpoint host; a refresh is never delayed past its token's expiry (-1: no limit).")
	flag.IntVar(&limits.PerEndpointBurst, "login-burst-per-endpoint", d.PerEndpointBurst, "Burst of logins to one endpoint host above --login-rate-per-endpoint.")
	flag.BoolVar(&clusterOnly, "cluster-token-requests-only", false, "Serve ClusterTokenRequests only, no TokenRequest: the one manager that serves them beside managers sharded with --namespaces (which do not). Watches every namespace; give it a --leader-election-id of its own.")
	flag.Int64Var(&heldTokens.PerNamespace, "max-held-token-bytes-per-namespace", controllers.DefaultHeldTokenLimits.PerNamespace, "Bytes of the tokens one namespace may have kept in memory while their Secret writes are refused (a policy, a quota, a template); past it a token obtained is dropped, and the next login waits for a write to be allowed.")
	flag.Int64Var(&heldTokens.Total, "max-held-token-bytes", controllers.DefaultHeldTokenLimits.Total, "Bytes of the tokens kept in memory for refused Secret writes in all namespaces together.")
	flag.DurationVar(&restartInterval, "rollout-restart-min-interval", controllers.DefaultRolloutRestartMinInterval, "Least time between two restarts of one spec.rolloutRestartTargets entry; a restart held back happens when it has passed.")
	flag.DurationVar(&minLoginInterval, "min-login-interval", controllers.DefaultMinLoginInterval, "Least time between two logins of one TokenRequest or ClusterTokenRequest, failed ones included, whatever its token's lifetime; a force-refresh or a credentials change inside it waits for its end (negative: none).")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	setupLog := ctrl.Log.WithName("setup")
	if limit, ok := memoryLimit(os.Getenv("GOMEMLIMIT")); ok {
		debug.SetMemoryLimit(limit)
		setupLog.Info("Go memory limit set below the container's", "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"), "limitBytes", limit)
	}

	if err := run(runConfig{
		metricsAddr: metricsAddr, probeAddr: probeAddr, secureMetrics: secureMetrics, enableHTTP2: enableHTTP2,
		leaderElect: leaderElect, leaderElectionID: leaderElectionID, leaderElectionNamespace: leaderElectionNamespace,
		namespaces: splitList(namespaces), maxConcurrentReconciles: maxConcurrentReconciles, qps: qps, burst: burst,
		providerTimeout: providerTimeout, allowedEndpoints: allowedEndpoints, allowedEndpointsFile: allowedFile,
		allowedPrivateEndpoints: allowedPrivate,
		caBundleFile:            caBundleFile,
		endpointRules:           endpointpolicy.Rules{AllowInsecureHTTP: allowInsecureHTTP, AllowLoopback: allowLoopback, AllowPrivate: allowPrivate},
		fingerprintKey:          types.NamespacedName{Namespace: operatorNamespace, Name: fingerprintKeySecret}, limits: limits, restartInterval: restartInterval,
		heldTokens:                 heldTokens,
		allowUnlabelledCredentials: !requireCredentialsLabel, clusterTokenRequestsOnly: clusterOnly,
		minLoginInterval: minLoginInterval,
	}); err != nil {
		setupLog.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}

type runConfig struct {
	metricsAddr, probeAddr                    string
	secureMetrics, enableHTTP2, leaderElect   bool
	leaderElectionID, leaderElectionNamespace string
	namespaces                                []string
	maxConcurrentReconciles                   int
	qps                                       float64
	burst                                     int
	providerTimeout                           time.Duration
	allowedEndpoints, allowedEndpointsFile    string
	allowedPrivateEndpoints                   string
	caBundleFile                              string
	endpointRules                             endpointpolicy.Rules
	fingerprintKey                            types.NamespacedName
	limits                                    controllers.LoginLimits
	heldTokens                                controllers.HeldTokenLimits
	restartInterval                           time.Duration
	minLoginInterval                          time.Duration
	allowUnlabelledCredentials                bool
	clusterTokenRequestsOnly                  bool
}

func run(c runConfig) error {
	setupLog := ctrl.Log.WithName("setup")
	if c.clusterTokenRequestsOnly && len(c.namespaces) > 0 {
		// A ClusterTokenRequest writes into every namespace it selects; a
		// manager of some namespaces would leave the others without it, and
		// two such managers would each log in for it.
		return errors.New("--cluster-token-requests-only serves ClusterTokenRequests in every namespace: drop --namespaces")
	}

	policy, err := c.endpointPolicy()
	if err != nil {
		return err
	}
	rootCAs, err := c.rootCAs()
	if err != nil {
		return err
	}

	var tlsOpts []func(*tls.Config)
	if !c.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(cfg *tls.Config) { cfg.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: c.metricsAddr, SecureServing: c.secureMetrics, TLSOpts: tlsOpts}
	if c.secureMetrics {
		metricsOpts.FilterProvider = metricsauth.WithAuthenticationAndAuthorization
	}

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS = float32(c.qps)
	cfg.Burst = c.burst
	cfg.UserAgent = "tokensync/" + version

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  c.probeAddr,
		LeaderElection:          c.leaderElect,
		LeaderElectionID:        c.leaderElectionID,
		LeaderElectionNamespace: c.leaderElectionNamespace,
		// The old leader steps down at once on shutdown, so a rolling update
		// hands over without waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
		Cache: controllers.CacheOptions(controllers.CacheNamespaces(c.namespaces, c.fingerprintKey.Namespace, c.clusterTokenRequestsOnly),
			c.fingerprintKey.Namespace),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	registry := builtin.NewRegistry(providers.Options{
		Timeout:            c.providerTimeout,
		DialControlContext: policy.DialControlContext,
		CheckURL:           policy.CheckURL,
		RootCAs:            rootCAs,
		UserAgent:          "tokensync/" + version,
	})
	if _, err := controllers.Setup(mgr, controllers.Options{
		Providers:               registry,
		EndpointPolicy:          policy,
		FingerprintKey:          c.fingerprintKey,
		Limits:                  c.limits,
		Namespaces:              c.namespaces,
		MaxConcurrentReconciles: c.maxConcurrentReconciles,

		RolloutRestartMinInterval:  c.restartInterval,
		MinLoginInterval:           c.minLoginInterval,
		AllowUnlabelledCredentials: c.allowUnlabelledCredentials,
		HeldTokenLimits:            c.heldTokens,
		ClusterTokenRequestsOnly:   c.clusterTokenRequestsOnly,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}

	setupLog.Info("Starting manager", "version", version, "namespaces", c.namespaces, "clusterTokenRequestsOnly", c.clusterTokenRequestsOnly,
		"maxConcurrentReconciles", c.maxConcurrentReconciles, "endpointPolicy", policy.String(), "loginLimits", c.limits)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// endpointPolicy builds the endpoint policy from the flags; a malformed
// entry stops the manager before it starts, naming its flag.
func (c runConfig) endpointPolicy() (*endpointpolicy.Policy, error) {
	rules := c.endpointRules
	private, err := endpointpolicy.ParsePrivateEndpoints(c.allowedPrivateEndpoints)
	if err != nil {
		return nil, fmt.Errorf("--allowed-private-endpoints: %w", err)
	}
	rules.PrivateEndpoints = private
	policy, err := endpointpolicy.Parse(c.allowedEndpoints, rules)
	if err != nil {
		return nil, fmt.Errorf("--allowed-endpoints: %w", err)
	}
	if c.allowedEndpointsFile != "" {
		fromFile, err := endpointpolicy.ParseFile(c.allowedEndpointsFile, rules)
		if err != nil {
			return nil, fmt.Errorf("--allowed-endpoints-file: %w", err)
		}
		policy = policy.Merge(fromFile)
	}
	return policy, nil
}

// rootCAs returns the roots providers' TLS connections verify with: nil
// (the system's) without --ca-bundle-file, else the system's and the
// file's, the file read again when it changes. A file that cannot be used
// stops the manager before it starts, naming the flag.
func (c runConfig) rootCAs() (func() *x509.CertPool, error) {
	if c.caBundleFile == "" {
		return nil, nil
	}
	bundle, err := cabundle.Load(c.caBundleFile, cabundle.Options{Log: ctrl.Log.WithName("ca-bundle")})
	if err != nil {
		return nil, fmt.Errorf("--ca-bundle-file: %w", err)
	}
	return bundle.Pool, nil
}

// memoryLimit reads GOMEMLIMIT as the manifest sets it, the container's
// memory limit in bytes from the downward API, and returns 90% of it: the Go
// runtime counts only its own memory against the limit, and the kernel
// kills the container at the limit itself, so the collector must work
// harder a little before it. A value with a unit (GOMEMLIMIT=400MiB) was
// set by hand and is left to the runtime as it is.
func memoryLimit(env string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(env), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n / 10 * 9, true
}

// defaultOperatorNamespace is the pod's namespace: from $POD_NAMESPACE (the
// manifest sets it), else the service account's, else tokensync-system.
func defaultOperatorNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "tokensync-system"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
