package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func clusterTokenRequest(name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "tokensync.io/v1alpha1",
		"kind":       "ClusterTokenRequest",
		"metadata":   map[string]any{"name": name},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

func validClusterSpec(mut func(map[string]any)) map[string]any {
	s := map[string]any{
		"provider":             "partner",
		"endpoint":             "https://partner.example.com",
		"credentialsSecretRef": map[string]any{"name": "creds", "namespace": "platform"},
		"secretName":           "partner-token",
		"namespaceSelector":    map[string]any{"matchLabels": map[string]any{"partner-token": "yes"}},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

// withExpressions is a valid spec selecting by matchExpressions exprs.
func withExpressions(exprs ...any) map[string]any {
	return validClusterSpec(func(s map[string]any) {
		s["namespaceSelector"] = map[string]any{"matchExpressions": exprs}
	})
}

// TestAdmissionOfClusterTokenRequests: the rules a ClusterTokenRequest
// adds to a TokenRequest's, and those it shares, each with a message that
// says what to fix.
func TestAdmissionOfClusterTokenRequests(t *testing.T) {
	rejected := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"neither selector nor namespaces", validClusterSpec(func(s map[string]any) { delete(s, "namespaceSelector") }),
			"a ClusterTokenRequest needs spec.namespaceSelector or spec.namespaces (or both)"},
		{"an empty list of namespaces only", validClusterSpec(func(s map[string]any) { delete(s, "namespaceSelector"); s["namespaces"] = []any{} }),
			"a ClusterTokenRequest needs spec.namespaceSelector or spec.namespaces (or both)"},
		{"credentials without a namespace", validClusterSpec(func(s map[string]any) { s["credentialsSecretRef"] = map[string]any{"name": "creds"} }),
			"spec.credentialsSecretRef.namespace: Required value"},
		{"rolloutRestartTargets", validClusterSpec(func(s map[string]any) {
			s["rolloutRestartTargets"] = []any{map[string]any{"kind": "Deployment", "name": "api"}}
		}), "spec.rolloutRestartTargets is not supported by ClusterTokenRequest in this version"},
		{"no secretName", validClusterSpec(func(s map[string]any) { delete(s, "secretName") }), "spec.secretName: Required value"},
		{"a namespace that is not a name", validClusterSpec(func(s map[string]any) { s["namespaces"] = []any{"Bad_Name"} }),
			"spec.namespaces[0] in body should match"},
		{"a selector operator that is not one", withExpressions(map[string]any{"key": "team", "operator": "Foo"}),
			"spec.namespaceSelector: Invalid value: every matchExpressions operator must be one of In, NotIn, Exists, DoesNotExist"},
		{"a selector operator in the wrong case", withExpressions(map[string]any{"key": "team", "operator": "exists"}),
			"every matchExpressions operator must be one of In, NotIn, Exists, DoesNotExist"},
		{"In without values", withExpressions(map[string]any{"key": "team", "operator": "In"}),
			"matchExpressions values must be set (not empty) with operators In and NotIn"},
		{"NotIn with no values", withExpressions(map[string]any{"key": "team", "operator": "NotIn", "values": []any{}}),
			"matchExpressions values must be set (not empty) with operators In and NotIn"},
		{"Exists with values", withExpressions(map[string]any{"key": "team", "operator": "Exists", "values": []any{"a"}}),
			"must be empty with Exists and DoesNotExist"},
		{"DoesNotExist with values, after a good expression", withExpressions(map[string]any{"key": "team", "operator": "In", "values": []any{"a"}},
			map[string]any{"key": "tier", "operator": "DoesNotExist", "values": []any{"b"}}),
			"must be empty with Exists and DoesNotExist"},
		{"shared rule: partner without endpoint", validClusterSpec(func(s map[string]any) { delete(s, "endpoint") }),
			"spec.endpoint is required for providers "},
		{"shared rule: oauth2 settings for partner", validClusterSpec(func(s map[string]any) { s["oauth2"] = map[string]any{} }),
			"spec.oauth2 is only allowed with provider oauth2"},
		{"shared rule: a template with range", validClusterSpec(func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"data": map[string]any{"x": "{{ range 10 }}x{{ end }}"}}
		}), "templates must not use range"},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), clusterTokenRequest("reject", tt.spec), client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a rejection containing %q", err, tt.want)
			}
		})
	}
	for name, spec := range map[string]map[string]any{
		"selector":             validClusterSpec(nil),
		"namespaces":           validClusterSpec(func(s map[string]any) { delete(s, "namespaceSelector"); s["namespaces"] = []any{"team-a", "team-b"} }),
		"both":                 validClusterSpec(func(s map[string]any) { s["namespaces"] = []any{"team-a"} }),
		"aml with its default": validClusterSpec(func(s map[string]any) { s["provider"] = "aml"; delete(s, "endpoint") }),
		"selector by an expression": validClusterSpec(func(s map[string]any) {
			s["namespaceSelector"] = map[string]any{"matchExpressions": []any{map[string]any{"key": "team", "operator": "Exists"}}}
		}),
		"selector by every operator": withExpressions(map[string]any{"key": "team", "operator": "In", "values": []any{"a", "b"}},
			map[string]any{"key": "tier", "operator": "NotIn", "values": []any{"test"}},
			map[string]any{"key": "partner-token", "operator": "Exists", "values": []any{}},
			map[string]any{"key": "frozen", "operator": "DoesNotExist"}),
		// Label keys and values are left to the operator, which reports
		// InvalidNamespaceSelector (controllers' TestInvalidNamespaceSelector).
		"selector with a key that is not a label key": withExpressions(map[string]any{"key": "bad key!", "operator": "Exists"}),
	} {
		t.Run("accepts "+name, func(t *testing.T) {
			if err := k8sClient.Create(context.Background(), clusterTokenRequest("accept", spec), client.DryRunAll); err != nil {
				t.Errorf("rejected: %v", err)
			}
		})
	}
}
