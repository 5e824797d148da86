package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func readTemplate(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestManifestPlatforms: the krew manifest offers linux and darwin on
// amd64 and arm64, and windows on amd64, each with its own archive of the
// release and the binary krew links as kubectl-tokensync.
func TestManifestPlatforms(t *testing.T) {
	platforms, err := platformsOf(readTemplate(t), "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range platforms {
		got = append(got, p.OS+"/"+p.Arch)
		wantBin := "kubectl-tokensync"
		if p.OS == "windows" {
			wantBin += ".exe"
		}
		if p.Bin != wantBin {
			t.Errorf("%s/%s: bin %q, want %q", p.OS, p.Arch, p.Bin, wantBin)
		}
		wantURI := "https://github.com/tokensync/tokensync/releases/download/v1.2.3/kubectl-tokensync_" + p.OS + "_" + p.Arch + ".tar.gz"
		if p.URI != wantURI {
			t.Errorf("%s/%s: uri %q, want %q", p.OS, p.Arch, p.URI, wantURI)
		}
	}
	want := []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("platforms %v, want %v", got, want)
	}
}

// TestRender: the manifest filled in is a krew Plugin of the version, each
// platform with the sha256 of its own archive.
func TestRender(t *testing.T) {
	filled, err := render(readTemplate(t), "v1.2.3", func(uri string) (string, error) {
		sum := sha256.Sum256([]byte(uri))
		return hex.EncodeToString(sum[:]), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.UnmarshalStrict([]byte(filled), &m); err != nil {
		t.Fatalf("%v\n%s", err, filled)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "tokensync" || m.Spec.Version != "v1.2.3" {
		t.Errorf("manifest %+v", m)
	}
	for _, p := range m.Spec.Platforms {
		sum := sha256.Sum256([]byte(p.URI))
		if p.Sha256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: sha256 %q is not its archive's", p.URI, p.Sha256)
		}
	}
	if strings.Contains(filled, "{{") {
		t.Errorf("the filled-in manifest still holds a template action:\n%s", filled)
	}
}

// TestPack: the archive holds the binary, executable, under the name the
// manifest's bin gives, and the sum returned is the archive's.
func TestPack(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "built")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "kubectl-tokensync_linux_amd64.tar.gz")
	sum, err := pack(archive, bin, "kubectl-tokensync")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(b); sum != hex.EncodeToString(want[:]) {
		t.Errorf("sum %s is not the archive's", sum)
	}
	f, _ := os.Open(archive)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(tr)
	if hdr.Name != "kubectl-tokensync" || hdr.Mode&0o111 == 0 || string(content) != "#!binary" {
		t.Errorf("archive holds %s mode %o %q", hdr.Name, hdr.Mode, content)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("the archive holds more than the binary: %v", err)
	}
}
