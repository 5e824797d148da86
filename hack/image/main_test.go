package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// elfMachines is the ELF e_machine of each architecture's manager.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// TestImage builds the image as make image does, for both architectures,
// and reads back what it writes: the OCI layout's image index (exactly
// linux/amd64 and linux/arm64 in its descriptors, each image's config and
// its one layer: /manager, static, an ELF binary of the descriptor's
// architecture; the host's runs with --help and reports the flags), the
// tarball of the host's image (the same image), and what crane push makes
// of the layout in a registry.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	const tag = "registry.example.com/tokensync:v9.8.7-test"
	opts := buildOptions{
		spec: imageSpec{source: filepath.Join("..", ".."), version: "v9.8.7-test",
			revision: "0123456789abcdef", sourceURL: "https://github.com/tokensync/tokensync"},
		archs:       defaultArchs,
		layoutDir:   filepath.Join(dir, "bin", "tokensync-image"),
		tarball:     filepath.Join(dir, "bin", "tokensync-image.tar"),
		tarballArch: runtime.GOARCH,
		tag:         tag,
		created:     "2026-01-02T03:04:05Z",
	}
	var stdout bytes.Buffer
	if err := run(opts, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"crane push " + opts.layoutDir + " " + tag + "\n",
		"--set image.repository=registry.example.com/tokensync --set image.tag=v9.8.7-test\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("make image printed:\n%s\nwant a line with %q", stdout.String(), want)
		}
	}

	// The layout: index.json lists one image index, named by its tag.
	l, err := layout.ImageIndexFromPath(opts.layoutDir)
	if err != nil {
		t.Fatalf("read the layout back: %v", err)
	}
	top, err := l.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json lists %+v, want one %s (crane push takes a layout of one entry)", top.Manifests, types.OCIImageIndex)
	}
	if got := top.Manifests[0].Annotations[refNameAnnotation]; got != "v9.8.7-test" {
		t.Errorf("index.json's entry is named %q (%s), want v9.8.7-test", got, refNameAnnotation)
	}
	index, err := l.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	indexDigest, err := index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), indexDigest.String()) {
		t.Errorf("make image printed:\n%s\nwant the index's digest %s", stdout.String(), indexDigest)
	}

	// The index: one image per platform, each platform in its descriptor.
	m, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	images := map[string]v1.Image{}
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			t.Fatalf("the index's entry %s has no platform: a node could not pick its own", desc.Digest)
		}
		platform := desc.Platform.OS + "/" + desc.Platform.Architecture
		platforms = append(platforms, platform)
		if desc.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: media type %s, want %s", platform, desc.MediaType, types.OCIManifestSchema1)
		}
		img, err := index.Image(desc.Digest)
		if err != nil {
			t.Fatalf("%s: %v", platform, err)
		}
		images[desc.Platform.Architecture] = img
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Fatalf("the index's platforms are %v, want %v", platforms, want)
	}
	for arch, img := range images {
		t.Run(arch, func(t *testing.T) {
			manager := checkImage(t, img, arch)
			if arch == runtime.GOARCH {
				checkRuns(t, manager)
			}
		})
	}

	t.Run("tarball", func(t *testing.T) {
		ref, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(opts.tarball, &ref)
		if err != nil {
			t.Fatalf("read the tarball back as %s: %v", tag, err)
		}
		checkImage(t, img, runtime.GOARCH)
		// The very image the index lists for this architecture: the same
		// config and layer (the manifest is the tarball reader's own).
		for what, digest := range map[string]func(v1.Image) (v1.Hash, error){"config": configDigest, "layer": layerDigest} {
			got, err := digest(img)
			if err != nil {
				t.Fatal(err)
			}
			want, err := digest(images[runtime.GOARCH])
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("the tarball's %s is %s, the index's linux/%s image's %s", what, got, runtime.GOARCH, want)
			}
		}
	})

	t.Run("crane push", func(t *testing.T) {
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		defer srv.Close()
		pushed := strings.TrimPrefix(srv.URL, "http://") + "/tokensync:v9.8.7-test"
		// crane as the README has it, the version of go.mod's tool line.
		cmd := exec.Command("go", "tool", "crane", "push", opts.layoutDir, pushed)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("crane push %s %s: %v\n%s", opts.layoutDir, pushed, err, stderr.String())
		}
		ref, err := name.ParseReference(pushed)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.TrimSpace(string(out)), ref.Context().Digest(indexDigest.String()).String(); got != want {
			t.Errorf("crane push printed %q, want %q: the index itself", got, want)
		}
		desc, err := remote.Get(ref)
		if err != nil {
			t.Fatal(err)
		}
		if desc.MediaType != types.OCIImageIndex || desc.Digest != indexDigest {
			t.Fatalf("the registry holds a %s %s at %s, want the index %s", desc.MediaType, desc.Digest, pushed, indexDigest)
		}
		// What a node of each architecture pulls.
		for _, arch := range defaultArchs {
			img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
			if err != nil {
				t.Fatalf("pull linux/%s: %v", arch, err)
			}
			got, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := images[arch].Digest(); got != want {
				t.Errorf("a linux/%s node pulls %s, want %s", arch, got, want)
			}
		}
	})
}

