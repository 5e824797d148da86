// Command image builds the operator's container image without Docker:
// the static manager (CGO_ENABLED=0, -trimpath, its version stamped in) in a
// single layer on an empty base, run as user 65532 with entrypoint /manager,
// labelled with its version, source and revision. It writes a tarball that
// both `crane push` and `docker load` read. The manager embeds its CA roots
// (golang.org/x/crypto/x509roots/fallback), so TLS works without a
// distribution's certificate files. make image runs it:
//
//	go -C hack/image run . --out ../../bin/tokensync-image.tar --tag tokensync:v0.1.0 --version v0.1.0
//
// It is a Go module of its own, so that go-containerregistry stays out of
// the operator's go.mod.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageSpec is what the image is built from.
type imageSpec struct {
	// source is the repository's root, where the manager is built from.
	source string
	// arch is the image's (and the manager's) architecture: GOARCH.
	arch string
	// version is stamped into the manager (main.version) and the labels.
	version string
	// revision is the commit built, sourceURL where its code is.
	revision, sourceURL string
	// created is the image's creation time; the zero time means the Unix
	// epoch, so that the same tree gives the same image.
	created time.Time
}

// The image's fixed configuration.
const (
	entrypoint = "/manager"
	user       = "65532:65532" // distroless's nonroot, no passwd file needed
)

func main() {
	var (
		spec    imageSpec
		out     string
		tag     string
		created string
	)
	flag.StringVar(&out, "out", "", "The image tarball to write (docker save format: crane push and docker load read it).")
	flag.StringVar(&tag, "tag", "tokensync:dev", "The image reference recorded in the tarball, e.g. registry.example.com/tokensync:v0.1.0.")
	flag.StringVar(&spec.source, "source", filepath.Join("..", ".."), "The repository's root, where the manager is built.")
	flag.StringVar(&spec.arch, "arch", runtime.GOARCH, "The image's architecture (GOARCH).")
	flag.StringVar(&spec.version, "version", "dev", "The version stamped into the manager and the image's labels.")
	flag.StringVar(&spec.revision, "revision", "", "The commit built (label org.opencontainers.image.revision).")
	flag.StringVar(&spec.sourceURL, "source-url", "https://github.com/tokensync/tokensync", "Where the source is (label org.opencontainers.image.source).")
	flag.StringVar(&created, "created", "", "The image's creation time, RFC 3339 (default: the Unix epoch, for reproducible images).")
	flag.Parse()
	if err := run(spec, out, tag, created); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(spec imageSpec, out, tag, created string) error {
	if out == "" {
		return fmt.Errorf("--out is required")
	}
	if created != "" {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return fmt.Errorf("--created: %w", err)
		}
		spec.created = t
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("--tag: %w", err)
	}
	dir, err := os.MkdirTemp("", "tokensync-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	img, err := buildImage(spec, dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s (%s, linux/%s, %s)\n", out, ref, spec.version, spec.arch, digest)
	return nil
}

// buildImage builds the manager into dir and makes the image of it.
func buildImage(spec imageSpec, dir string) (v1.Image, error) {
	binary := filepath.Join(dir, "manager")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+spec.version, "-o", binary, ".")
	cmd.Dir = spec.source
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+spec.arch, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build the manager: %w\n%s", err, out)
	}
	manager, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	created := spec.created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	files, err := layerTar(manager, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(files)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/image: the manager, built with CGO_ENABLED=0 go build -trimpath", Comment: "tokensync " + spec.version},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", spec.arch
	cfg.Created = v1.Time{Time: created}
	cfg.Config.User = user
	cfg.Config.Entrypoint = []string{entrypoint}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "tokensync",
		"org.opencontainers.image.description": "Keeps short-lived login tokens from third-party APIs in Kubernetes Secrets",
		"org.opencontainers.image.version":     spec.version,
		"org.opencontainers.image.source":      spec.sourceURL,
		"org.opencontainers.image.revision":    spec.revision,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	return mutate.ConfigFile(img, cfg)
}

// layerTar is the image's one layer: /manager, owned by root, executable by
// anyone, not writable by the user it runs as.
func layerTar(manager []byte, modTime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: entrypoint[1:], Mode: 0o755, Size: int64(len(manager)),
		ModTime: modTime, Format: tar.FormatPAX,
	})
	if err == nil {
		_, err = tw.Write(manager)
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("the layer: %w", err)
	}
	return buf.Bytes(), nil
}
