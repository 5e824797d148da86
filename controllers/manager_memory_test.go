package controllers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The manager's memory against what a tenant controls: the answers of the
// endpoints it names, and Secrets it labels as tokensync's. The heap is
// the whole process's, so the measuring half runs in a process of its own
// (this test binary again, with memoryChildEnv set), against the shared API
// server, while the hostile endpoints run here.

// memoryChildEnv names the kubeconfig the child process uses; hostileEnv
// the endpoints it aims at (name=URL, comma-separated).
const (
	memoryChildEnv = "TOKENSYNC_MEMORY_CHILD_KUBECONFIG"
	hostileEnv     = "TOKENSYNC_MEMORY_CHILD_ENDPOINTS"
)

// Bounds: the issue's, on the heap after a collection.
const (
	hostileLoginsHeapBound   = 32 << 20
	labelledSecretsHeapBound = 4 << 20
	hostileLoginsPerEndpoint = 15
	labelledSecrets          = 20
)

// hostileEndpoints answer every login with what the providers' bounds
// refuse: a 9 MiB header (its token), a token of 256 KiB + 1, JSON nested
// 33 deep, and 10,001 JSON values.
func hostileEndpoints(t *testing.T) map[string]string {
	t.Helper()
	bigHeader := strings.Repeat("h", 9<<20)
	bigToken := fmt.Sprintf(`{"token":%q}`, strings.Repeat("t", 256<<10+1))
	nested := strings.Repeat("[", 33) + strings.Repeat("]", 33)
	values := "[" + strings.TrimSuffix(strings.Repeat("0,", 10_001), ",") + "]"
	answers := map[string]func(w http.ResponseWriter){
		"header": func(w http.ResponseWriter) {
			w.Header().Set("X-Token", bigHeader)
			w.WriteHeader(http.StatusOK)
		},
		"token": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, bigToken)
		},
		"nested": func(w http.ResponseWriter) { w.Header().Set("Content-Type", "application/json"); fmt.Fprint(w, nested) },
		"values": func(w http.ResponseWriter) { w.Header().Set("Content-Type", "application/json"); fmt.Fprint(w, values) },
	}
	urls := map[string]string{}
	for name, answer := range answers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { answer(w) }))
		t.Cleanup(srv.Close)
		urls[name] = srv.URL
	}
	return urls
}

