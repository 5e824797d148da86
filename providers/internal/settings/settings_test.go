package settings

import (
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
)

type sample struct {
	Name     string   `json:"name,omitempty"`
	Lifetime Duration `json:"lifetime,omitempty"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		data string
		want sample
		err  string
	}{
		{data: ``},
		{data: `null`},
		{data: `{}`},
		{data: `{"name": "a", "lifetime": "1h30m0s"}`, want: sample{Name: "a", Lifetime: Duration(90 * time.Minute)}},
		{data: `{"nmae": "a"}`, err: `spec.x cannot be read: json: unknown field "nmae"`},
		{data: `{"name": 3}`, err: "spec.x cannot be read: field name is not a string"},
		{data: `{"lifetime": "forever"}`, err: `spec.x cannot be read`},
		{data: `{"lifetime": "-1s"}`, err: `spec.x cannot be read`},
		{data: `{"name": "a"} {}`, err: "data after the object"},
		{data: `{`, err: "not valid JSON"},
	} {
		var got sample
		err := Decode("spec.x", []byte(tc.data), &got)
		if tc.err != "" {
			if providers.KindOf(err) != providers.InvalidTemplate || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Decode(%s) = %v, want InvalidTemplate %q", tc.data, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Decode(%s) = %+v, %v; want %+v", tc.data, got, err, tc.want)
		}
	}
}

func TestDurationRoundTrip(t *testing.T) {
	b, err := Duration(3 * time.Hour).MarshalJSON()
	if err != nil || string(b) != `"3h0m0s"` {
		t.Fatalf("MarshalJSON = %s, %v", b, err)
	}
	var d Duration
	if err := d.UnmarshalJSON(b); err != nil || time.Duration(d) != 3*time.Hour {
		t.Errorf("UnmarshalJSON = %s, %v", time.Duration(d), err)
	}
}
