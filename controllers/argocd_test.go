package controllers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// The Argo CD health check and refresh action, in Argo CD's
// resource_customizations layout, and the argocd-cm patch built from them.
const (
	argoCDDir = "../config/argocd/tokensync.io/TokenRequest"
	// argoCDClusterDir holds the ClusterTokenRequest's health check: the
	// same script, with testdata of its own.
	argoCDClusterDir = "../config/argocd/tokensync.io/ClusterTokenRequest"
	argoCDConfigMap  = "../config/argocd/argocd-cm.yaml"
	// argoCDUpdateEnv set to 1 makes the tests rewrite the testdata, the
	// health_test.yaml and action_test.yaml and the argocd-cm patch.
	argoCDUpdateEnv = "TOKENSYNC_UPDATE_ARGOCD_TESTDATA"
	// argoCDForcePlaceholder stands for the time the refresh action writes,
	// in the expected output of action_test.yaml.
	argoCDForcePlaceholder = "0001-01-01T00:00:00Z"
)

type argoCDScripts struct{ health, discovery, refresh string }

func readArgoCDScripts(t *testing.T) argoCDScripts {
	t.Helper()
	read := func(path string) string {
		b, err := os.ReadFile(filepath.Join(argoCDDir, path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return argoCDScripts{health: read("health.lua"), discovery: read("actions/discovery.lua"), refresh: read("actions/refresh/action.lua")}
}

// runArgoCDLua runs script as Argo CD's Lua VM does, in hack/gitops (see
// its lua.go: the libraries Argo CD opens, its safe os, the deadline, the
// conversions to and from Lua).
func runArgoCDLua(script string, obj map[string]any, openLibs bool) (any, error) {
	var out struct {
		Result any    `json:"result"`
		Error  string `json:"error"`
	}
	if err := judge("lua", map[string]any{"script": script, "obj": obj, "openLibs": openLibs}, &out); err != nil {
		return nil, err
	}
	if out.Error != "" {
		return nil, errors.New(out.Error)
	}
	return out.Result, nil
}

// restoreEmptyObjects undoes gopher-json's empty array for an empty table
// where the object had an (empty) object, in objects and in lists (such as
// managedFields), as Argo CD does to an action's result.
func restoreEmptyObjects(result, original any) any {
	switch r := result.(type) {
	case map[string]any:
		if o, ok := original.(map[string]any); ok {
			for k, v := range r {
				if ov, ok := o[k]; ok {
					r[k] = restoreEmptyObjects(v, ov)
				}
			}
		}
	case []any:
		switch o := original.(type) {
		case map[string]any:
			if len(r) == 0 {
				return map[string]any{}
			}
		case []any:
			for i := range r {
				if i < len(o) {
					r[i] = restoreEmptyObjects(r[i], o[i])
				}
			}
		}
	}
	return result
}

// argoCDSandboxes are the two ways Argo CD runs a health check: from
// argocd-cm (no standard libraries, the default) and built in (with them).
// Both must agree.
var argoCDSandboxes = []struct {
	name     string
	openLibs bool
}{{"argocd-cm", false}, {"built-in", true}}

type argoCDHealth struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// healthOf runs health.lua on obj in both sandboxes.
func healthOf(t *testing.T, script string, obj map[string]any) argoCDHealth {
	t.Helper()
	var got []argoCDHealth
	for _, sb := range argoCDSandboxes {
		v, err := runArgoCDLua(script, obj, sb.openLibs)
		if err != nil {
			t.Fatalf("health.lua (%s): %v", sb.name, err)
		}
		var h argoCDHealth
		if err := remarshal(v, &h); err != nil {
			t.Fatalf("health.lua (%s) returned %v: %v", sb.name, v, err)
		}
		switch h.Status {
		case "Healthy", "Progressing", "Degraded", "Suspended":
		default:
			t.Fatalf("health.lua (%s) returned status %q: Argo CD shows Unknown", sb.name, h.Status)
		}
		got = append(got, h)
	}
	if got[0] != got[1] {
		t.Fatalf("health.lua differs with and without the standard libraries: %+v, %+v", got[0], got[1])
	}
	return got[0]
}

type argoCDAction struct {
	Disabled    bool   `json:"disabled"`
	IconClass   string `json:"iconClass"`
	DisplayName string `json:"displayName"`
}

// actionsOf runs discovery.lua on obj as Argo CD does (without open libs).
func actionsOf(t *testing.T, script string, obj map[string]any) map[string]argoCDAction {
	t.Helper()
	v, err := runArgoCDLua(script, obj, false)
	if err != nil {
		t.Fatalf("discovery.lua: %v", err)
	}
	actions := map[string]argoCDAction{}
	if err := remarshal(v, &actions); err != nil {
		t.Fatalf("discovery.lua returned %v: %v", v, err)
	}
	return actions
}

// refreshed runs the refresh action on obj as Argo CD does (never with open
// libs) and returns the object it returns.
func refreshed(t *testing.T, script string, obj map[string]any) map[string]any {
	t.Helper()
	v, err := runArgoCDLua(script, obj, false)
	if err != nil {
		t.Fatalf("refresh/action.lua: %v", err)
	}
	out, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("refresh/action.lua returned %v, want the object", v)
	}
	return restoreEmptyObjects(out, obj).(map[string]any)
}

// forceRefreshOf checks that the action set tokensync.io/force-refresh to
// the current time, and returns it.
func forceRefreshOf(t *testing.T, obj map[string]any, before time.Time) string {
	t.Helper()
	value, _, _ := unstructured.NestedString(obj, "metadata", "annotations", tokensyncv1alpha1.AnnotationForceRefresh)
	at, err := time.Parse(time.RFC3339, value)
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
		t.Fatalf("the refresh action set %s to %q, want the current time in RFC 3339", tokensyncv1alpha1.AnnotationForceRefresh, value)
	}
	return value
}

func remarshal(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

// argoCDCase is a TokenRequest read from the API server, kept as a testdata file.
type argoCDCase struct {
	file   string
	obj    *unstructured.Unstructured
	readAt time.Time
	// expired: the file keeps an expired token expired, rather than a
	// valid one valid (see argoCDTestdata).
	expired bool
	health  argoCDHealth
}

// TestArgoCD: the health check and the refresh action on TokenRequests as the
// API server returns them while the operator works: Ready is Healthy, a
// rejected password Degraded, a first login in progress or a refresh failing
// (the provider unavailable, or a request blocked in front of it) while the
// previous token is valid Progressing, a refresh failing after the token
// expired Degraded, spec.suspend Suspended; the refresh action's patch,
// applied as Argo CD applies it, makes the operator log in once.
// TOKENSYNC_UPDATE_ARGOCD_TESTDATA=1 keeps the objects as Argo CD's testdata.
func TestArgoCD(t *testing.T) {
	t.Parallel()
	s := readArgoCDScripts(t)
	// The first login of "first-login" hangs until the test ends: the client
	// gives up only after the test has looked.
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Minute})
	})
	e.fake.SetValid(providertest.Partner, partnerCreds)
	hanging := providertest.Start(t)
	hanging.Hang(providertest.Partner, true)
	shortLived := providertest.Start(t, providertest.WithLifetime(providertest.Partner, 12*time.Second))
	flaky := providertest.Start(t)
	suspendable := providertest.Start(t)
	firewalled := providertest.Start(t)
	firewalledShortLived := providertest.Start(t, providertest.WithLifetime(providertest.Partner, 12*time.Second))
	unavailable := providertest.Failure{Status: http.StatusServiceUnavailable}
	// A web application firewall's page in front of the provider.
	blocked := providertest.Failure{Fault: providertest.NotJSON, Status: http.StatusForbidden}

	e.createSecret("creds", partnerCreds)
	e.createSecret("wrong-creds", map[string]string{"accessKey": "ak-1", "secret": "wrong"})
	e.createTokenRequest("first-login", providertest.Partner, "creds", withEndpoint(hanging.URL()))
	e.createTokenRequest("ready", providertest.Partner, "creds")
	e.createTokenRequest("rejected", providertest.Partner, "wrong-creds")
	e.createTokenRequest("short-lived", providertest.Partner, "creds", withEndpoint(shortLived.URL()))
	e.createTokenRequest("refresh-failing", providertest.Partner, "creds", withEndpoint(flaky.URL()))
	e.createTokenRequest("suspended", providertest.Partner, "creds", withEndpoint(suspendable.URL()))
	e.createTokenRequest("request-blocked", providertest.Partner, "creds", withEndpoint(firewalled.URL()))
	e.createTokenRequest("request-blocked-expired", providertest.Partner, "creds", withEndpoint(firewalledShortLived.URL()))

	var cases []*argoCDCase
	// check reads the TokenRequest and checks its health: the status, and a
	// message containing each of want.
	check := func(t *testing.T, name, status string, want ...string) (*argoCDCase, error) {
		c := &argoCDCase{readAt: time.Now(), obj: e.in(t).unstructured(name)}
		c.health = healthOf(t, s.health, c.obj.Object)
		if c.health.Status != status {
			return c, fmt.Errorf("%s is %s (%q), want %s", name, c.health.Status, c.health.Message, status)
		}
		for _, w := range want {
			if !strings.Contains(c.health.Message, w) {
				return c, fmt.Errorf("%s: message %q, want it to contain %q", name, c.health.Message, w)
			}
		}
		return c, nil
	}
	mustCheck := func(t *testing.T, name, status string, want ...string) *argoCDCase {
		t.Helper()
		c, err := check(t, name, status, want...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	keep := func(c *argoCDCase, file string, expired bool) {
		c.file, c.expired = file, expired
		cases = append(cases, c)
	}

	t.Run("first login in progress", func(t *testing.T) {
		mustCheck(t, "first-login", "Progressing", "Waiting for the first login")
		eventually(t, readyTimeout, func() error {
			if hanging.Attempts(providertest.Partner) == 0 {
				return errors.New("the login has not started")
			}
			return nil
		})
		keep(mustCheck(t, "first-login", "Progressing", "Waiting for the first login"), "progressing-first-login.yaml", false)
	})

	t.Run("ready", func(t *testing.T) {
		e.in(t).waitReady("ready")
		keep(mustCheck(t, "ready", "Healthy", "holds a valid token"), "healthy.yaml", false)
	})

	t.Run("rejected password", func(t *testing.T) {
		tr := e.in(t).waitCondition("rejected", "False", tokensyncv1alpha1.ReasonAuthenticationFailed)
		if !hasTrueCondition(tr, tokensyncv1alpha1.ConditionStalled) {
			t.Fatalf("a rejected password is not Stalled: %+v", tr.Status.Conditions)
		}
		keep(mustCheck(t, "rejected", "Degraded", tokensyncv1alpha1.ReasonAuthenticationFailed+": "), "degraded-stalled.yaml", false)
	})

	t.Run("refresh failing while the token is valid", func(t *testing.T) {
		h := e.in(t)
		h.waitReady("refresh-failing")
		flaky.FailEvery(providertest.Partner, 1, unavailable)
		h.forceRefresh("refresh-failing", "argocd-test")
		tr := h.waitCondition("refresh-failing", "False", tokensyncv1alpha1.ReasonProviderUnavailable)
		if !tr.Status.ExpiresAt.After(time.Now()) {
			t.Fatalf("the previous token expired at %s", tr.Status.ExpiresAt)
		}
		keep(mustCheck(t, "refresh-failing", "Progressing", tokensyncv1alpha1.ReasonProviderUnavailable+": ", "stays valid until"), "progressing-refresh-failing.yaml", false)
	})

	t.Run("refresh failing after the token expired", func(t *testing.T) {
		h := e.in(t)
		h.waitReady("short-lived")
		shortLived.FailEvery(providertest.Partner, 1, unavailable)
		var c *argoCDCase
		eventually(t, readyTimeout, func() error {
			tr := h.tokenRequest("short-lived")
			ready := readyCondition(tr)
			expiresAt, last := tr.Status.ExpiresAt, tr.Status.LastAttempt
			if ready == nil || ready.Reason != tokensyncv1alpha1.ReasonProviderUnavailable || expiresAt == nil || last == nil || !last.Time.After(expiresAt.Time) {
				return fmt.Errorf("no failed attempt after the token expired yet: Ready %+v, expiresAt %v", ready, expiresAt)
			}
			var err error
			c, err = check(t, "short-lived", "Degraded", "the token expired at", tokensyncv1alpha1.ReasonProviderUnavailable+": ")
			return err
		})
		keep(c, "degraded-expired.yaml", true)
	})

	// RequestBlocked is judged as ProviderUnavailable is: it never stalls,
	// and heals with no person acting.
	t.Run("refresh blocked while the token is valid", func(t *testing.T) {
		h := e.in(t)
		h.waitReady("request-blocked")
		firewalled.FailEvery(providertest.Partner, 1, blocked)
		h.forceRefresh("request-blocked", "argocd-test")
		tr := h.waitCondition("request-blocked", "False", tokensyncv1alpha1.ReasonRequestBlocked)
		if hasTrueCondition(tr, tokensyncv1alpha1.ConditionStalled) || !tr.Status.ExpiresAt.After(time.Now()) {
			t.Fatalf("Stalled, or the previous token expired: %+v, expires at %s", tr.Status.Conditions, tr.Status.ExpiresAt)
		}
		keep(mustCheck(t, "request-blocked", "Progressing", tokensyncv1alpha1.ReasonRequestBlocked+": ", "stays valid until"), "progressing-request-blocked.yaml", false)
	})

	t.Run("refresh blocked after the token expired", func(t *testing.T) {
		h := e.in(t)
		h.waitReady("request-blocked-expired")
		firewalledShortLived.FailEvery(providertest.Partner, 1, blocked)
		var c *argoCDCase
		eventually(t, readyTimeout, func() error {
			tr := h.tokenRequest("request-blocked-expired")
			ready := readyCondition(tr)
			if ready == nil || ready.Reason != tokensyncv1alpha1.ReasonRequestBlocked || tr.Status.ExpiresAt == nil || tr.Status.ExpiresAt.After(time.Now()) {
				return fmt.Errorf("not blocked with an expired token yet: Ready %+v, expiresAt %v", ready, tr.Status.ExpiresAt)
			}
			var err error
			c, err = check(t, "request-blocked-expired", "Degraded", "the token expired at", tokensyncv1alpha1.ReasonRequestBlocked+": ")
			return err
		})
		keep(c, "degraded-request-blocked-expired.yaml", true)
	})

	t.Run("refresh action", func(t *testing.T) {
		h := e.in(t)
		live := h.unstructured("ready")
		if got := actionsOf(t, s.discovery, live.Object)["refresh"]; got.Disabled || got.DisplayName == "" {
			t.Fatalf("discovery on a Ready TokenRequest: refresh is %+v, want enabled", got)
		}
		logins := h.fake.Logins(providertest.Partner)
		token := h.token("ready")
		ranAt := time.Now()
		modified := &unstructured.Unstructured{Object: refreshed(t, s.refresh, live.DeepCopy().Object)}
		value := forceRefreshOf(t, modified.Object, ranAt)

		// As Argo CD applies an action's result: a JSON merge patch from the
		// live object to the result (status patched apart; there is none).
		patch, err := client.MergeFrom(live).Data(modified)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, tokensyncv1alpha1.AnnotationForceRefresh, value)
		if string(patch) != want {
			t.Fatalf("the action's patch is %s, want %s", patch, want)
		}
		if err := k8sClient.Patch(h.ctx(), modified, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
		eventually(t, readyTimeout, func() error {
			tr := h.tokenRequest("ready")
			if tr.Status.LastForceRefresh != value || h.token("ready") == token {
				return fmt.Errorf("no new token yet: lastForceRefresh %q", tr.Status.LastForceRefresh)
			}
			return nil
		})
		consistently(t, 3*time.Second, func() error {
			if n := h.fake.Logins(providertest.Partner) - logins; n != 1 {
				return fmt.Errorf("%d logins after the refresh action, want 1", n)
			}
			return nil
		})
		mustCheck(t, "ready", "Healthy", "holds a valid token")
	})

	t.Run("suspended", func(t *testing.T) {
		h := e.in(t)
		h.waitReady("suspended")
		h.patchTokenRequest("suspended", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Suspend = true })
		// Suspended from spec.suspend alone; the operator's word is awaited
		// so that the kept object is one the operator has acted on.
		mustCheck(t, "suspended", "Suspended")
		h.waitCondition("suspended", "True", tokensyncv1alpha1.ReasonSuspended)
		c := mustCheck(t, "suspended", "Suspended")
		if got := actionsOf(t, s.discovery, c.obj.Object)["refresh"]; !got.Disabled {
			t.Fatalf("discovery on a suspended TokenRequest: refresh is %+v, want disabled", got)
		}
		keep(c, "suspended.yaml", false)
	})

	if os.Getenv(argoCDUpdateEnv) == "1" {
		writeArgoCDTestdata(t, s, e.ns, cases)
	}
}