func configDigest(img v1.Image) (v1.Hash, error) { return img.ConfigName() }

func layerDigest(img v1.Image) (v1.Hash, error) {
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		return v1.Hash{}, errors.Join(err, errors.New("not one layer"))
	}
	return layers[0].Digest()
}

// checkImage checks img's config (user, entrypoint, labels, platform arch)
// and its one layer, /manager: static, an ELF binary for arch. It returns
// the manager, taken out of the image.
func checkImage(t *testing.T, img v1.Image, arch string) string {
	t.Helper()
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
	if cfg.OS != "linux" || cfg.Architecture != arch || cfg.Variant != "" {
		t.Errorf("config's platform %s/%s (variant %q), want linux/%s as its index entry says", cfg.OS, cfg.Architecture, cfg.Variant, arch)
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
	manager := filepath.Join(t.TempDir(), "manager")
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

	bin, err := elf.Open(manager)
	if err != nil {
		t.Fatalf("/manager is not an ELF binary: %v", err)
	}
	defer bin.Close()
	if bin.Class != elf.ELFCLASS64 || bin.Machine != elfMachines[arch] || bin.Type != elf.ET_EXEC {
		t.Errorf("/manager is a %s %s %s, want an ELFCLASS64 %s ET_EXEC for linux/%s", bin.Class, bin.Machine, bin.Type, elfMachines[arch], arch)
	}
	// Static: no dynamic loader to find on an empty base.
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("/manager is dynamically linked (program header %s)", p.Type)
		}
	}
	return manager
}

// checkRuns runs the manager (of this machine's architecture) with --help.
func checkRuns(t *testing.T, manager string) {
	t.Helper()
	out, err := exec.Command(manager, "--help").CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 2) { // the flag package exits 2 after --help
		t.Fatalf("/manager --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-metrics-bind-address", "-leader-elect", "-namespaces"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("/manager --help does not list %s:\n%s", flag, out)
		}
	}
}

// TestRunRefuses: a reference without a tag (it would be :latest) and a
// tarball architecture the index lacks are refused before any build.
func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, tag, arch, want string
	}{
		{"no tag", "registry.example.com:5000/tokensync", "amd64", "names no tag"},
		{"tarball of another architecture", "tokensync:v1", "s390x", "--arch s390x is not one of --archs amd64,arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := buildOptions{spec: imageSpec{source: filepath.Join(dir, "no-source")}, archs: defaultArchs,
				layoutDir: filepath.Join(dir, "layout"), tarball: filepath.Join(dir, "image.tar"), tarballArch: tc.arch, tag: tc.tag}
			err := run(opts, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error with %q", err, tc.want)
			}
			if _, err := os.Stat(opts.layoutDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused run wrote %s (%v)", opts.layoutDir, err)
			}
		})
	}
}

// TestWriteLayout: a second build replaces the layout, leaving no blob of
// the first; a directory that is not a layout is never replaced.
func TestWriteLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokensync-image")
	blobs := func() []string {
		entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	var counts []int
	var last v1.ImageIndex
	for range 2 {
		index, err := random.Index(64, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeLayout(dir, index, "v1"); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, len(blobs()))
		last = index
	}
	// One index, two manifests, two configs, two layers.
	if counts[0] != 7 || counts[1] != 7 {
		t.Errorf("blobs after each build: %v, want 7 and 7 (the first build's gone)", counts)
	}
	l, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := last.Digest(); len(m.Manifests) != 1 || m.Manifests[0].Digest != want {
		t.Errorf("index.json lists %+v, want only the last build's index %s", m.Manifests, want)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the layout's directory: %v, %v; want mode 755", fi, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".tokensync-image-*")); len(leftovers) != 0 {
		t.Errorf("temporary layouts left behind: %v", leftovers)
	}

	other := filepath.Join(t.TempDir(), "notes")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "todo.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeLayout(other, last, "v1"); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("writeLayout over a directory of notes: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(other, "todo.txt")); err != nil {
		t.Errorf("the directory's file is gone: %v", err)
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
