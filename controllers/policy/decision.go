package policy

import (
	"fmt"
	"time"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The refresh decision: observe -> decide -> act. Reconcile gathers an
// observation (spec, status, what the target Secret holds and for which
// issuer and credentials, a token obtained but not yet written, now); decide
// turns it into one decision; the reconciler carries it out, and its log
// line, event and condition quote the decision's reason. decide is pure: no
// client, no clock, no logging, so every case is a row of a table test.

// Observation is everything the decision looks at.
type Observation struct {
	Now time.Time
	// UID seeds the refresh jitter.
	UID string

	// From the TokenRequest.
	Generation    int64
	Provider      string
	ProviderKnown bool
	// Endpoint is spec.endpoint with the provider's default applied.
	Endpoint string
	// SettingsDigest identifies the provider settings (spec.oauth2,
	// spec.http); empty for providers without any.
	SettingsDigest string
	// RefreshBefore is spec.refreshBefore, nil when unset.
	RefreshBefore *time.Duration
	SecretName    string
	// Force is the tokensync.io/force-refresh annotation's value.
	Force  string
	Status tokensyncv1alpha1.TokenStatus
	// Suspended is spec.suspend.
	Suspended bool
	// TemplateError says why spec.secretTemplate.data does not parse; empty
	// when it does.
	TemplateError string

	Target TargetState
	// Previous is the token held by the Secret of an earlier spec.secretName
	// (status.secretName), when that Secret is ours and its token intact.
	Previous *HeldToken
	// Pending is a token obtained by a login and not yet written: just
	// obtained, or kept after its Secret write was refused.
	Pending     *PendingToken
	Credentials CredentialsState
	// EndpointRefused: the operator's endpoint policy refuses the URL a
	// login would be sent to.
	EndpointRefused bool
	// LoginInFlight: a login for the current issuer is waiting for its turn
	// or running, or one for an earlier issuer is running; its end
	// reconciles again.
	LoginInFlight bool
	// MinLoginInterval is the least time between two logins of this
	// TokenRequest, failed ones included (--min-login-interval); zero: none.
	MinLoginInterval time.Duration
	// Host is what the login gate knows of the endpoint's host: whether it
	// is down (hosthealth.go), and when it is probed next.
	Host HostView
	// WaitsOnHost: this TokenRequest's login waits in the line of its
	// host, which is down; NextProbeAsked: as the host's next probe.
	WaitsOnHost, NextProbeAsked bool
}

// TargetState is what the API server (or a cache known to be current) says of
// the target Secret.
type TargetState struct {
	Exists bool
	// Foreign: the Secret exists and this TokenRequest does not control it.
	Foreign bool
	// Holds: the Secret carries tokensync's bookkeeping of a token.
	Holds bool
	Held  HeldToken
}

// CredentialsState is what is known of the credentials Secret.
type CredentialsState struct {
	Found bool
	// Allowed: the Secret may be used as credentials (it carries the
	// label tokensync.io/credentials: "true", or the operator does not
	// require it).
	Allowed bool
	Version string
	// Fingerprint of the credentials the provider uses; empty when not
	// known (observe computes it whenever the Secret's version is one no
	// fingerprint was recorded for).
	Fingerprint string
}

// Action is what the reconciler does.
type Action string

const (
	// ActKeep: the token is valid and not due; nothing to send until At.
	ActKeep Action = "Keep"
	// ActWait: a failure is being retried at At; nothing to send until then.
	ActWait Action = "Wait"
	// ActLogin: log in now.
	ActLogin Action = "Login"
	// ActWrite: write a token obtained earlier (Pending, or Previous after a
	// secretName change) without logging in.
	ActWrite Action = "Write"
	// ActStop: nothing will happen until an input changes; a person is needed.
	ActStop Action = "Stop"
	// ActSuspend: spec.suspend is true: nothing is sent or written.
	ActSuspend Action = "Suspend"
)

// Reasons a login is due, first match wins (see loginTriggers).
const (
	triggerSecretMissing      = "SecretMissing"
	triggerNoToken            = "NoToken"
	triggerTokenEdited        = "TokenEdited"
	triggerIssuerChanged      = "IssuerChanged"
	triggerCredentialsChanged = "CredentialsChanged"
	triggerForceRefresh       = "ForceRefresh"
	triggerExpired            = "Expired"
	triggerRefreshDue         = "RefreshDue"
	triggerRetry              = "RetryAfterFailure"
)

// Other decision reasons.
const (
	reasonValid            = "TokenValid"
	reasonSecretMoved      = "SecretNameChanged"
	reasonLockedOut        = "AuthenticationStopped"
	reasonPendingWrite     = "PendingWrite"
	reasonBackoff          = "Backoff"
	ReasonLoginInFlight    = "LoginInFlight"
	reasonMinLoginInterval = "MinLoginInterval"
	ReasonWaitingOnHost    = "WaitingOnHost"
)

// Decision is the outcome of decide.
type Decision struct {
	Action Action
	// Reason names the trigger or state, e.g. RefreshDue, CredentialsChanged.
	Reason string
	// Message says it in words, for the log line and the event.
	Message string
	// At: for actKeep the planned refresh, for actWait the retry.
	At time.Time
	// FromPrevious: actWrite copies the previous Secret's token.
	FromPrevious bool
	// ProbeWrite: the last attempt's Secret write was refused and no token is
	// pending: check with a dry-run write that writes are allowed again
	// before spending a login.
	ProbeWrite bool
	// CredentialsMissing: actKeep while the credentials Secret is gone.
	CredentialsMissing bool
	// NextProbe: actLogin asked for by a force-refresh or a credentials
	// change while the endpoint's host is down: the login is the host's
	// next probe.
	NextProbe bool
	// Record: actStop for a failure seen now, recorded with Reason and
	// Message; false for a stop already recorded.
	Record bool
}

// trigger is one reason a login may be due: a pure policy over the
// observation, as cert-manager's policies.Chain. It names its reason, says
// it in words, and whether it fires.
type trigger func(o *Observation) (reason, message string, due bool)

// loginTriggers are checked in order; the first that fires names the reason.
var loginTriggers = []trigger{
	secretMissing, noToken, tokenEdited, issuerChanged, credentialsChanged,
	forceRefresh, expired, refreshDue, retryAfterFailure,
}

func secretMissing(o *Observation) (string, string, bool) {
	return triggerSecretMissing, fmt.Sprintf("the target Secret %s does not exist", o.SecretName), !o.Target.Exists
}

func noToken(o *Observation) (string, string, bool) {
	return triggerNoToken, fmt.Sprintf("the target Secret %s holds no token tokensync can account for", o.SecretName), !o.Target.Holds
}

func tokenEdited(o *Observation) (string, string, bool) {
	return triggerTokenEdited, fmt.Sprintf("the token in Secret %s was changed or removed by hand", o.SecretName), !o.Target.Held.Intact
}

// issuerChanged: spec.provider, spec.endpoint or the provider settings
// differ from what the token was issued by. An issuer not recorded (a
// Secret written by an older tokensync) is unknown, not changed: an upgrade
// must not cost a login per TokenRequest.
func issuerChanged(o *Observation) (string, string, bool) {
	h := o.Target.Held
	changed := h.Provider != "" && h.Provider != o.Provider || h.Endpoint != "" && h.Endpoint != o.Endpoint
	if !changed && settingsChanged(h.SettingsDigest, o.SettingsDigest) {
		return triggerIssuerChanged, "the provider settings (spec.oauth2 or spec.http) changed since the token was issued", true
	}
	return triggerIssuerChanged, "spec.provider or spec.endpoint changed since the token was issued", changed
}

// credentialsChanged: the content of the keys the provider uses changed
// (a rotation: the old credentials may be revoked). A token written by an
// older tokensync records only the Secret's version: for it, a new version
// still counts as a change.
func credentialsChanged(o *Observation) (string, string, bool) {
	h := o.Target.Held
	same, known := SameFingerprint(h.CredentialsFingerprint, o.Credentials.Fingerprint)
	legacy := h.CredentialsFingerprint == "" && h.CredentialsVersion != "" && h.CredentialsVersion != o.Credentials.Version
	return triggerCredentialsChanged, "the credentials' content changed since the token was issued",
		o.Credentials.Found && (known && !same || legacy)
}

func forceRefresh(o *Observation) (string, string, bool) {
	return triggerForceRefresh, "refresh forced by the " + tokensyncv1alpha1.AnnotationForceRefresh + " annotation", forced(o)
}

func expired(o *Observation) (string, string, bool) {
	return triggerExpired, "the token has expired", !o.Now.Before(o.Target.Held.ExpiresAt)
}

func refreshDue(o *Observation) (string, string, bool) {
	return triggerRefreshDue, "the token is due for refresh", !o.Now.Before(o.refreshAt())
}

// retryAfterFailure: a failed attempt stays due until a login succeeds, so
// a forced refresh that failed is retried by backoff, not dropped because
// the old token is still valid. A template that did not render cost no
// login and needs none: the token written before is still the one to keep.
func retryAfterFailure(o *Observation) (string, string, bool) {
	templateOnly := o.Status.LastAttempt != nil && o.Status.LastAttempt.Result == tokensyncv1alpha1.ReasonInvalidTemplate
	return triggerRetry, "retrying after a failed attempt", o.Status.FailedAttempts > 0 && !templateOnly
}

// settingsChanged compares a recorded settings digest with the current
// one. An empty record is unknown (a token or attempt of an older
// tokensync), never a change.
func settingsChanged(recorded, current string) bool {
	return recorded != "" && recorded != current
}

func forced(o *Observation) bool {
	return o.Force != "" && o.Force != o.Status.LastForceRefresh
}

// refreshAt is the held token's planned refresh.
func (o *Observation) refreshAt() time.Time {
	h := o.Target.Held
	return PlannedRefresh(o.UID, h.ObtainedAt, h.ExpiresAt, o.RefreshBefore)
}

// Decide is the refresh decision. A login already under way is not asked
// for twice: its end reconciles again; one waiting on its down host keeps
// waiting, and its status says on what. A login due inside the minimum
// login interval waits for its end (see lastLogin). A force-refresh or a
// credentials change while the host is down makes the login the host's
// next probe.
func Decide(o Observation) Decision {
	d := decideLogin(o)
	if d.Action != ActLogin {
		return d
	}
	asksProbe := o.Host.Down && (d.Reason == triggerForceRefresh || d.Reason == triggerCredentialsChanged)
	if o.LoginInFlight && !(o.WaitsOnHost && asksProbe && !o.NextProbeAsked) {
		if o.WaitsOnHost {
			return waitOnHost(&o, d, time.Time{})
		}
		return Decision{Action: ActWait, Reason: ReasonLoginInFlight,
			Message: d.Message + "; a login is already under way"}
	}
	if last := o.lastLogin(); !last.IsZero() && o.MinLoginInterval > 0 {
		if next := last.Add(o.MinLoginInterval); o.Now.Before(next) {
			if o.WaitsOnHost {
				// Keep its place in the host's line, and ask again then.
				return waitOnHost(&o, d, next)
			}
			return Decision{Action: ActWait, Reason: reasonMinLoginInterval, At: next,
				Message: fmt.Sprintf("%s; the last login was at %s, the next may start at %s (--min-login-interval %s)",
					d.Message, FormatTime(last), FormatTime(next), o.MinLoginInterval)}
		}
	}
	d.NextProbe = asksProbe
	return d
}

// waitOnHost is the decision of a TokenRequest whose login waits on its
// down host (At: when to look again, zero: the login's end reconciles).
func waitOnHost(o *Observation, d Decision, at time.Time) Decision {
	return Decision{Action: ActWait, Reason: ReasonWaitingOnHost, At: at, Message: d.Message + "; " + o.Host.WaitMessage()}
}

// WaitMessage says that the host is down and when it is probed next.
func (h HostView) WaitMessage() string {
	next := "the next probe is at " + FormatTime(h.NextProbe)
	if h.Probing {
		next = "a probe is under way"
	}
	return fmt.Sprintf("provider host %s is down: its TokenRequests wait on it, and it is probed with one login at a time; %s", h.Name, next)
}

// DefaultMinLoginInterval is --min-login-interval's default: a provider's
// token lives minutes to hours, so only a token shorter than this (or a
// tenant bumping force-refresh) ever meets it.
const DefaultMinLoginInterval = 10 * time.Second

// lastLogin is when this TokenRequest last logged in, zero when never:
// the later of status.lastAttempt.time (a success's start, a failure's
// record, so it holds across restarts; kept to the second) and the start of
// a login whose token is held and not yet written. The minimum login
// interval counts from it, failed attempts included, whatever the token's
// lifetime: a token that lives a second must not have the operator log in,
// write a Secret, a status and an event every second, nor can a tenant
// spend the provider's rate limit by bumping force-refresh. Neither a first
// login (nothing recorded) nor the write of a token already obtained
// (actWrite) waits for it.
func (o *Observation) lastLogin() time.Time {
	var last time.Time
	if a := o.Status.LastAttempt; a != nil && !RuleOf(a.Result).SendsNothing {
		last = a.Time.Time
	}
	if p := o.Pending; p != nil && p.Issued.Token != nil && p.Issued.Token.ObtainedAt.After(last) {
		last = p.Issued.Token.ObtainedAt
	}
	return last
}

func decideLogin(o Observation) Decision {
	if o.Suspended {
		d := Decision{Action: ActSuspend, Reason: tokensyncv1alpha1.ReasonSuspended,
			Message: "spec.suspend is true: no login and no write until it is false"}
		if h := o.Target.Held; o.Target.Holds && h.Intact && o.Now.Before(h.ExpiresAt) {
			d.At = h.ExpiresAt // to say when the token has expired
		}
		return d
	}
	if !o.ProviderKnown {
		// Only when the CRD's enum is newer than this operator's registry.
		return Decision{Action: ActStop, Reason: tokensyncv1alpha1.ReasonUnsupportedProvider, Record: true,
			Message: fmt.Sprintf("provider %q is not supported by this operator (is the operator older than its CRD?); nothing was sent", o.Provider)}
	}
	if o.Target.Foreign {
		return Decision{Action: ActStop, Reason: tokensyncv1alpha1.ReasonSecretConflict, Record: true,
			Message: SecretConflictMessage("TokenRequest", o.SecretName)}
	}
	if o.TemplateError != "" {
		return Decision{Action: ActStop, Reason: tokensyncv1alpha1.ReasonInvalidTemplate, Record: true, Message: o.TemplateError + nothingWritten}
	}
	if last := o.Status.LastAttempt; last != nil && last.Result == tokensyncv1alpha1.ReasonInvalidTemplate &&
		o.Status.FailedAttempts > 0 && !fixingChange(&o) {
		return Decision{Action: ActStop, Reason: tokensyncv1alpha1.ReasonInvalidTemplate,
			Message: "waiting for spec.secretTemplate.data to be fixed"}
	}
	if p := o.Pending; p != nil && pendingUsable(&o, p) {
		if o.Now.Before(p.RetryAt) {
			return Decision{Action: ActWait, Reason: tokensyncv1alpha1.ReasonSecretWriteFailed, At: p.RetryAt,
				Message: "waiting to retry writing the token already obtained"}
		}
		if p.Failures == 0 {
			// Just obtained: the login's own reason.
			return Decision{Action: ActWrite, Reason: p.Reason, Message: p.Message}
		}
		return Decision{Action: ActWrite, Reason: reasonPendingWrite,
			Message: "writing the token obtained earlier, whose write was refused"}
	}

	reason, message, due := "", "", false
	for _, t := range loginTriggers {
		if reason, message, due = t(&o); due {
			break
		}
	}
	if !due {
		return Decision{Action: ActKeep, Reason: reasonValid, At: o.refreshAt(),
			Message: "the token is valid and not yet due", CredentialsMissing: !o.Credentials.Found}
	}
	if reason == triggerSecretMissing && previousUsable(&o) {
		return Decision{Action: ActWrite, Reason: reasonSecretMoved, FromPrevious: true,
			Message: fmt.Sprintf("spec.secretName changed: moving the valid token from Secret %s", o.Status.SecretName)}
	}

	if last := o.Status.LastAttempt; last != nil && last.Result != tokensyncv1alpha1.ReasonSucceeded && o.Status.FailedAttempts > 0 {
		fixing := fixingChange(&o)
		if !fixing && RuleOf(last.Result).CountsTowardLockout && last.AuthenticationFailures >= tokensyncv1alpha1.MaxAuthenticationFailures {
			return Decision{Action: ActStop, Reason: reasonLockedOut,
				Message: fmt.Sprintf("stopped after %d consecutive authentication failures", last.AuthenticationFailures)}
		}
		if !fixing && RuleOf(last.Result).StopsUntilChange {
			return Decision{Action: ActStop, Reason: last.Result, Message: "waiting for a change that could fix " + last.Result}
		}
		// While the host is down, its TokenRequests do not retry on their
		// own schedules: a provider's failure waits on the host instead.
		waitsOnHost := o.Host.Down && last.Result == tokensyncv1alpha1.ReasonProviderUnavailable
		if next := o.Status.NextRefreshTime; !fixing && !waitsOnHost && next != nil && o.Now.Before(next.Time) {
			return Decision{Action: ActWait, Reason: reasonBackoff, At: next.Time,
				Message: fmt.Sprintf("%s; retrying after %s", message, last.Result)}
		}
		return Decision{Action: ActLogin, Reason: reason, Message: message,
			ProbeWrite: last.Result == tokensyncv1alpha1.ReasonSecretWriteFailed}
	}
	return Decision{Action: ActLogin, Reason: reason, Message: message}
}

// fixingChange reports whether something that could fix the last failed
// attempt changed since: spec.provider, spec.endpoint or the provider
// settings, a new force-refresh value, and then what the failure's row
// says lifts it (LiftedBy: the foreign Secret going away, the operator's
// policy allowing the endpoint, the label on the credentials, a spec edit),
// by default the credentials' content (or their appearance). A
// metadata-only change of the credentials Secret, or any other spec edit,
// is not one.
func fixingChange(o *Observation) bool {
	last := o.Status.LastAttempt
	if last.Provider != o.Provider || last.Endpoint != o.Endpoint || settingsChanged(last.SettingsDigest, o.SettingsDigest) || forced(o) {
		return true
	}
	if lift := RuleOf(last.Result).LiftedBy; lift != nil {
		return lift(o)
	}
	return newCredentials(o)
}

// pendingUsable: a pending token is written only while valid and only to the
// issuer and credentials it was obtained for.
func pendingUsable(o *Observation, p *PendingToken) bool {
	is := p.Issued
	if !o.Now.Before(is.Token.ExpiresAt) || is.Provider != o.Provider || is.Endpoint != o.Endpoint || is.SettingsDigest != o.SettingsDigest {
		return false
	}
	same, known := SameFingerprint(is.CredentialsFingerprint, o.Credentials.Fingerprint)
	return !o.Credentials.Found || !known || same
}

// previousUsable: after a secretName change the old Secret's token moves to
// the new name when it is valid, not due, and from the same issuer and credentials.
func previousUsable(o *Observation) bool {
	p := o.Previous
	if p == nil || !p.Intact || p.Provider != o.Provider || (p.Endpoint != "" && p.Endpoint != o.Endpoint) ||
		settingsChanged(p.SettingsDigest, o.SettingsDigest) || forced(o) {
		return false
	}
	if o.Credentials.Found {
		if same, known := SameFingerprint(p.CredentialsFingerprint, o.Credentials.Fingerprint); known && !same {
			return false
		}
	}
	at := PlannedRefresh(o.UID, p.ObtainedAt, p.ExpiresAt, o.RefreshBefore)
	return o.Now.Before(at)
}

// Issuer identifies what a login is made with: the provider, its endpoint
// and its settings.
func (o *Observation) Issuer() string {
	return o.Provider + "\x00" + o.Endpoint + "\x00" + o.SettingsDigest
}
