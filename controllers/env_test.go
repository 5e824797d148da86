package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// Generous timeouts: envtest on a loaded 2-core machine.
const (
	readyTimeout = 60 * time.Second
)

// env is one test's namespace, fake providers and manager.
type env struct {
	t     *testing.T
	ns    string
	fake  *providertest.Server
	stop  func()
	extra func(*TokenRequestReconciler)
}

// newEnv starts fake providers and a manager watching a fresh namespace.
func newEnv(t *testing.T, fakeOpts ...providertest.Option) *env {
	t.Helper()
	e := &env{t: t, ns: newNamespace(t), fake: providertest.Start(t, fakeOpts...)}
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	_, _, e.stop = startManager(e.t, managerOptions{namespaces: []string{e.ns}, tune: e.extra})
}

func (e *env) restart() {
	e.t.Helper()
	e.stop()
	e.start()
}

func (e *env) ctx() context.Context { return context.Background() }

// credentialsLabels are the labels of a Secret offered as credentials
// (--require-credentials-label, on by default).
func credentialsLabels() map[string]string {
	return map[string]string{tokensyncv1alpha1.LabelCredentials: "true"}
}

// createSecret creates a Secret labelled as credentials.
func (e *env) createSecret(name string, data map[string]string) *corev1.Secret {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Labels: credentialsLabels()}, StringData: data}
	if err := k8sClient.Create(e.ctx(), s); err != nil {
		e.t.Fatalf("create Secret %s: %v", name, err)
	}
	return s
}

func (e *env) updateSecret(name string, data map[string]string) {
	e.t.Helper()
	s := &corev1.Secret{}
	if err := k8sClient.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, s); err != nil {
		e.t.Fatal(err)
	}
	s.Data = nil
	s.StringData = data
	if err := k8sClient.Update(e.ctx(), s); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) createTokenRequest(name string, provider string, creds string, mut ...func(*tokensyncv1alpha1.TokenRequest)) *tokensyncv1alpha1.TokenRequest {
	e.t.Helper()
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec: tokensyncv1alpha1.LoginSpec{
				Provider: tokensyncv1alpha1.Provider(provider),
				Endpoint: e.fake.URL(),
			},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: creds},
		},
	}
	for _, m := range mut {
		m(tr)
	}
	if err := k8sClient.Create(e.ctx(), tr); err != nil {
		e.t.Fatalf("create TokenRequest %s: %v", name, err)
	}
	return tr
}

func (e *env) tokenRequest(name string) *tokensyncv1alpha1.TokenRequest {
	e.t.Helper()
	tr := &tokensyncv1alpha1.TokenRequest{}
	if err := k8sClient.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, tr); err != nil {
		e.t.Fatalf("get TokenRequest %s: %v", name, err)
	}
	return tr
}

func (e *env) secret(name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := k8sClient.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, s)
	return s, err
}

// patchTokenRequest applies mut to the stored TokenRequest, retrying conflicts.
func (e *env) patchTokenRequest(name string, mut func(*tokensyncv1alpha1.TokenRequest)) {
	e.t.Helper()
	eventually(e.t, 30*time.Second, func() error {
		tr := e.tokenRequest(name)
		mut(tr)
		return k8sClient.Update(e.ctx(), tr)
	})
}

// readyCondition returns the TokenRequest's Ready condition (nil if unset).
func readyCondition(tr *tokensyncv1alpha1.TokenRequest) *metav1.Condition {
	return meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionReady)
}

// waitReady waits for Ready=True and returns the TokenRequest.
func (e *env) waitReady(name string) *tokensyncv1alpha1.TokenRequest {
	e.t.Helper()
	return e.waitCondition(name, metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
}

func (e *env) waitCondition(name string, status metav1.ConditionStatus, reason string) *tokensyncv1alpha1.TokenRequest {
	e.t.Helper()
	var tr *tokensyncv1alpha1.TokenRequest
	eventually(e.t, readyTimeout, func() error {
		tr = e.tokenRequest(name)
		c := readyCondition(tr)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("Ready condition is %+v, want %s/%s", c, status, reason)
		}
		return nil
	})
	return tr
}

// token returns the target Secret's token ("" if none).
func (e *env) token(secretName string) string {
	s, err := e.secret(secretName)
	if err != nil {
		return ""
	}
	return string(s.Data[tokensyncv1alpha1.SecretKeyToken])
}