func hasTrueCondition(tr *tokensyncv1alpha1.TokenRequest, conditionType string) bool {
	for _, c := range tr.Status.Conditions {
		if c.Type == conditionType {
			return c.Status == "True"
		}
	}
	return false
}

// unstructured reads a TokenRequest as Argo CD sees it: the API server's JSON.
func (e *env) unstructured(name string) *unstructured.Unstructured {
	e.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(tokensyncv1alpha1.GroupVersion.WithKind("TokenRequest"))
	if err := k8sClient.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

var (
	rfc3339UTC   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	fakeEndpoint = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
)

// Times in the testdata: each object reads as if read at one of these, so
// that a token valid when it was read stays valid whenever the test runs,
// and an expired one stays expired.
var (
	argoCDReadAt        = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	argoCDExpiredReadAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

// argoCDTestdata turns a TokenRequest read from the API server into a
// testdata file: without server-set identity (uid, resourceVersion,
// managedFields, creationTimestamp), in namespace default, the fake's
// address replaced by https://partner.example.com, and every time shifted
// by the same amount (see argoCDReadAt).
func argoCDTestdata(t *testing.T, c *argoCDCase, ns string) []byte {
	t.Helper()
	u := c.obj.DeepCopy()
	for _, f := range []string{"uid", "resourceVersion", "managedFields", "creationTimestamp"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	readAt := argoCDReadAt
	if c.expired {
		readAt = argoCDExpiredReadAt
	}
	shift := readAt.Sub(c.readAt.Truncate(time.Second))
	b = rfc3339UTC.ReplaceAllFunc(b, func(s []byte) []byte {
		at, err := time.Parse(time.RFC3339, string(s))
		if err != nil {
			t.Fatal(err)
		}
		return []byte(at.Add(shift).Format(time.RFC3339))
	})
	b = fakeEndpoint.ReplaceAll(b, []byte("https://partner.example.com"))
	return bytes.ReplaceAll(b, []byte(ns), []byte("default"))
}

type argoCDHealthTests struct {
	Tests []argoCDHealthTest `json:"tests"`
}

type argoCDHealthTest struct {
	HealthStatus argoCDHealth `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

type argoCDActionTests struct {
	ActionTests []struct {
		Action             string `json:"action"`
		InputPath          string `json:"inputPath"`
		ExpectedOutputPath string `json:"expectedOutputPath"`
	} `json:"actionTests"`
	DiscoveryTests []struct {
		InputPath string `json:"inputPath"`
		Result    []struct {
			Name string `json:"name"`
			argoCDAction
		} `json:"result"`
	} `json:"discoveryTests"`
}

const argoCDTestdataHeader = `# Argo CD's test layout for resource customizations (resource_customizations/<group>/<kind>/).
# The testdata are TokenRequests read from the API server while tokensync worked on them,
# written by TestArgoCD in controllers/argocd_test.go (TOKENSYNC_UPDATE_ARGOCD_TESTDATA=1);
# times are shifted so that a valid token stays valid and an expired one expired.
`

// writeArgoCDTestdata keeps the cases as testdata files and health_test.yaml
// lists every testdata file with the health the script gives it; the
// refresh action's test uses the Ready and suspended TokenRequests.
func writeArgoCDTestdata(t *testing.T, s argoCDScripts, ns string, cases []*argoCDCase) {
	t.Helper()
	write := func(path string, b []byte) {
		if err := os.WriteFile(filepath.Join(argoCDDir, path), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		b := argoCDTestdata(t, c, ns)
		var obj map[string]any
		if err := yaml.Unmarshal(b, &obj); err != nil {
			t.Fatal(err)
		}
		if got := healthOf(t, s.health, obj); got.Status != c.health.Status {
			t.Fatalf("%s: the testdata is %s (%s), the object read was %s", c.file, got.Status, got.Message, c.health.Status)
		}
		write(filepath.Join("testdata", c.file), b)
		switch c.file {
		case "healthy.yaml":
			write("actions/testdata/tokenrequest.yaml", b)
			out := refreshed(t, s.refresh, obj)
			if err := unstructured.SetNestedField(out, argoCDForcePlaceholder, "metadata", "annotations", tokensyncv1alpha1.AnnotationForceRefresh); err != nil {
				t.Fatal(err)
			}
			refreshedYAML, err := yaml.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			write("actions/testdata/tokenrequest-refreshed.yaml", refreshedYAML)
		case "suspended.yaml":
			write("actions/testdata/tokenrequest-suspended.yaml", b)
		}
	}

	files, err := filepath.Glob(filepath.Join(argoCDDir, "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var tests argoCDHealthTests
	for _, f := range files {
		tests.Tests = append(tests.Tests, argoCDHealthTest{
			HealthStatus: healthOf(t, s.health, readYAMLObject(t, f)),
			InputPath:    filepath.ToSlash(filepath.Join("testdata", filepath.Base(f))),
		})
	}
	b, err := yaml.Marshal(tests)
	if err != nil {
		t.Fatal(err)
	}
	write("health_test.yaml", append([]byte(argoCDTestdataHeader), b...))
}

func readYAMLObject(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

// TestArgoCDTestdata runs the kept testdata as Argo CD's own tests of
// resource customizations do (util/lua: health_test.yaml and
// action_test.yaml), and checks that the argocd-cm patch holds the scripts.
func TestArgoCDTestdata(t *testing.T) {
	t.Parallel()
	s := readArgoCDScripts(t)

	for _, dir := range []string{argoCDDir, argoCDClusterDir} {
		t.Run(filepath.Base(dir)+"/health_test.yaml", func(t *testing.T) {
			if script := string(readFile(t, filepath.Join(dir, "health.lua"))); script != s.health {
				t.Fatalf("%s/health.lua differs from the TokenRequest's: the two kinds share one script", dir)
			}
			var tests argoCDHealthTests
			if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, "health_test.yaml")), &tests); err != nil {
				t.Fatal(err)
			}
			if len(tests.Tests) == 0 {
				t.Fatal("health_test.yaml has no tests")
			}
			for _, tc := range tests.Tests {
				got := healthOf(t, s.health, readYAMLObject(t, filepath.Join(dir, tc.InputPath)))
				if got != tc.HealthStatus {
					t.Errorf("%s: %+v, want %+v", tc.InputPath, got, tc.HealthStatus)
				}
			}
		})
	}

	t.Run("action_test.yaml", func(t *testing.T) {
		dir := filepath.Join(argoCDDir, "actions")
		var tests argoCDActionTests
		if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, "action_test.yaml")), &tests); err != nil {
			t.Fatal(err)
		}
		if len(tests.ActionTests) == 0 || len(tests.DiscoveryTests) == 0 {
			t.Fatal("action_test.yaml has no action or no discovery tests")
		}
		for _, tc := range tests.DiscoveryTests {
			got := actionsOf(t, s.discovery, readYAMLObject(t, filepath.Join(dir, tc.InputPath)))
			want := map[string]argoCDAction{}
			for _, r := range tc.Result {
				want[r.Name] = r.argoCDAction
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("discovery on %s: %+v, want %+v", tc.InputPath, got, want)
			}
		}
		for _, tc := range tests.ActionTests {
			if tc.Action != "refresh" {
				t.Fatalf("action %q: there is only refresh", tc.Action)
			}
			ranAt := time.Now()
			out := refreshed(t, s.refresh, readYAMLObject(t, filepath.Join(dir, tc.InputPath)))
			forceRefreshOf(t, out, ranAt)
			if err := unstructured.SetNestedField(out, argoCDForcePlaceholder, "metadata", "annotations", tokensyncv1alpha1.AnnotationForceRefresh); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := remarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if want := readYAMLObject(t, filepath.Join(dir, tc.ExpectedOutputPath)); !reflect.DeepEqual(got, want) {
				t.Errorf("refresh on %s: %v, want %v", tc.InputPath, got, want)
			}
		}
	})

	t.Run("argocd-cm.yaml", func(t *testing.T) {
		want := argoCDConfigMapPatch(s)
		if os.Getenv(argoCDUpdateEnv) == "1" {
			if err := os.WriteFile(argoCDConfigMap, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got := readFile(t, argoCDConfigMap)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s does not hold the scripts of %s: run with %s=1", argoCDConfigMap, argoCDDir, argoCDUpdateEnv)
		}
		// What Argo CD reads from the keys (util/settings: split keys
		// resource.customizations.<type>.<group>_<kind>).
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal(got, &cm); err != nil {
			t.Fatal(err)
		}
		if cm.Data["resource.customizations.health.tokensync.io_TokenRequest"] != s.health ||
			cm.Data["resource.customizations.health.tokensync.io_ClusterTokenRequest"] != s.health {
			t.Error("the health keys do not hold health.lua")
		}
		var actions struct {
			Discovery   string `json:"discovery.lua"`
			Definitions []struct {
				Name   string `json:"name"`
				Action string `json:"action.lua"`
			} `json:"definitions"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["resource.customizations.actions.tokensync.io_TokenRequest"]), &actions); err != nil {
			t.Fatal(err)
		}
		if actions.Discovery != s.discovery || len(actions.Definitions) != 1 ||
			actions.Definitions[0].Name != "refresh" || actions.Definitions[0].Action != s.refresh {
			t.Error("the actions key does not hold discovery.lua and refresh/action.lua")
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// argoCDConfigMapPatch is argocd-cm with the scripts under Argo CD's split
// keys, the scripts as YAML literal blocks so that they read as in their files.
func argoCDConfigMapPatch(s argoCDScripts) []byte {
	var b strings.Builder
	block := func(indent, text string) {
		for _, line := range strings.SplitAfter(text, "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString(indent)
			}
			b.WriteString(line)
		}
	}
	b.WriteString(`# The Argo CD health check and refresh action for tokensync.io/TokenRequest, and the
# same health check for tokensync.io/ClusterTokenRequest, from tokensync.io/TokenRequest/
# (TestArgoCDTestdata checks it; TOKENSYNC_UPDATE_ARGOCD_TESTDATA=1 rewrites it).
# Merge it into Argo CD's argocd-cm:
#   kubectl -n argocd patch configmap argocd-cm --patch-file config/argocd/argocd-cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
data:
  resource.customizations.health.tokensync.io_TokenRequest: |
`)
	block("    ", s.health)
	b.WriteString("  resource.customizations.actions.tokensync.io_TokenRequest: |\n    discovery.lua: |\n")
	block("      ", s.discovery)
	b.WriteString("    definitions:\n    - name: refresh\n      action.lua: |\n")
	block("        ", s.refresh)
	b.WriteString("  resource.customizations.health.tokensync.io_ClusterTokenRequest: |\n")
	block("    ", s.health)
	return []byte(b.String())
}
