package main

import (
	"maps"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		value    string
		provider string
		set      map[string]string
		wantErr  bool
	}{
		{value: "partner:accessKey=k,secret=s", provider: "partner", set: map[string]string{"accessKey": "k", "secret": "s"}},
		{value: "aml:email=a@b.c,password=p=q", provider: "aml", set: map[string]string{"email": "a@b.c", "password": "p=q"}},
		{value: "amplifi:channel=internet,password=", provider: "amplifi", set: map[string]string{"channel": "internet", "password": ""}},
		{value: "github:token=x", wantErr: true},
		{value: "partner", wantErr: true},
		{value: "partner:accessKey", wantErr: true},
		{value: "partner:=s", wantErr: true},
	}
	for _, tt := range tests {
		provider, set, err := parseValid(tt.value)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseValid(%q) error = %v, want error %v", tt.value, err, tt.wantErr)
			continue
		}
		if provider != tt.provider || !maps.Equal(set, tt.set) {
			t.Errorf("parseValid(%q) = %q, %v; want %q, %v", tt.value, provider, set, tt.provider, tt.set)
		}
	}
}
