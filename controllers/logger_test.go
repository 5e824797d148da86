package controllers

import (
	"bytes"
	"io"
	"os"
	"sync"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// testLogs captures every log line of the test run, so the sentinel test can
// prove that no credential or token was ever logged.
var testLogs = &syncBuffer{}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger captures every V level; TOKENSYNC_TEST_LOGS=1 also prints them.
func testLogger() logr.Logger {
	var out io.Writer = testLogs
	if os.Getenv("TOKENSYNC_TEST_LOGS") != "" {
		out = io.MultiWriter(testLogs, os.Stderr)
	}
	return zap.New(zap.WriteTo(out), zap.UseDevMode(false), zap.Level(zapcore.Level(-5)))
}

// ctrlConfigForTests lets several managers in one process register the
// same controller name.
func ctrlConfigForTests() config.Controller {
	skip := true
	return config.Controller{SkipNameValidation: &skip}
}
