package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

func (a *app) inspectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Inspect what tokensync wrote, without printing a token",
	}
	var claims []string
	secret := &cobra.Command{
		Use:   "secret NAME [--claims NAME,...]",
		Short: "What tokensync recorded on a target Secret, and the claims of its JWT, never the token",
		Long: `What tokensync recorded on a target Secret: the TokenRequest or ClusterTokenRequest that
wrote it, provider, endpoint, when the token was obtained and expires, the keys present (not
their values), and the operator's verdict from its owner's status. When the token is a JWT: its
header's alg and kid, and its claims iss, sub, aud, iat, nbf and exp. Never the token, never its
signature, never another claim's value unless --claims names it.

Reading a Secret needs a role that may (edit or admin in its namespace; view may not).`,
		Example: `  {{.}} inspect secret partner-token -n team-a
  {{.}} inspect secret partner-token -n team-a --claims realm,domain`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runInspectSecret(cmd.Context(), args[0], claims)
		},
	}
	secret.Flags().StringSliceVar(&claims, "claims", nil, "Further claims whose values to show, e.g. --claims realm,scope.")
	exampleName(secret, a.name)
	cmd.AddCommand(secret)
	return cmd
}

func (a *app) runInspectSecret(ctx context.Context, name string, claims []string) error {
	ns, err := a.namespace()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("Secret %s/%s not found", ns, name)
		}
		return refused(err, fmt.Sprintf("read Secret %s/%s", ns, name), roleSecrets)
	}
	owner, known := ownerOf(s)
	var read ownerRead
	var ownerPtr *secretOwner
	if known {
		ownerPtr = &owner
		read = readOwner(ctx, c, owner)
	}
	if err := inspectSecret(a.env.Stdout, s, ownerPtr, read, claims, a.env.Clock.Now()); err != nil {
		return err
	}
	if !known && s.Labels[tokensyncv1alpha1.LabelManagedBy] != tokensyncv1alpha1.ManagedByValue {
		return fmt.Errorf("Secret %s/%s was not written by tokensync", ns, name)
	}
	return nil
}

// readOwner reads the owner the Secret names, for its verdict.
func readOwner(ctx context.Context, c client.Client, owner secretOwner) ownerRead {
	var obj client.Object = &tokensyncv1alpha1.TokenRequest{}
	role := roleView
	if owner.Kind == kindClusterTokenRequest {
		obj, role = &tokensyncv1alpha1.ClusterTokenRequest{}, roleClusterView
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: owner.Namespace, Name: owner.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return ownerRead{Err: err}
		}
		return ownerRead{Err: refused(err, "read "+owner.String(), role)}
	}
	o := wrap(obj)
	return ownerRead{Object: &o}
}
