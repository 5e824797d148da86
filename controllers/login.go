package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// Logins run off the reconcile workers. A reconcile that decides to log in
// checks what it can without a request (the settings, the endpoint policy,
// the credentials label, a refused write's dry run), hands the login to the
// gate (logingate.go) and returns: no worker ever waits on a provider, so
// endpoints that hang cannot take the workers from everyone else, and
// reconciles that need no login never wait behind one. The login reads the
// credentials, logs in and leaves its result in memory (a pending token, or
// a failure); its end enqueues the TokenRequest, whose next reconcile writes
// the token (decide: a pending token is written) or records the failure.

// loginAttempt is what a login off the workers needs: nothing of the
// observation but this, so that a login waiting in line holds little.
type loginAttempt struct {
	key         types.NamespacedName
	uid         types.UID
	kind        string // the controller's, for the gate
	credentials types.NamespacedName
	provider    providers.Provider
	keys        providers.CredentialUser
	// issued carries the provider's name, endpoint and settings digest;
	// credentials version and fingerprint when already known.
	is policy.Issued
	// creds, when the reconcile has read them already.
	creds           providers.Credentials
	force           string
	reason, message string
}

// login checks what can be checked without a request and hands the login
// to the gate.
func (r *TokenRequestReconciler) login(ctx context.Context, o *snapshot, d policy.Decision) (ctrl.Result, error) {
	if o.settingsErr != nil {
		return r.failed(ctx, o, settingsFailure(o.settingsErr))
	}
	if o.endpointErr != nil {
		return r.failed(ctx, o, providerFailureFor(o.credentialsRef.Name, o.endpointErr))
	}
	if o.Credentials.Found && !o.Credentials.Allowed {
		return r.failed(ctx, o, credentialsNotAllowed(o.credentialsRef.Name))
	}
	if d.ProbeWrite {
		// The last write was refused: ask the API server (dry run) whether
		// it would take one now before spending a login on it.
		probe := &providers.Token{Value: "dry-run", ObtainedAt: o.Now, ExpiresAt: o.Now.Add(time.Hour)}
		if _, err := r.writeSecretOf(ctx, o.owner, o.targetKey, o.target, func(s *corev1.Secret) { applyToken(s, policy.Issued{Token: probe}) }, true); err != nil {
			return r.failed(ctx, o, writeFailure(o.targetKey.Name, err))
		}
	}
	var mustStartBy time.Time
	if h := o.Target.Held; o.Target.Holds && h.Intact && o.Now.Before(h.ExpiresAt) {
		mustStartBy = h.ExpiresAt.Add(-urgentMargin)
	}
	a := &loginAttempt{
		key: o.key, uid: o.owner.obj.GetUID(), credentials: o.credentialsRef, kind: o.kind,
		provider: o.provider, keys: o.keys(),
		is:    policy.Issued{Provider: o.Provider, Endpoint: o.Endpoint, SettingsDigest: o.SettingsDigest},
		creds: o.creds, force: o.Force, reason: d.Reason, message: d.Message,
	}
	if o.creds != nil {
		a.is.CredentialsVersion, a.is.CredentialsFingerprint = o.Credentials.Version, o.Credentials.Fingerprint
	}
	r.gate.submit(&loginJob{who: a.key, kind: o.kind, endpoint: o.Endpoint, issuer: o.Issuer(), mustStartBy: mustStartBy,
		nextProbe: d.NextProbe, run: func(ctx context.Context) loginEnd { return r.runLogin(ctx, a) }})
	if in, ok := r.gate.inFlight(o.key); ok && in.waitsOnHost {
		// Its host is down: the login waits on it, and the status says so.
		o.Host = r.gate.host(o.Endpoint, r.now())
		return r.waitOnHost(ctx, o, d.Message+"; "+o.Host.WaitMessage(), time.Time{})
	}
	logf.FromContext(ctx).V(1).Info("Login handed over; its end reconciles again")
	return ctrl.Result{}, nil
}

// checkEndpoint asks the operator's endpoint policy about the URL a login
// would be sent to, path joined, so that no path leads out of an allowed
// prefix. It runs at every reconcile: a refusal is lifted as soon as the
// policy allows the URL (a restart with a wider allowlist). The providers'
// HTTP client checks every request again before sending it.
func (r *TokenRequestReconciler) checkEndpoint(o *snapshot) error {
	if r.EndpointPolicy == nil || o.settingsErr != nil {
		return nil
	}
	loginURL, err := providers.LoginURL(o.provider, o.Endpoint)
	if err != nil {
		return err
	}
	return r.EndpointPolicy.Check(o.Provider, loginURL)
}

func credentialsNotAllowed(name string) policy.Failure {
	return policy.Failure{
		Reason: tokensyncv1alpha1.ReasonCredentialsNotAllowed,
		Message: fmt.Sprintf("credentials Secret %q is not labelled %s: \"true\", so it may not be used as credentials (nothing was read or sent); "+
			"whoever may write the Secret labels it: kubectl label secret %s %s=true",
			name, tokensyncv1alpha1.LabelCredentials, name, tokensyncv1alpha1.LabelCredentials),
	}
}

