package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// verbUse names the code that needs one verb of the deployed roles: the
// file and function that makes the call (a function of this package, or of
// the manager's libraries when the file is a library's), and the call.
type verbUse struct {
	file, function, call string
}

// rbacUses is every verb the manager's roles grant and the call that uses
// it. A verb no code uses is a permission a compromised manager would have
// for nothing; a call missing here is one the deployed manager cannot make.
var rbacUses = map[string]verbUse{
	// config/rbac/role.yaml (generated from the +kubebuilder:rbac markers).
	"secrets/get":    {"secretwriter.go", "writeSecretOf", "r.APIReader.Get: the target Secret when the cache cannot be trusted"},
	"secrets/list":   {"setup.go", "CacheOptions", "the informers of the managed and metadata caches list Secrets"},
	"secrets/watch":  {"setup.go", "NewCredentialsCache", "the informers of the managed and metadata caches watch Secrets"},
	"secrets/create": {"secretwriter.go", "writeSecretOf", "r.Create: the target Secret"},
	"secrets/update": {"secretwriter.go", "writeSecretOf", "r.Update: the target Secret"},
	"secrets/delete": {"secretwriter.go", "deletePreviousSecret", "r.Delete: the Secret of an earlier spec.secretName"},

	"namespaces/get":   {"clustertokenrequest_controller.go", "SetupWithManager", "WatchesMetadata(&corev1.Namespace{}): the metadata informer reads namespaces"},
	"namespaces/list":  {"clustertokenrequest_controller.go", "selectedNamespaces", "r.List: the namespaces a ClusterTokenRequest selects"},
	"namespaces/watch": {"clustertokenrequest_controller.go", "SetupWithManager", "WatchesMetadata(&corev1.Namespace{})"},

	"events/create":               {"setup.go", "Setup", "mgr.GetEventRecorder: the recorder creates core/v1 Events"},
	"events/patch":                {"setup.go", "Setup", "mgr.GetEventRecorder: the recorder patches a repeated Event's count"},
	"events.k8s.io/events/create": {"setup.go", "Setup", "mgr.GetEventRecorder: the recorder creates events.k8s.io Events"},
	"events.k8s.io/events/patch":  {"setup.go", "Setup", "mgr.GetEventRecorder: the recorder patches an Event series"},

	"tokensync.io/tokenrequests/get":          {"tokenrequest_controller.go", "load", "reader.Get: the TokenRequest, from the API server when the cache is behind its last status write (engine.go's observe)"},
	"tokensync.io/tokenrequests/list":         {"setup.go", "indexTokenRequests", "the TokenRequest informer lists"},
	"tokensync.io/tokenrequests/watch":        {"setup.go", "indexTokenRequests", "the TokenRequest informer watches"},
	"tokensync.io/clustertokenrequests/get":   {"clustertokenrequest_controller.go", "load", "reader.Get: a fresh ClusterTokenRequest (engine.go's observe)"},
	"tokensync.io/clustertokenrequests/list":  {"clustertokenrequest_controller.go", "clusterTokenRequests", "r.List"},
	"tokensync.io/clustertokenrequests/watch": {"clustertokenrequest_controller.go", "SetupWithManager", "For(&ClusterTokenRequest{}): the informer watches"},

	"tokensync.io/tokenrequests/status/update":        {"engine.go", "writeStatusOf", "r.Status().Update"},
	"tokensync.io/clustertokenrequests/status/update": {"engine.go", "writeStatusOf", "r.Status().Update"},
	// OwnerReferencesPermissionEnforcement: setting a controller owner
	// reference with blockOwnerDeletion needs update on the owner's finalizers.
	"tokensync.io/tokenrequests/finalizers/update":        {"secretwriter.go", "own", "controllerutil.SetControllerReference on the target Secret"},
	"tokensync.io/clustertokenrequests/finalizers/update": {"secretwriter.go", "own", "controllerutil.SetControllerReference on each namespace's Secret"},

	// config/rbac/leader_election_role.yaml: client-go's LeaseLock gets,
	// creates and updates its Lease; leader election records events.
	"coordination.k8s.io/leases/get":    {"", "", "leaderelection.LeaseLock.Get"},
	"coordination.k8s.io/leases/create": {"", "", "leaderelection.LeaseLock.Create"},
	"coordination.k8s.io/leases/update": {"", "", "leaderelection.LeaseLock.Update (renew, release on cancel)"},

	// config/rbac/rollout-restart/role.yaml.
	"apps/deployments/get":    {"restarts.go", "restartTarget", "r.APIReader.Get: the workload's restarted-for annotation"},
	"apps/deployments/patch":  {"restarts.go", "restartTarget", "r.Patch: the pod template's restartedAt annotation"},
	"apps/statefulsets/get":   {"restarts.go", "restartTarget", "r.APIReader.Get"},
	"apps/statefulsets/patch": {"restarts.go", "restartTarget", "r.Patch"},
	"apps/daemonsets/get":     {"restarts.go", "restartTarget", "r.APIReader.Get"},
	"apps/daemonsets/patch":   {"restarts.go", "restartTarget", "r.Patch"},
}

// TestRBACVerbsAreUsed: every verb the deployed roles grant the manager is
// in rbacUses, every entry there is granted, and each names a function that
// exists in the file it names. Leader election's events rule is the core
// and events.k8s.io one above.
func TestRBACVerbsAreUsed(t *testing.T) {
	granted := map[string]bool{}
	for _, file := range []string{"../config/rbac/role.yaml", "../config/rbac/leader_election_role.yaml", "../config/rbac/rollout-restart/role.yaml"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var role struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal(raw, &role); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, rule := range role.Rules {
			for _, group := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, verb := range rule.Verbs {
						key := res + "/" + verb
						if group != "" {
							key = group + "/" + key
						}
						granted[key] = true
					}
				}
			}
		}
	}
	for key := range granted {
		if _, ok := rbacUses[key]; !ok {
			t.Errorf("the deployed RBAC grants %s, which no call in rbacUses needs: remove the verb, or name the call that uses it", key)
		}
	}
	funcs := map[string][]string{}
	for key, use := range rbacUses {
		if !granted[key] {
			t.Errorf("rbacUses names %s (%s), which the deployed RBAC does not grant", key, use.call)
		}
		if use.file == "" {
			continue // a library's call
		}
		if _, ok := funcs[use.file]; !ok {
			funcs[use.file] = declaredFuncs(t, use.file)
		}
		if !slices.Contains(funcs[use.file], use.function) {
			t.Errorf("rbacUses: %s names %s in %s, which declares no such function", key, use.function, use.file)
		}
	}
}

// declaredFuncs lists the functions and methods a file of this package declares.
func declaredFuncs(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Clean(file), nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && !strings.HasSuffix(file, "_test.go") {
			names = append(names, fn.Name.Name)
		}
	}
	return names
}