// events returns the events recorded for a TokenRequest.
func (e *env) events(name string) []string {
	e.t.Helper()
	list := &eventsList{}
	if err := k8sClient.List(e.ctx(), &list.EventList, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range list.Items {
		if ev.Regarding.Name == name {
			out = append(out, ev.Type+"/"+ev.Reason+": "+ev.Note)
		}
	}
	return out
}

func ownerIsController(s *corev1.Secret, tr *tokensyncv1alpha1.TokenRequest) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == tr.UID && ptr.Deref(o.Controller, false) && o.Kind == "TokenRequest" && o.APIVersion == tokensyncv1alpha1.GroupVersion.String() {
			return true
		}
	}
	return false
}

// Shared by the hardening tests: faults, hostile input, endpoint policy,
// leader election and leaks.

// Credentials and settings come from the providers' test registrations
// (providertest.FakeOf: each provider's <name>test.Fake), so that these
// helpers know every built-in provider without naming one.

// AML Watcher's test credentials, which tests name often.
var amlCreds = credsFor(providertest.AML)

// fakeFor returns provider's test registration. A provider without one is
// a mistake, named by the panic rather than papered over with another
// provider's credentials.
func fakeFor(provider string) fake.Provider {
	f, ok := providertest.FakeOf(provider)
	if !ok {
		panic(fmt.Sprintf("provider %q has no test registration: declare Fake in its folder's <name>test package and run make generate (docs/adding-a-provider.md)", provider))
	}
	return f
}

// credsFor returns credentials provider's fake accepts.
func credsFor(provider string) map[string]string {
	return maps.Clone(fakeFor(provider).Credentials)
}

// withSettingsFor gives a TokenRequest of a provider its TokenRequest
// configures the settings of its test registration: its block, spec.<name>
// (http logs in to AML Watcher's fake, oauth2 takes the defaults). Other
// providers' TokenRequests are left as they are.
func withSettingsFor(provider string) func(*tokensyncv1alpha1.TokenRequest) {
	settings := fakeFor(provider).Settings
	return func(tr *tokensyncv1alpha1.TokenRequest) {
		if settings == "" {
			return
		}
		if err := json.Unmarshal([]byte(`{"`+provider+`": `+settings+`}`), &tr.Spec); err != nil {
			panic(fmt.Sprintf("the settings of provider %s's fake do not fit spec.%s: %v", provider, provider, err))
		}
	}
}

// newEnvWith is newEnv with the reconciler tuned after the defaults are set
// (a shorter client timeout, an endpoint policy, a wrapped client); tune
// sees the env, so it can use the fake's address.
func newEnvWith(t *testing.T, tune func(*env, *TokenRequestReconciler), fakeOpts ...providertest.Option) *env {
	t.Helper()
	e := &env{t: t, ns: newNamespace(t), fake: providertest.Start(t, fakeOpts...)}
	if tune != nil {
		e.extra = func(r *TokenRequestReconciler) { tune(e, r) }
	}
	e.start()
	return e
}

// haveIPv6 reports whether this machine can open IPv6 sockets; without
// them a dial fails before DialControl runs.
func haveIPv6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// in returns the env for use in a subtest: its helpers then fail t.
func (e *env) in(t *testing.T) *env {
	sub := *e
	sub.t = t
	return &sub
}

// waitEvent waits for an event of the TokenRequest starting with prefix
// ("Warning/ProviderUnavailable"): events are written asynchronously.
func (e *env) waitEvent(name, prefix string) {
	e.t.Helper()
	eventually(e.t, readyTimeout, func() error {
		if evs := e.events(name); !hasEvent(evs, prefix) {
			return fmt.Errorf("no %s event for %s: %v", prefix, name, evs)
		}
		return nil
	})
}

// withEndpoint sets the TokenRequest's endpoint.
func withEndpoint(endpoint string) func(*tokensyncv1alpha1.TokenRequest) {
	return func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Endpoint = endpoint }
}

// forceRefresh sets the force-refresh annotation to value.
func (e *env) forceRefresh(name, value string) {
	e.t.Helper()
	e.patchTokenRequest(name, func(tr *tokensyncv1alpha1.TokenRequest) {
		if tr.Annotations == nil {
			tr.Annotations = map[string]string{}
		}
		tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh] = value
	})
}

// dialLog records the addresses an HTTP client dialed.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) add(a string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs = append(d.addrs, a)
}

func (d *dialLog) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// policyDialControl is the operator's DialControl (policy.DialControl, as
// main.go wires it), recording each address and, after the policy has had
// its say, refusing anything off loopback: tests never leave the machine.
func policyDialControl(policy *endpointpolicy.Policy, log *dialLog) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		if log != nil {
			log.add(address)
		}
		if err := policy.DialControl(network, address, c); err != nil {
			return err
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Unmap().IsLoopback() {
			return fmt.Errorf("the test refuses to dial %s: tests stay on loopback", address)
		}
		return nil
	}
}

type eventsList struct{ eventsv1.EventList }
