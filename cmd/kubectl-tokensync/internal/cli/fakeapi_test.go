package cli

import (
	"bytes"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The golden tests of whole commands (renew, check, version) run them
// against controller-runtime's fake client holding the fixtures, at
// fixedNow, so that their output is exact: the README shows it. What the
// real API server and operator make of them is the envtest tests'.

// fakeAPI is a fake API server holding objs.
func fakeAPI(funcs interceptor.Funcs, objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
}

// servedDiscovery serves the CRDs' resources.
func servedDiscovery() *fakediscovery.FakeDiscovery {
	return &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: []*metav1.APIResourceList{{
		GroupVersion: tokensyncv1alpha1.GroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "tokenrequests", Namespaced: true, Kind: "TokenRequest"}, {Name: "clustertokenrequests", Kind: "ClusterTokenRequest"}},
	}}}}
}

// runFake runs the plugin as kubectl-tokensync against c and disc at
// fixedNow; stdout and stderr are one stream, as a terminal shows them.
func runFake(t *testing.T, c client.Client, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := Main(Env{
		Args:   append([]string{"kubectl-tokensync"}, args...),
		Stdout: &out, Stderr: &out, Clock: &steppingClock{FakeClock: clocktesting.NewFakeClock(fixedNow)}, Version: "v0.1.0",
		client: c, discovery: servedDiscovery(),
	})
	return out.String(), code
}

// steppingClock is a fake clock whose waits pass at once: After(d) moves
// the time on by d. A command that waits (renew --wait, check --wait)
// runs in no time and its timeouts count as they would.
type steppingClock struct{ *clocktesting.FakeClock }

func (c *steppingClock) After(d time.Duration) <-chan time.Time {
	c.Step(d)
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}
