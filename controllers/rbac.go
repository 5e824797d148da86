package controllers

// RBAC the TokenRequest reconciler needs. Secrets: read credentials and
// manage the target Secrets; a cluster-wide watch of Secrets is limited by a
// label selector in the cache, not by RBAC, since Kubernetes RBAC cannot
// express label selectors.
// +kubebuilder:rbac:groups=tokensync.io,resources=tokenrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=tokensync.io,resources=tokenrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
