// Command gitops judges objects as GitOps tools do, for the controllers'
// envtest suite: kstatus (cli-utils, which Flux and kpt use) and Argo CD's
// Lua health checks and resource actions. It is a module of its own so that
// these test-only dependencies stay out of the product's go.mod; the suite
// builds it once and sends it one object per run.
//
//	gitops kstatus < object.json   → {"status": "...", "message": "..."}
//	gitops lua < request.json      → {"result": ...} or {"error": "..."}
//
// A lua request is {"script": "...", "obj": {...}, "openLibs": false}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gitops kstatus|lua < input.json")
		os.Exit(2)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var out any
	switch os.Args[1] {
	case "kstatus":
		out, err = kstatus(in)
	case "lua":
		out, err = luaRequest(in)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gitops:", err)
	os.Exit(1)
}

type kstatusResult struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// kstatus computes what kstatus reads of an object as the API server
// returned it.
func kstatus(in []byte) (kstatusResult, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(in); err != nil {
		return kstatusResult{}, err
	}
	res, err := status.Compute(u)
	if err != nil {
		return kstatusResult{}, err
	}
	return kstatusResult{Status: string(res.Status), Message: res.Message}, nil
}

type luaInput struct {
	Script   string         `json:"script"`
	Obj      map[string]any `json:"obj"`
	OpenLibs bool           `json:"openLibs"`
}

type luaOutput struct {
	Result any    `json:"result"`
	Error  string `json:"error,omitempty"`
}

// luaRequest runs one script; a script's own error is an answer, not a
// failure of the command.
func luaRequest(in []byte) (luaOutput, error) {
	var req luaInput
	if err := json.Unmarshal(in, &req); err != nil {
		return luaOutput{}, err
	}
	v, err := runArgoCDLua(req.Script, req.Obj, req.OpenLibs)
	if err != nil {
		return luaOutput{Error: err.Error()}, nil
	}
	return luaOutput{Result: v}, nil
}
