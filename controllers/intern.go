package controllers

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// interner keeps one copy of the strings that the cached objects repeat:
// namespaces, kinds, label and annotation keys, condition types and
// reasons, providers and endpoints. Each object the API server sends is
// decoded into strings of its own, so without this every cached TokenRequest
// and Secret carried its own copy of each: about a KiB per TokenRequest.
// Values that differ from object to object (names, times, fingerprints,
// messages) are not interned. The table is bounded: once full, strings not
// in it are kept as decoded. Each cache has its own (CacheOptions,
// NewCredentialsCache): there is no table shared by the package.
const internMax = 20000

func newInterner() *interner { return &interner{max: internMax} }

type interner struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

// s is the table's copy of v, v itself when the table is full.
func (in *interner) s(v string) string {
	if v == "" || len(v) > 256 {
		return v
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.m[v]; ok {
		return c
	}
	if in.m == nil {
		in.m = map[string]string{}
	}
	if len(in.m) >= in.max {
		return v
	}
	in.m[v] = v
	return v
}

// stringMap copies m with interned keys, and interned values where
// internValue says so (nil: none).
func (in *interner) stringMap(m map[string]string, internValue func(key string) bool) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if internValue != nil && internValue(k) {
			v = in.s(v)
		}
		out[in.s(k)] = v
	}
	return out
}

// meta interns what an object's metadata repeats.
func (in *interner) meta(tm *metav1.TypeMeta, om *metav1.ObjectMeta) {
	tm.APIVersion, tm.Kind = in.s(tm.APIVersion), in.s(tm.Kind)
	om.Namespace = in.s(om.Namespace)
	om.Labels = in.stringMap(om.Labels, func(string) bool { return true })
	om.Annotations = in.stringMap(om.Annotations, internedAnnotationValues)
	for i := range om.OwnerReferences {
		r := &om.OwnerReferences[i]
		r.APIVersion, r.Kind = in.s(r.APIVersion), in.s(r.Kind)
	}
	for i := range om.Finalizers {
		om.Finalizers[i] = in.s(om.Finalizers[i])
	}
}

// internedAnnotationValues are the annotations whose values many objects
// share.
func internedAnnotationValues(key string) bool {
	switch key {
	case tokensyncv1alpha1.AnnotationProvider, tokensyncv1alpha1.AnnotationEndpoint, annotationSettingsDigest:
		return true
	}
	return false
}

// tokenRequest interns what a cached TokenRequest repeats.
func (in *interner) tokenRequest(tr *tokensyncv1alpha1.TokenRequest) {
	in.meta(&tr.TypeMeta, &tr.ObjectMeta)
	tr.Spec.Provider = tokensyncv1alpha1.Provider(in.s(string(tr.Spec.Provider)))
	tr.Spec.Endpoint = in.s(tr.Spec.Endpoint)
	for i := range tr.Status.Conditions {
		c := &tr.Status.Conditions[i]
		c.Type, c.Status, c.Reason = in.s(c.Type), metav1.ConditionStatus(in.s(string(c.Status))), in.s(c.Reason)
	}
	if a := tr.Status.LastAttempt; a != nil {
		a.Provider, a.Endpoint, a.Result, a.SettingsDigest = in.s(a.Provider), in.s(a.Endpoint), in.s(a.Result), in.s(a.SettingsDigest)
	}
}

// secret interns what a cached Secret repeats: its metadata, type and
// data keys.
func (in *interner) secret(s *corev1.Secret) {
	in.meta(&s.TypeMeta, &s.ObjectMeta)
	s.Type = corev1.SecretType(in.s(string(s.Type)))
	if s.Data != nil {
		data := make(map[string][]byte, len(s.Data))
		for k, v := range s.Data {
			data[in.s(k)] = v
		}
		s.Data = data
	}
}
