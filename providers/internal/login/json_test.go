package login

import (
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
)

// nested is depth arrays one in another: "[[[]]]" for 3.
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// valuesArray is an array holding n-1 numbers: n values in all.
func valuesArray(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("0,", n-1), ",") + "]"
}

// TestCheckJSON: JSON up to MaxJSONDepth levels and MaxJSONValues values
// passes; one more of either is an InvalidResponse naming the limit; what
// is not a JSON array or object, or not JSON, is left to the provider.
func TestCheckJSON(t *testing.T) {
	object := func(members int) string { // an object of members members: members+1 values
		var b strings.Builder
		b.WriteString("{")
		for i := range members {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"k` + strings.Repeat("x", i%3) + `":` + `"v"`)
		}
		return b.String() + "}"
	}
	for _, tc := range []struct {
		name, body string
		want       string // "" passes; else part of the message
	}{
		{"32 levels", nested(MaxJSONDepth), ""},
		{"33 levels", nested(MaxJSONDepth + 1), "nested deeper than 32 levels"},
		{"33 levels unclosed", strings.Repeat("[", MaxJSONDepth+1), "nested deeper than 32 levels"},
		{"33 levels of objects", strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1), "nested deeper than 32 levels"},
		{"32 levels of objects", strings.Repeat(`{"a":`, MaxJSONDepth) + "1" + strings.Repeat("}", MaxJSONDepth), ""},
		{"10,000 values", valuesArray(MaxJSONValues), ""},
		{"10,001 values", valuesArray(MaxJSONValues + 1), "more than 10,000 values"},
		{"10,001 values of empty objects", "[" + strings.TrimSuffix(strings.Repeat("{},", MaxJSONValues), ",") + "]", "more than 10,000 values"},
		{"member names are not values", object(MaxJSONValues - 1), ""},
		{"an object of 10,000 members", object(MaxJSONValues), "more than 10,000 values"},
		{"10,000 values over two documents", valuesArray(MaxJSONValues/2) + " " + valuesArray(MaxJSONValues/2), ""},
		{"10,001 values over two documents", valuesArray(MaxJSONValues/2) + " " + valuesArray(MaxJSONValues/2+1), "more than 10,000 values"},
		{"a scalar", `"` + strings.Repeat("a", 1<<20) + `"`, ""},
		{"not JSON", "<html>" + nested(100) + "</html>", ""},
		{"a syntax error before a limit", "[1,,2" + nested(100), ""},
		{"empty", "", ""},
		{"leading space", " \n\t" + nested(MaxJSONDepth+1), "nested deeper"},
	} {
		err := CheckJSON("Test", 200, []byte(tc.body))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if providers.KindOf(err) != providers.InvalidResponse || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want an InvalidResponse containing %q", tc.name, err, tc.want)
		}
	}
}

func TestFormatCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", n, got, want)
		}
	}
}
