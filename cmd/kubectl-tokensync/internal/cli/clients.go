package cli

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tokensyncv1alpha1.AddToScheme(scheme))
}

// restConfig is the kubeconfig's API server and user, with the flags
// (--kubeconfig, --context, --as, ...) applied.
func (a *app) restConfig() (*rest.Config, error) {
	cfg, err := a.flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-tokensync/" + a.env.Version
	// renew --all patches one object per request.
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// client is a client of the API server for the operator's types and
// Kubernetes' own.
func (a *app) client() (client.Client, error) {
	if a.env.client != nil {
		return a.env.client, nil
	}
	cfg, err := a.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the API server: %w", err)
	}
	return c, nil
}

func (a *app) discovery() (discovery.DiscoveryInterface, error) {
	if a.env.discovery != nil {
		return a.env.discovery, nil
	}
	cfg, err := a.restConfig()
	if err != nil {
		return nil, err
	}
	return discovery.NewDiscoveryClientForConfig(cfg)
}

// namespace is -n, else the kubeconfig context's namespace, else default.
func (a *app) namespace() (string, error) {
	ns, _, err := a.flags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// refused turns an API error into what a person can act on: for a
// refusal, what they may not do and the role that would let them (role
// may be empty); other errors are wrapped with the action.
func refused(err error, action, role string) error {
	if apierrors.IsForbidden(err) {
		msg := fmt.Sprintf("you may not %s", action)
		if role != "" {
			msg += " (" + role + ")"
		}
		return fmt.Errorf("%s: %w", msg, err)
	}
	return fmt.Errorf("%s: %w", action, err)
}

// Roles named in refusals.
const (
	roleView        = "the view role grants it in a namespace"
	roleEdit        = "the edit role grants it in a namespace"
	roleSecrets     = "reading Secrets needs the edit or admin role in their namespace"
	roleClusterView = "the ClusterTokenRequest viewer ClusterRole grants it: tokensync-clustertokenrequest-viewer (Helm) or tokensync-clustertokenrequest-viewer-role (kustomize)"
	roleClusterEdit = "the ClusterTokenRequest editor ClusterRole grants it: tokensync-clustertokenrequest-editor (Helm) or tokensync-clustertokenrequest-editor-role (kustomize)"
)
