package main

import "testing"

// TestHeapJudgedAtXL: the heap per TokenRequest gets a verdict only at xl,
// where the fixed heap weighs little; smaller scales show the figure alone.
func TestHeapJudgedAtXL(t *testing.T) {
	for _, scale := range []string{"tiny", "default", "large"} {
		if v := heapVerdict(scale, false); v != nil {
			t.Errorf("%s: verdict %v, want none", scale, *v)
		}
	}
	for _, ok := range []bool{true, false} {
		if v := heapVerdict("xl", ok); v == nil || *v != ok {
			t.Errorf("xl, within the target %v: verdict %v", ok, v)
		}
	}
}