// runLogin is one login, run by the gate off the workers: it reads the
// credentials (unless the reconcile had), logs in, and leaves the token or
// the failure in memory for the next reconcile; it tells the gate what the
// login's end says of the endpoint host. A login cut short by the manager
// stopping leaves nothing: the next leader decides afresh.
func (r *TokenRequestReconciler) runLogin(ctx context.Context, a *loginAttempt) (end loginEnd) {
	var (
		pending *policy.PendingToken
		failed  *failedLogin
		err     error
	)
	defer func() {
		if p := recover(); p != nil {
			// A provider must never take the operator down with it.
			logf.FromContext(ctx).Error(fmt.Errorf("%v", p), "A login panicked", "tokenRequest", a.key, "provider", a.is.Provider)
			failed = a.failure(policy.Failure{Reason: tokensyncv1alpha1.ReasonInvalidResponse,
				Message: "login failed: the provider's answer could not be handled"}, nil)
			end = loginEnd{outcome: hostUnclear}
		}
		if ctx.Err() != nil && failed == nil && pending == nil {
			end = loginEnd{outcome: hostNotTried}
			return
		}
		r.memory.with(a.key, a.uid, func(e *remembered) {
			switch {
			case pending != nil:
				r.memory.setPending(a.key, e, pending)
			case failed != nil:
				e.loginFailed = failed
			case err != nil:
				e.loginErr = err
			}
		})
	}()
	pending, failed, end, err = r.logIn(ctx, a)
	if ctx.Err() != nil {
		// The manager is stopping; the next one retries without counting this.
		pending, failed, err = nil, nil, nil
	}
	return end
}

// logIn reads the credentials and logs in; end says what the login's end
// tells of the endpoint host (nothing, unless the provider was asked).
func (r *TokenRequestReconciler) logIn(ctx context.Context, a *loginAttempt) (_ *policy.PendingToken, _ *failedLogin, end loginEnd, _ error) {
	creds, is := a.creds, a.is
	credsState := &policy.CredentialsState{Found: true, Allowed: true, Version: is.CredentialsVersion, Fingerprint: is.CredentialsFingerprint}
	if creds == nil {
		var (
			version string
			allowed bool
			err     error
		)
		creds, version, allowed, err = r.readCredentials(ctx, a.credentials)
		switch {
		case apierrors.IsNotFound(err):
			return nil, a.failure(policy.Failure{
				Reason: tokensyncv1alpha1.ReasonCredentialsNotFound,
				Message: fmt.Sprintf("credentials Secret %q not found in namespace %q: create it with keys %s",
					a.credentials.Name, a.credentials.Namespace, a.keys.CredentialKeyNames()),
			}, &policy.CredentialsState{}), end, nil
		case err != nil:
			return nil, nil, end, err
		case !allowed:
			return nil, a.failure(credentialsNotAllowed(a.credentials.Name), &policy.CredentialsState{Found: true, Version: version}), end, nil
		}
		fp, err := r.fingerprints.credentials(ctx, a.uid, a.keys.UsedCredentials(creds))
		if err != nil {
			return nil, nil, end, err
		}
		is.CredentialsVersion, is.CredentialsFingerprint = version, fp
		credsState.Version, credsState.Fingerprint = version, fp
	}
	if v, ok := a.provider.(providers.Validator); ok {
		if err := v.Validate(creds); err != nil {
			return nil, a.failure(providerFailureFor(a.credentials.Name, err), credsState), end, nil
		}
	}
	start := r.now()
	tok, err := a.provider.Login(ctx, is.Endpoint, creds)
	loginDuration.WithLabelValues(is.Provider).Observe(r.now().Sub(start).Seconds())
	account, aerr := r.fingerprints.account(ctx, a.keys.UsedCredentials(creds))
	if aerr != nil {
		return nil, nil, end, aerr
	}
	end = loginEnd{credentials: account, outcome: hostOutcomeOf(err), retryAfter: providers.RetryAfterOf(err)}
	if err != nil {
		f := providerFailureFor(a.credentials.Name, err)
		if ctx.Err() == nil {
			loginsTotal.WithLabelValues(is.Provider, f.Reason).Inc()
			loginFailures.inc(is.Provider, is.Endpoint)
			logFailureDetail(ctx, a, f, err)
		}
		return nil, a.failure(f, credsState), end, nil
	}
	loginsTotal.WithLabelValues(is.Provider, "success").Inc()
	tokenFP, err := r.fingerprints.token(ctx, a.uid, []byte(tok.Value))
	if err != nil {
		return nil, nil, end, err
	}
	is.Token, is.TokenFingerprint = tok, tokenFP
	// Kept until written or expired: a refused write must not spend the login.
	return &policy.PendingToken{Issued: is, Force: a.force, Reason: a.reason, Message: a.message}, nil, end, nil
}

// failure is f as made by this attempt, with its credentials and force value.
func (a *loginAttempt) failure(f policy.Failure, creds *policy.CredentialsState) *failedLogin {
	force := a.force
	f.Force = &force
	f.Credentials = creds
	return &failedLogin{Failure: f, provider: a.is.Provider, endpoint: a.is.Endpoint, settingsDigest: a.is.SettingsDigest}
}

// providerFailureFor maps a provider error to a failure.
func providerFailureFor(credentialsSecret string, err error) policy.Failure {
	kind := providers.KindOf(err)
	msg := err.Error()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		// Not a classified provider error: do not pass on text we do not control.
		msg = "login failed: the provider could not be reached"
	}
	if kind == providers.InvalidCredentials {
		msg = fmt.Sprintf("credentials Secret %q: %s", credentialsSecret, msg)
	}
	return policy.Failure{Reason: string(kind), Message: msg, RetryAfter: providers.RetryAfterOf(err)}
}

// logFailureDetail logs what a failed login's status leaves out on
// purpose (providers.Error.Detail: whether a connection was refused, reset
// or timed out, which the TokenRequest's author must not tell apart), for
// whoever runs the operator. Only the log gets it.
func logFailureDetail(ctx context.Context, a *loginAttempt, f policy.Failure, err error) {
	var pe *providers.Error
	if errors.As(err, &pe) && pe.Detail != "" {
		logf.FromContext(ctx).Info("Login failed", "tokenRequest", a.key, "provider", a.is.Provider,
			"reason", f.Reason, "detail", pe.Detail)
	}
}
