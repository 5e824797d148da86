// Command image builds the operator's container image without Docker, for
// linux/amd64 and linux/arm64: for each, the static manager (CGO_ENABLED=0,
// -trimpath, its version stamped in, cross-compiled) in a single layer on an
// empty base, run as user 65532 with entrypoint /manager, labelled with its
// version, source and revision. The manager embeds its CA roots
// (golang.org/x/crypto/x509roots/fallback), so TLS works without a
// distribution's certificate files.
//
// It writes two things:
//   - an OCI image layout (a directory) whose index.json holds one OCI image
//     index, with each architecture's image and its platform in the index's
//     descriptors, as ko does: `crane push <dir> <ref>` pushes it as a
//     multi-architecture image, and each node pulls its own;
//   - the image of one architecture (the host's by default) as a tarball,
//     for `docker load` and `kind load image-archive`, which take one image.
//
// make image runs it:
//
//	go -C hack/image run . --layout ../../bin/tokensync-image --out ../../bin/tokensync-image.tar \
//	  --tag tokensync:v0.1.0-0123abc --version v0.1.0
//
// It is a Go module of its own, so that go-containerregistry stays out of
// the operator's go.mod.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// imageSpec is what an image is built from.
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

// buildOptions is what one run writes, and from what.
type buildOptions struct {
	// spec is every image's; its arch is set per architecture.
	spec imageSpec
	// archs are the index's architectures, all linux, in this order.
	archs []string
	// layoutDir is the OCI image layout to write (replaced if it exists).
	layoutDir string
	// tarball is the docker save tarball to write, of tarballArch's image.
	tarball, tarballArch string
	// tag is the image's reference, with its tag: the tarball's and the
	// layout's (org.opencontainers.image.ref.name), and what to push.
	tag string
	// created is --created, RFC 3339; empty for the Unix epoch.
	created string
}

// The image's fixed configuration.
const (
	entrypoint = "/manager"
	user       = "65532:65532" // distroless's nonroot, no passwd file needed
)

// refNameAnnotation names the index in the layout's index.json, by its tag
// (the OCI image layout's convention, which skopeo's oci:<dir>:<tag> reads).
const refNameAnnotation = "org.opencontainers.image.ref.name"

// defaultArchs are the architectures make image builds: those of the
// Kubernetes nodes one meets.
var defaultArchs = []string{"amd64", "arm64"}

