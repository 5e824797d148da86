package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// Kinds, as the plugin names them.
const (
	kindTokenRequest        = "TokenRequest"
	kindClusterTokenRequest = "ClusterTokenRequest"
)

// tokenObject is a TokenRequest or a ClusterTokenRequest: what the two
// kinds share (api/v1alpha1's LoginSpec and TokenStatus), with the object.
type tokenObject struct {
	Kind   string
	Object client.Object
	Spec   *tokensyncv1alpha1.LoginSpec
	Status *tokensyncv1alpha1.TokenStatus
	// Cluster is the ClusterTokenRequest, nil for a TokenRequest.
	Cluster *tokensyncv1alpha1.ClusterTokenRequest
}

func fromTokenRequest(tr *tokensyncv1alpha1.TokenRequest) tokenObject {
	return tokenObject{Kind: kindTokenRequest, Object: tr, Spec: &tr.Spec.LoginSpec, Status: &tr.Status.TokenStatus}
}

func fromClusterTokenRequest(ctr *tokensyncv1alpha1.ClusterTokenRequest) tokenObject {
	return tokenObject{Kind: kindClusterTokenRequest, Object: ctr, Spec: &ctr.Spec.LoginSpec, Status: &ctr.Status.TokenStatus, Cluster: ctr}
}

// key is namespace/name, or the name of a cluster-scoped object.
func (o tokenObject) key() string {
	if ns := o.Object.GetNamespace(); ns != "" {
		return ns + "/" + o.Object.GetName()
	}
	return o.Object.GetName()
}

// String is "TokenRequest ns/name" or "ClusterTokenRequest name".
func (o tokenObject) String() string { return o.Kind + " " + o.key() }

// secretName is the target Secret: the one holding the token, else the
// one the spec names.
func (o tokenObject) secretName() string {
	if o.Status.SecretName != "" {
		return o.Status.SecretName
	}
	switch obj := o.Object.(type) {
	case *tokensyncv1alpha1.TokenRequest:
		return obj.TargetSecretName()
	case *tokensyncv1alpha1.ClusterTokenRequest:
		return obj.Spec.SecretName
	}
	return ""
}

// refetch reads the object again from the API server.
func (o tokenObject) refetch(ctx context.Context, c client.Client) (tokenObject, error) {
	obj := o.Object.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(o.Object), obj); err != nil {
		return o, err
	}
	return wrap(obj), nil
}

func wrap(obj client.Object) tokenObject {
	if ctr, ok := obj.(*tokensyncv1alpha1.ClusterTokenRequest); ok {
		return fromClusterTokenRequest(ctr)
	}
	return fromTokenRequest(obj.(*tokensyncv1alpha1.TokenRequest))
}

// selection is which objects a command works on: names, or a list
// (every one, or a label selector's) in a namespace or all of them.
type selection struct {
	cluster       bool
	names         []string
	namespace     string
	allNamespaces bool
	selector      labels.Selector
}

func (s selection) kind() string {
	if s.cluster {
		return kindClusterTokenRequest
	}
	return kindTokenRequest
}

// where says where a list looked, for "no ... found" messages.
func (s selection) where() string {
	var w string
	switch {
	case s.cluster:
	case s.allNamespaces:
		w = " in any namespace"
	default:
		w = " in namespace " + s.namespace
	}
	if s.selector != nil && !s.selector.Empty() {
		w += " matching " + s.selector.String()
	}
	return w
}

// role names the role that lets one read (or, edit, change) the kind.
func (s selection) role(edit bool) string {
	switch {
	case s.cluster && edit:
		return roleClusterEdit
	case s.cluster:
		return roleClusterView
	case edit:
		return roleEdit
	}
	return roleView
}

// fetch reads the selected objects, sorted by namespace and name. A name
// not found is an error of its own; the others are still returned.
func fetch(ctx context.Context, c client.Client, s selection) ([]tokenObject, []error) {
	var out []tokenObject
	var errs []error
	if len(s.names) > 0 {
		for _, name := range s.names {
			var obj client.Object = &tokensyncv1alpha1.TokenRequest{}
			key := types.NamespacedName{Namespace: s.namespace, Name: name}
			if s.cluster {
				obj, key.Namespace = &tokensyncv1alpha1.ClusterTokenRequest{}, ""
			}
			if err := c.Get(ctx, key, obj); err != nil {
				ref := s.kind() + " " + strings.TrimPrefix(key.String(), "/")
				if apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("%s not found", ref))
				} else {
					errs = append(errs, refused(err, "read "+ref, s.role(false)))
				}
				continue
			}
			out = append(out, wrap(obj))
		}
		return out, errs
	}
	var opts []client.ListOption
	if s.selector != nil {
		opts = append(opts, client.MatchingLabelsSelector{Selector: s.selector})
	}
	if !s.cluster && !s.allNamespaces {
		opts = append(opts, client.InNamespace(s.namespace))
	}
	what := "list " + s.kind() + "s" + s.where()
	if s.cluster {
		list := &tokensyncv1alpha1.ClusterTokenRequestList{}
		if err := c.List(ctx, list, opts...); err != nil {
			return nil, []error{refused(err, what, s.role(false))}
		}
		for i := range list.Items {
			out = append(out, fromClusterTokenRequest(&list.Items[i]))
		}
	} else {
		list := &tokensyncv1alpha1.TokenRequestList{}
		if err := c.List(ctx, list, opts...); err != nil {
			return nil, []error{refused(err, what, s.role(false))}
		}
		for i := range list.Items {
			out = append(out, fromTokenRequest(&list.Items[i]))
		}
	}
	slices.SortFunc(out, func(a, b tokenObject) int {
		return cmp.Or(strings.Compare(a.Object.GetNamespace(), b.Object.GetNamespace()), strings.Compare(a.Object.GetName(), b.Object.GetName()))
	})
	return out, nil
}
