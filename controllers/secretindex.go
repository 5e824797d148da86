package controllers

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// secretRole is how a TokenRequest uses a Secret.
type secretRole int

const (
	credentialsRole secretRole = iota // it reads the Secret's credentials
	targetRole                        // it writes its token into the Secret
)

// secretIndex maps each Secret to the TokenRequests that use it, by role,
// so that a Secret event reconciles them. It is kept by an event handler
// of the TokenRequest informer rather than as field indexes of the
// manager's cache: controller-runtime keeps every field index value twice
// (also under an all-namespaces key that tokensync never asks for) in a set
// of its own, and with a Secret name per TokenRequest those sets were about
// a KiB of heap per TokenRequest; this index takes about a sixth of that.
// It works the same whether the cache watches all namespaces or some.
type secretIndex struct {
	mu    sync.RWMutex
	users [2]map[types.NamespacedName][]string // by role: Secret → TokenRequest names in its namespace
}

func newSecretIndex() *secretIndex {
	return &secretIndex{users: [2]map[types.NamespacedName][]string{{}, {}}}
}

// secretsOf is the Secret tr uses in each role.
func secretsOf(tr *tokensyncv1alpha1.TokenRequest) [2]types.NamespacedName {
	return [2]types.NamespacedName{
		credentialsRole: {Namespace: tr.Namespace, Name: tr.Spec.CredentialsSecretRef.Name},
		targetRole:      {Namespace: tr.Namespace, Name: tr.TargetSecretName()},
	}
}

func (x *secretIndex) add(tr *tokensyncv1alpha1.TokenRequest) {
	for role, s := range secretsOf(tr) {
		names := x.users[role][s]
		if !slices.Contains(names, tr.Name) {
			x.users[role][s] = append(names, tr.Name)
		}
	}
}

func (x *secretIndex) remove(tr *tokensyncv1alpha1.TokenRequest) {
	for role, s := range secretsOf(tr) {
		names := slices.DeleteFunc(x.users[role][s], func(n string) bool { return n == tr.Name })
		if len(names) == 0 {
			delete(x.users[role], s)
		} else {
			x.users[role][s] = names
		}
	}
}

// requests are the TokenRequests using Secret s in role.
func (x *secretIndex) requests(role secretRole, s types.NamespacedName) []reconcile.Request {
	x.mu.RLock()
	defer x.mu.RUnlock()
	names := x.users[role][s]
	reqs := make([]reconcile.Request, 0, len(names))
	for _, n := range names {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: n}})
	}
	return reqs
}

// handler keeps the index from the TokenRequest informer's events.
func (x *secretIndex) handler() toolscache.ResourceEventHandler {
	asTokenRequest := func(obj any) *tokensyncv1alpha1.TokenRequest {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		tr, _ := obj.(*tokensyncv1alpha1.TokenRequest)
		return tr
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if tr := asTokenRequest(obj); tr != nil {
				x.mu.Lock()
				defer x.mu.Unlock()
				x.add(tr)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			oldTR, newTR := asTokenRequest(oldObj), asTokenRequest(newObj)
			if oldTR == nil || newTR == nil || secretsOf(oldTR) == secretsOf(newTR) {
				return
			}
			x.mu.Lock()
			defer x.mu.Unlock()
			x.remove(oldTR)
			x.add(newTR)
		},
		DeleteFunc: func(obj any) {
			if tr := asTokenRequest(obj); tr != nil {
				x.mu.Lock()
				defer x.mu.Unlock()
				x.remove(tr)
			}
		},
	}
}
