package controllers

// RBAC the TokenRequest reconciler needs. Secrets: read credentials and
// manage the target Secrets; a cluster-wide watch of Secrets is limited by a
// label selector in the cache, not by RBAC, since Kubernetes RBAC cannot
// express label selectors. The same Secrets rules let the operator create and
// read its fingerprint key Secret in its own namespace.
//
// tokenrequests/finalizers update: the target Secret's controller owner
// reference sets blockOwnerDeletion (so that a foreground deletion of a
// TokenRequest waits for its Secret), and API servers with the
// OwnerReferencesPermissionEnforcement admission plugin (OpenShift) accept
// that only from whoever may update the owner's finalizers.
// +kubebuilder:rbac:groups=tokensync.io,resources=tokenrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=tokensync.io,resources=tokenrequests/status,verbs=update
// +kubebuilder:rbac:groups=tokensync.io,resources=tokenrequests/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
