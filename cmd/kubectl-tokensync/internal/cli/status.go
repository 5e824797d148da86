package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

func (a *app) statusCommand() *cobra.Command {
	var (
		all, cluster     bool
		selector, output string
	)
	cmd := &cobra.Command{
		Use:   "status [NAME...] [-A | -l SELECTOR] [--cluster] [-o wide|json|yaml]",
		Short: "Show TokenRequests: Ready, when the token expires, the next refresh, failures; NAME for the detail",
		Long: `Show TokenRequests (with --cluster, ClusterTokenRequests), one line each: provider,
Ready and its reason, when the token expires, the next refresh, failed attempts and the Secret.

With NAME, the detail: the conditions with their messages, the last login attempt, what the
operator recorded on the target Secret (provider, endpoint, obtained, expires; reading it needs a
role that may read Secrets), a ClusterTokenRequest's failed namespaces, and the last 10 events.`,
		Example: `  # Every TokenRequest of the current namespace, and of all
  {{.}} status
  {{.}} status -A
  # One in detail
  {{.}} status partner-token -n team-a
  # ClusterTokenRequests, with the namespaces written
  {{.}} status --cluster`,
		RunE: func(cmd *cobra.Command, names []string) error {
			switch output {
			case "", "wide", "json", "yaml":
			default:
				return usageError(cmd, "--output must be wide, json or yaml, not %q", output)
			}
			sel, err := a.selection(cmd, names, all, selector, cluster)
			if err != nil {
				return err
			}
			return a.runStatus(cmd.Context(), sel, output)
		},
	}
	a.selectionFlags(cmd, &all, &selector, &cluster)
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: wide (adds the last attempt and the endpoint), json or yaml (the objects, as the API server has them).")
	exampleName(cmd, a.name)
	return cmd
}

// selectionFlags are the flags that choose objects: -A, -l and --cluster.
func (a *app) selectionFlags(cmd *cobra.Command, all *bool, selector *string, cluster *bool) {
	cmd.Flags().BoolVarP(all, "all-namespaces", "A", false, "Every namespace (TokenRequests).")
	cmd.Flags().StringVarP(selector, "selector", "l", "", "Label selector, e.g. -l team=payments (=, ==, !=, in, notin).")
	cmd.Flags().BoolVar(cluster, "cluster", false, "ClusterTokenRequests instead of TokenRequests.")
}

// selection reads names, -A, -l and --cluster, and the namespace (-n).
func (a *app) selection(cmd *cobra.Command, names []string, all bool, selector string, cluster bool) (selection, error) {
	sel := selection{cluster: cluster, names: names, allNamespaces: all}
	if len(names) > 0 && (all || selector != "") {
		return sel, usageError(cmd, "give NAMEs, or -A or -l, not both: a name is looked up in one namespace (-n)")
	}
	if selector != "" {
		s, err := labels.Parse(selector)
		if err != nil {
			return sel, usageError(cmd, "-l %q: %v", selector, err)
		}
		sel.selector = s
	}
	if !cluster && !all {
		ns, err := a.namespace()
		if err != nil {
			return sel, err
		}
		sel.namespace = ns
	}
	return sel, nil
}

func (a *app) runStatus(ctx context.Context, sel selection, output string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	objs, errs := fetch(ctx, c, sel)
	now := a.env.Clock.Now()
	out := a.env.Stdout
	switch {
	case output == "json" || output == "yaml":
		if len(objs) > 0 || len(errs) == 0 {
			if err := printObjects(out, objs, output, len(sel.names) == 1); err != nil {
				return err
			}
		}
	case len(sel.names) > 0 && output == "":
		for i, o := range objs {
			if i > 0 {
				fmt.Fprintln(out)
			}
			var secret *secretRead
			if o.Cluster == nil {
				secret = readSecret(ctx, c, o.Object.GetNamespace(), o.secretName())
			}
			if err := statusDetail(out, o, secret, readEvents(ctx, c, o), now); err != nil {
				return err
			}
		}
	case len(objs) == 0 && len(errs) == 0:
		fmt.Fprintf(a.env.Stderr, "No %ss found%s.\n", sel.kind(), sel.where())
	case len(objs) > 0:
		if err := statusTable(out, objs, now, output == "wide", sel.allNamespaces); err != nil {
			return err
		}
	}
	return reportAll(a.env.Stderr, errs)
}

// reportAll prints every error; it returns errReported when there was one.
func reportAll(stderr io.Writer, errs []error) error {
	for _, err := range errs {
		fmt.Fprintf(stderr, "Error: %s\n", err)
	}
	if len(errs) > 0 {
		return errReported
	}
	return nil
}

// readSecret reads a target Secret's metadata for status NAME (its data,
// the token, is not even fetched); a refusal is shown in its place, not a
// failure of the command.
func readSecret(ctx context.Context, c client.Client, namespace, name string) *secretRead {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	r := &secretRead{Name: name}
	switch err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, m); {
	case apierrors.IsNotFound(err):
		r.Err = err
	case err != nil:
		r.Err = refused(err, fmt.Sprintf("read Secret %s/%s", namespace, name), roleSecrets)
	default:
		r.Annotations = m.Annotations
	}
	return r
}

// readEvents lists the events about an object: in its namespace, or for
// a cluster-scoped one in default, where the API server's recorders put
// them.
func readEvents(ctx context.Context, c client.Client, o tokenObject) eventsRead {
	ns := o.Object.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	list := &corev1.EventList{}
	err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{"involvedObject.uid": string(o.Object.GetUID())})
	if err != nil {
		return eventsRead{Err: refused(err, "list events in namespace "+ns, roleView)}
	}
	return eventsRead{Events: list.Items}
}

// printObjects prints the objects as the API server has them (less
// managedFields): one object for one NAME, else a List, as kubectl does.
func printObjects(out io.Writer, objs []tokenObject, format string, single bool) error {
	items := make([]any, 0, len(objs))
	for _, o := range objs {
		obj := o.Object.DeepCopyObject().(client.Object)
		obj.SetManagedFields(nil)
		obj.GetObjectKind().SetGroupVersionKind(tokensyncv1alpha1.GroupVersion.WithKind(o.Kind))
		items = append(items, obj)
	}
	var v any = map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	if single && len(items) == 1 {
		v = items[0]
	}
	var b []byte
	var err error
	if format == "yaml" {
		b, err = yaml.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", "    ")
		b = append(b, '\n')
	}
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// exampleName fills the examples' {{.}} with the name the plugin runs as.
func exampleName(cmd *cobra.Command, name string) {
	cmd.Example = strings.ReplaceAll(cmd.Example, "{{.}}", name)
}
