package login

import (
	"testing"

	"github.com/tokensync/tokensync/providers"
)

func TestCheckTokenValue(t *testing.T) {
	for value, ok := range map[string]bool{
		"abc": true, "eyJ.a-b_c.d": true, "a b": true, "ünïcode": true,
		"": false, "  ": false, "a\nb": false, "a\tb": false, "a\x00": false, "a\x7f": false,
	} {
		err := CheckTokenValue("Test", value)
		if (err == nil) != ok || (err != nil && providers.KindOf(err) != providers.InvalidResponse) {
			t.Errorf("CheckTokenValue(%q) = %v", value, err)
		}
	}
}