func main() {
	opts := buildOptions{}
	var archs string
	flag.StringVar(&opts.layoutDir, "layout", "", "The OCI image layout (a directory) to write the multi-architecture image index into; crane push <dir> <ref> pushes it. Replaced if it holds one already.")
	flag.StringVar(&opts.tarball, "out", "", "The tarball of one architecture's image to write (docker save format: docker load, kind load image-archive and crane push read it).")
	flag.StringVar(&opts.tarballArch, "arch", runtime.GOARCH, "The tarball's architecture (GOARCH), one of --archs.")
	flag.StringVar(&archs, "archs", strings.Join(defaultArchs, ","), "The image index's architectures (GOARCH, linux), comma-separated.")
	flag.StringVar(&opts.tag, "tag", "tokensync:dev", "The image reference with its tag, e.g. registry.example.com/tokensync:v0.1.0-0123abc.")
	flag.StringVar(&opts.spec.source, "source", filepath.Join("..", ".."), "The repository's root, where the manager is built.")
	flag.StringVar(&opts.spec.version, "version", "dev", "The version stamped into the manager and the image's labels.")
	flag.StringVar(&opts.spec.revision, "revision", "", "The commit built (label org.opencontainers.image.revision).")
	flag.StringVar(&opts.spec.sourceURL, "source-url", "https://github.com/tokensync/tokensync", "Where the source is (label org.opencontainers.image.source).")
	flag.StringVar(&opts.created, "created", "", "The images' creation time, RFC 3339 (default: the Unix epoch, for reproducible images).")
	flag.Parse()
	opts.archs = strings.Split(archs, ",")
	if err := run(opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(opts buildOptions, stdout io.Writer) error {
	if opts.layoutDir == "" || opts.tarball == "" {
		return fmt.Errorf("--layout and --out are required")
	}
	if len(opts.archs) == 0 || slices.Contains(opts.archs, "") {
		return fmt.Errorf("--archs %q: no architecture, or an empty one", strings.Join(opts.archs, ","))
	}
	if !slices.Contains(opts.archs, opts.tarballArch) {
		return fmt.Errorf("--arch %s is not one of --archs %s", opts.tarballArch, strings.Join(opts.archs, ","))
	}
	if opts.created != "" {
		t, err := time.Parse(time.RFC3339, opts.created)
		if err != nil {
			return fmt.Errorf("--created: %w", err)
		}
		opts.spec.created = t
	}
	ref, err := name.NewTag(opts.tag)
	if err != nil {
		return fmt.Errorf("--tag: %w", err)
	}
	// A reference without a tag is refused rather than read as :latest,
	// the tag that tells nodes nothing about what they run.
	if !strings.HasSuffix(opts.tag, ":"+ref.TagStr()) {
		return fmt.Errorf("--tag %q names no tag (repository:tag)", opts.tag)
	}
	dir, err := os.MkdirTemp("", "tokensync-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	images := make(map[string]v1.Image, len(opts.archs))
	var addenda []mutate.IndexAddendum
	for _, arch := range opts.archs {
		spec := opts.spec
		spec.arch = arch
		img, err := buildImage(spec, filepath.Join(dir, arch))
		if err != nil {
			return fmt.Errorf("linux/%s: %w", arch, err)
		}
		images[arch] = img
		addenda = append(addenda, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	index := mutate.AppendManifests(empty.Index, addenda...)
	if err := writeLayout(opts.layoutDir, index, ref.TagStr()); err != nil {
		return fmt.Errorf("write %s: %w", opts.layoutDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(opts.tarball), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(opts.tarball, ref, images[opts.tarballArch]); err != nil {
		return fmt.Errorf("write %s: %w", opts.tarball, err)
	}

	indexDigest, err := index.Digest()
	if err != nil {
		return err
	}
	imageDigest, err := images[opts.tarballArch].Digest()
	if err != nil {
		return err
	}
	platforms := make([]string, len(opts.archs))
	for i, arch := range opts.archs {
		platforms[i] = "linux/" + arch
	}
	// The repository as written (ref.Context() would spell out Docker Hub's
	// index.docker.io/library/ for a bare name like tokensync).
	repository := strings.TrimSuffix(opts.tag, ":"+ref.TagStr())
	fmt.Fprintf(stdout, "wrote %s: the image index of %s for %s (%s, %s)\n", opts.layoutDir, ref, strings.Join(platforms, ", "), opts.spec.version, indexDigest)
	fmt.Fprintf(stdout, "wrote %s: its linux/%s image alone, for docker load and kind load image-archive (%s)\n", opts.tarball, opts.tarballArch, imageDigest)
	fmt.Fprintf(stdout, "push it:    crane push %s %s\n", opts.layoutDir, ref)
	fmt.Fprintf(stdout, "install it: helm install (or upgrade) ... --set image.repository=%s --set image.tag=%s\n", repository, ref.TagStr())
	return nil
}

// writeLayout writes index as the one entry of the OCI image layout dir's
// index.json, named by tag. crane push <dir> <ref> reads a layout whose
// index.json has one entry, an image index, and pushes that index with its
// images (a layout listing the images themselves would need --index).
// A layout already at dir is replaced, not added to: its blobs would pile
// up with every build. Anything else at dir is left alone and refused.
func writeLayout(dir string, index v1.ImageIndex, tag string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("%s exists and is not an OCI image layout: not replacing it", dir)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	// Written beside it, then moved into place: an interrupted build leaves
	// the previous layout whole.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(index, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp's 0700 otherwise
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// buildImage builds the manager for spec.arch into dir and makes the image
// of it, with OCI media types like the index that lists it.
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
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
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
