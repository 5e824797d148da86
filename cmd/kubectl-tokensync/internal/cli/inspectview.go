package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// secretOwner is the TokenRequest or ClusterTokenRequest that wrote a
// target Secret, as the Secret says.
type secretOwner struct {
	Kind, Namespace, Name string
	// By says how the Secret names it.
	By string
}

func (o secretOwner) String() string {
	if o.Namespace != "" {
		return o.Kind + " " + o.Namespace + "/" + o.Name
	}
	return o.Kind + " " + o.Name
}

// ownerOf reads who wrote s: its controller reference (deletionPolicy
// Delete), else the owner annotation the operator leaves on a retained
// Secret (tokensync.io/owner, tokensync.io/cluster-owner). ok is false for
// a Secret that names neither.
func ownerOf(s *corev1.Secret) (secretOwner, bool) {
	if ref := metav1.GetControllerOf(s); ref != nil && strings.HasPrefix(ref.APIVersion, tokensyncv1alpha1.GroupVersion.Group+"/") {
		switch ref.Kind {
		case kindTokenRequest:
			return secretOwner{Kind: kindTokenRequest, Namespace: s.Namespace, Name: ref.Name, By: "owner reference"}, true
		case kindClusterTokenRequest:
			return secretOwner{Kind: kindClusterTokenRequest, Name: ref.Name, By: "owner reference"}, true
		}
	}
	if name := s.Annotations[tokensyncv1alpha1.AnnotationOwner]; name != "" {
		return secretOwner{Kind: kindTokenRequest, Namespace: s.Namespace, Name: printable(name), By: "annotation " + tokensyncv1alpha1.AnnotationOwner + "; deletionPolicy Retain"}, true
	}
	if name := s.Annotations[tokensyncv1alpha1.AnnotationClusterOwner]; name != "" {
		return secretOwner{Kind: kindClusterTokenRequest, Name: printable(name), By: "annotation " + tokensyncv1alpha1.AnnotationClusterOwner + "; deletionPolicy Retain"}, true
	}
	return secretOwner{}, false
}

// ownerRead is the owner as inspect could read it: the object, or why not.
type ownerRead struct {
	Object *tokenObject
	Err    error
}

// inspectSecret prints what tokensync recorded on a target Secret: its
// writer, provider, endpoint, obtained and expires, the keys present, the
// operator's verdict from the owner's status, and of a JWT its header's
// alg and kid and the registered claims (and those named in claims). It
// never prints a value of the Secret's data but for those claims.
func inspectSecret(out io.Writer, s *corev1.Secret, owner *secretOwner, read ownerRead, claims []string, now time.Time) error {
	w := printers.GetNewTabWriter(out)
	line := func(label, value string) { fmt.Fprintf(w, "%s:\t%s\n", label, value) }
	line("Secret", s.Namespace+"/"+s.Name)
	if owner == nil {
		line("Written by", "nobody tokensync knows: no owner reference to a TokenRequest or ClusterTokenRequest, no "+
			tokensyncv1alpha1.AnnotationOwner+" annotation")
	} else {
		line("Written by", owner.String()+" ("+owner.By+")")
	}
	a := s.Annotations
	line("Provider", dash(printable(a[tokensyncv1alpha1.AnnotationProvider])))
	line("Endpoint", dash(printable(a[tokensyncv1alpha1.AnnotationEndpoint])))
	line("Obtained", annotatedTime(a[tokensyncv1alpha1.AnnotationObtainedAt], now))
	line("Expires", annotatedTime(a[tokensyncv1alpha1.AnnotationExpiresAt], now))
	line("Keys", keyList(s.Data))
	if owner != nil {
		line("Verdict", verdict(s, owner, read))
	}
	token := s.Data[tokensyncv1alpha1.SecretKeyToken]
	jwt, isJWT := readJWT(string(token), claims)
	switch {
	case len(token) == 0:
		line("Token", fmt.Sprintf("none (no %q key)", tokensyncv1alpha1.SecretKeyToken))
	case !isJWT:
		line("Token", fmt.Sprintf("not a JWT (%d bytes); nothing of it is shown", len(token)))
	default:
		line("Token", "a JWT; its signature is neither checked nor shown")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !isJWT {
		return nil
	}
	tw := indented(out)
	fmt.Fprintf(tw, "alg:\t%s\n", dash(jwt.Alg))
	fmt.Fprintf(tw, "kid:\t%s\n", dash(jwt.Kid))
	for _, c := range jwt.Claims {
		switch {
		case !c.Present:
			fmt.Fprintf(tw, "%s:\t(not in the token)\n", printable(c.Name))
		case !c.Time.IsZero():
			fmt.Fprintf(tw, "%s:\t%s\n", c.Name, when(now, c.Time))
		default:
			fmt.Fprintf(tw, "%s:\t%s\n", printable(c.Name), c.Value)
		}
	}
	if len(jwt.Others) > 0 {
		fmt.Fprintf(tw, "other claims:\t%s (values not shown; --claims NAME,... shows them)\n", strings.Join(jwt.Others, ", "))
	}
	return tw.Flush()
}

// keyList names the data keys with their sizes, never their values.
func keyList(data map[string][]byte) string {
	if len(data) == 0 {
		return "none"
	}
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(data)) {
		keys = append(keys, fmt.Sprintf("%s (%d bytes)", printable(k), len(data[k])))
	}
	return strings.Join(keys, ", ")
}

// verdict is what the owner's status says of the token in s: the
// operator's own judgement (it alone holds the key that fingerprints the
// token, so the plugin cannot check the token itself).
func verdict(s *corev1.Secret, owner *secretOwner, read ownerRead) string {
	if read.Err != nil {
		if apierrors.IsNotFound(read.Err) {
			return fmt.Sprintf("unknown: %s does not exist (a Secret retained after its owner was deleted is no longer refreshed)", owner)
		}
		return "unknown: " + printable(read.Err.Error())
	}
	o := read.Object
	st := o.Status
	c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
	v := "the operator has not judged it yet (no Ready condition)"
	if c != nil {
		v = fmt.Sprintf("Ready=%s (%s)", c.Status, dash(printable(c.Reason)))
		if c.Message != "" {
			v += ": " + printable(c.Message)
		}
	}
	if o.Cluster != nil {
		for _, f := range o.Cluster.Status.FailedNamespaces {
			if f.Name == s.Namespace {
				v += fmt.Sprintf("; but not written in this namespace: %s: %s", printable(f.Reason), printable(f.Message))
			}
		}
	} else if st.SecretName != "" && st.SecretName != s.Name {
		v += fmt.Sprintf("; but it keeps its token in Secret %s now: this one is no longer refreshed", st.SecretName)
	}
	if exp := s.Annotations[tokensyncv1alpha1.AnnotationExpiresAt]; st.ExpiresAt != nil && exp != "" &&
		exp != st.ExpiresAt.UTC().Format(time.RFC3339) {
		v += fmt.Sprintf("; its status records a token that expires at %s, this Secret one at %s",
			st.ExpiresAt.UTC().Format(time.RFC3339), printable(exp))
	}
	return v
}
