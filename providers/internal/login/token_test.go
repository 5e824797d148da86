package login

import (
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
)

func TestCheckTokenValue(t *testing.T) {
	for value, ok := range map[string]bool{
		"abc": true, "eyJ.a-b_c.d": true, "a b": true, "ünïcode": true,
		strings.Repeat("t", MaxTokenBytes): true,
		"":                                 false, "  ": false, "a\nb": false, "a\tb": false, "a\x00": false, "a\x7f": false,
		strings.Repeat("t", MaxTokenBytes+1): false,
	} {
		err := CheckTokenValue("Test", value)
		if (err == nil) != ok || (err != nil && providers.KindOf(err) != providers.InvalidResponse) {
			t.Errorf("CheckTokenValue(%.20q, %d bytes) = %v", value, len(value), err)
		}
	}
	err := CheckTokenValue("Test", strings.Repeat("t", MaxTokenBytes+1))
	if err == nil || !strings.Contains(err.Error(), "larger than 256 KiB") {
		t.Errorf("a token over the limit: %v, want the limit named", err)
	}
}