// TestManagerMemoryIsBounded: 60 logins against endpoints answering past
// every bound each end InvalidResponse, and the heap after a collection
// grows by less than 32 MiB; 20 Secrets of 1 MiB labelled as tokensync's by
// hand, owned by no TokenRequest, grow it by less than 4 MiB (their data is
// not cached).
func TestManagerMemoryIsBounded(t *testing.T) {
	if os.Getenv(memoryChildEnv) != "" {
		measureManagerMemory(t)
		return
	}
	t.Parallel()
	user, err := testEnv.AddUser(envtest.User{Name: "memory-child", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	var endpoints []string
	for name, url := range hostileEndpoints(t) {
		endpoints = append(endpoints, name+"="+url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestManagerMemoryIsBounded$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), memoryChildEnv+"="+path, hostileEnv+"="+strings.Join(endpoints, ","))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the measuring process failed: %v\n%s", err, lastLines(string(out), 40))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "heap grew") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// childConfig is the API server of the process that started this one.
func childConfig() error {
	raw, err := os.ReadFile(os.Getenv(memoryChildEnv))
	if err != nil {
		return err
	}
	if cfg, err = clientcmd.RESTConfigFromKubeConfig(raw); err != nil {
		return err
	}
	k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme})
	return err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// heapAfterGC is the live heap once collected.
func heapAfterGC() int64 {
	runtime.GC()
	runtime.GC() // the second collection frees what the first one's finalizers released
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// measureManagerMemory is the child's half.
func measureManagerMemory(t *testing.T) {
	ns := newNamespace(t)
	mgr, _, _ := startManager(t, managerOptions{namespaces: []string{ns}})
	ctx := context.Background()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("the manager's cache did not sync")
	}
	base := heapAfterGC()

	// Secrets labelled as tokensync's by a tenant: the cache keeps their names.
	filler := strings.Repeat("s", 1<<20-64)
	for i := range labelledSecrets {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("labelled-%02d", i), Namespace: ns,
				Labels: map[string]string{tokensyncv1alpha1.LabelManagedBy: tokensyncv1alpha1.ManagedByValue}},
			StringData: map[string]string{"token": filler},
		}
		if err := k8sClient.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	filler = ""
	eventually(t, readyTimeout, func() error {
		for i := range labelledSecrets {
			s := &corev1.Secret{}
			if err := mgr.GetCache().Get(ctx, types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("labelled-%02d", i)}, s); err != nil {
				return err
			}
		}
		return nil
	})
	grown := heapAfterGC() - base
	t.Logf("labelled Secrets: the heap grew by %.2f MiB (bound %d MiB)", float64(grown)/(1<<20), labelledSecretsHeapBound>>20)
	if grown > labelledSecretsHeapBound {
		t.Errorf("%d labelled 1 MiB Secrets owned by no TokenRequest grew the heap by %d KiB, over %d MiB: their data is cached",
			labelledSecrets, grown>>10, labelledSecretsHeapBound>>20)
	}

	// Logins against hostile endpoints. Their answers are garbage once
	// refused, so the peak is watched too: an answer read whole (9 MiB of
	// headers, four at a time per host) shows there, not after a collection.
	base = heapAfterGC()
	peak := sampleHeap(t)
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns, Labels: credentialsLabels()},
		StringData: map[string]string{"email": "e@example.com", "password": "pw"}}
	if err := k8sClient.Create(ctx, creds); err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, entry := range strings.Split(os.Getenv(hostileEnv), ",") {
		name, url, _ := strings.Cut(entry, "=")
		for i := range hostileLoginsPerEndpoint {
			login := largeTokenLogin()
			if name == "header" {
				login.Token = tokensyncv1alpha1.HTTPToken{Header: "X-Token"}
			}
			tr := &tokensyncv1alpha1.TokenRequest{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%02d", name, i), Namespace: ns},
				Spec: tokensyncv1alpha1.TokenRequestSpec{
					LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: "http", Endpoint: url, HTTP: login},
					CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "creds"},
				},
			}
			if err := k8sClient.Create(ctx, tr); err != nil {
				t.Fatal(err)
			}
			count++
		}
	}
	eventually(t, 3*time.Minute, func() error {
		list := &tokensyncv1alpha1.TokenRequestList{}
		if err := k8sClient.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for _, tr := range list.Items {
			c := readyCondition(&tr)
			switch {
			case c == nil:
			case c.Reason == tokensyncv1alpha1.ReasonInvalidResponse:
				done++
			default:
				return fmt.Errorf("%s: %s (%s), want %s", tr.Name, c.Reason, c.Message, tokensyncv1alpha1.ReasonInvalidResponse)
			}
		}
		if done != count {
			return fmt.Errorf("%d of %d TokenRequests report InvalidResponse", done, count)
		}
		return nil
	})
	peakGrowth := int64(peak()) - base
	grown = heapAfterGC() - base
	t.Logf("hostile logins: the heap grew by %.2f MiB (bound %d MiB), at its peak by %.2f MiB (bound %d MiB)",
		float64(grown)/(1<<20), hostileLoginsHeapBound>>20, float64(peakGrowth)/(1<<20), hostileLoginsHeapBound>>20)
	if grown > hostileLoginsHeapBound {
		t.Errorf("%d logins against hostile endpoints grew the heap by %d MiB, over %d MiB", count, grown>>20, hostileLoginsHeapBound>>20)
	}
	if peakGrowth > hostileLoginsHeapBound {
		t.Errorf("%d logins against hostile endpoints grew the heap by %d MiB at its peak, over %d MiB: an answer was read past its bound", count, peakGrowth>>20, hostileLoginsHeapBound>>20)
	}
}
