package main

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds the image as make image does, writes it, reads it back
// from the tarball, and checks its config (user, entrypoint, labels, platform)
// and its one layer: /manager, static, which runs with --help once taken out
// of the image and reports the stamped version's build.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	spec := imageSpec{source: filepath.Join("..", ".."), arch: runtime.GOARCH, version: "v9.8.7-test",
		revision: "0123456789abcdef", sourceURL: "https://github.com/tokensync/tokensync"}
	out := filepath.Join(dir, "image.tar")
	if err := run(spec, out, "registry.example.com/tokensync:v9.8.7-test", "2026-01-02T03:04:05Z"); err != nil {
		t.Fatal(err)
	}

	tag, err := name.NewTag("registry.example.com/tokensync:v9.8.7-test")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read the image back: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cfg.Config.User)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/manager" || len(cfg.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/manager] and no cmd", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !cfg.Created.Time.Equal(want) {
		t.Errorf("created %s, want %s", cfg.Created, want)
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.version":  "v9.8.7-test",
		"org.opencontainers.image.source":   "https://github.com/tokensync/tokensync",
		"org.opencontainers.image.revision": "0123456789abcdef",
	} {
		if got := cfg.Config.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	if len(cfg.Config.Env) != 0 {
		t.Errorf("env %v: the empty base sets none", cfg.Config.Env)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1 on an empty base", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	manager := filepath.Join(dir, "manager")
	tr := tar.NewReader(rc)
	var files []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
		if h.Name != "manager" {
			continue
		}
		if h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("/manager mode %o owner %d:%d, want 755 root:root (not writable by user 65532)", h.Mode, h.Uid, h.Gid)
		}
		f, err := os.OpenFile(manager, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(files) != 1 || files[0] != "manager" {
		t.Fatalf("layer files %v, want only manager", files)
	}

	// Static: no dynamic loader to find on an empty base.
	bin, err := elf.Open(manager)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("/manager is dynamically linked (program header %s)", p.Type)
		}
	}
	bin.Close()

	out2, err := exec.Command(manager, "--help").CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 2) { // the flag package exits 2 after --help
		t.Fatalf("/manager --help: %v\n%s", err, out2)
	}
	for _, flag := range []string{"-metrics-bind-address", "-leader-elect", "-namespaces"} {
		if !strings.Contains(string(out2), flag) {
			t.Errorf("/manager --help does not list %s:\n%s", flag, out2)
		}
	}
}

// TestManagerEmbedsCARoots: on an empty base there is no certificate file,
// so the manager must bring its own CA roots: main imports
// golang.org/x/crypto/x509roots/fallback, which crypto/x509 uses when the
// system has none.
func TestManagerEmbedsCARoots(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps the manager: %v", err)
	}
	if !strings.Contains(string(out), "golang.org/x/crypto/x509roots/fallback\n") {
		t.Error("the manager does not import golang.org/x/crypto/x509roots/fallback: TLS on an empty base would find no CA roots")
	}
}
