// Command release builds kubectl-tokensync for every platform of its krew
// manifest (../krew.yaml), packs each into the archive the manifest names,
// and writes the manifest filled in with the version and each archive's
// SHA-256: make plugin-all. The manifest is the one list of platforms.
//
//	go -C cmd/kubectl-tokensync run ./release --version v0.1.0 --out ../../bin/plugin
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"
)

func main() {
	var version, out, manifest, ldflags string
	flag.StringVar(&version, "version", "", "The release's version (tag), e.g. v0.1.0.")
	flag.StringVar(&out, "out", "", "Directory for the archives and the manifest.")
	flag.StringVar(&manifest, "manifest", "krew.yaml", "The krew manifest template.")
	flag.StringVar(&ldflags, "ldflags", "", "go build -ldflags (make plugin-all passes the version's).")
	flag.Parse()
	if version == "" || out == "" {
		fmt.Fprintln(os.Stderr, "release: --version and --out are required")
		os.Exit(2)
	}
	if err := release(version, out, manifest, ldflags); err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(1)
	}
}

func release(version, out, manifest, ldflags string) error {
	tmpl, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	platforms, err := platformsOf(string(tmpl), version)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kubectl-tokensync-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	sums := map[string]string{}
	for _, p := range platforms {
		start := time.Now()
		bin := filepath.Join(work, p.OS+"_"+p.Arch, p.Bin)
		build := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".")
		build.Env = append(os.Environ(), "GOOS="+p.OS, "GOARCH="+p.Arch, "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build for %s/%s: %w", p.OS, p.Arch, err)
		}
		archive := filepath.Join(out, p.Archive())
		sum, err := pack(archive, bin, p.Bin)
		if err != nil {
			return err
		}
		sums[p.URI] = sum
		fmt.Printf("%s/%s: %s (%s)\n", p.OS, p.Arch, archive, time.Since(start).Round(time.Second))
	}
	filled, err := render(string(tmpl), version, func(uri string) (string, error) {
		if sum, ok := sums[uri]; ok {
			return sum, nil
		}
		return "", fmt.Errorf("no archive built for %s", uri)
	})
	if err != nil {
		return err
	}
	dest := filepath.Join(out, "tokensync.yaml")
	if err := os.WriteFile(dest, []byte(filled), 0o644); err != nil {
		return err
	}
	fmt.Printf("krew manifest: %s\n", dest)
	return nil
}

// platform is one entry of the manifest.
type platform struct {
	OS, Arch, URI, Bin string
}

// Archive is the archive's file name, the last element of its URI.
func (p platform) Archive() string { return path.Base(p.URI) }

// render fills the template in as krew-release-bot does: {{ .TagName }} is
// the version, addURIAndSha "URI" .TagName writes the uri (its own
// {{ .TagName }} replaced) and the sha256 that sha gives for it.
func render(tmpl, version string, sha func(uri string) (string, error)) (string, error) {
	t, err := template.New("krew").Funcs(template.FuncMap{
		"addURIAndSha": func(uri, tag string) (string, error) {
			uri = strings.ReplaceAll(uri, "{{ .TagName }}", tag)
			sum, err := sha(uri)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("uri: %s\n    sha256: %s", uri, sum), nil
		},
	}).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("parse the manifest template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]string{"TagName": version}); err != nil {
		return "", fmt.Errorf("fill in the manifest template: %w", err)
	}
	return b.String(), nil
}

// manifest is a krew Plugin (krew's pkg/index), every field of it, so that
// a misspelt one fails to read.
type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files,omitempty"`
		} `json:"platforms"`
	} `json:"spec"`
}

// platformsOf lists the manifest's platforms, read from the template
// filled in with version (and a placeholder for each sha256).
func platformsOf(tmpl, version string) ([]platform, error) {
	filled, err := render(tmpl, version, func(string) (string, error) { return strings.Repeat("0", 64), nil })
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := yaml.UnmarshalStrict([]byte(filled), &m); err != nil {
		return nil, fmt.Errorf("the manifest is not a krew Plugin: %w", err)
	}
	var out []platform
	for _, p := range m.Spec.Platforms {
		l := p.Selector.MatchLabels
		if l["os"] == "" || l["arch"] == "" || p.URI == "" || p.Bin == "" {
			return nil, fmt.Errorf("a platform of the manifest lacks os, arch, uri or bin: %+v", p)
		}
		out = append(out, platform{OS: l["os"], Arch: l["arch"], URI: p.URI, Bin: p.Bin})
	}
	if len(out) == 0 {
		return nil, errors.New("the manifest lists no platform")
	}
	return out, nil
}

// pack writes a .tar.gz holding the binary bin as name, and returns its
// SHA-256 in hex.
func pack(archive, bin, name string) (string, error) {
	content, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	hdr := &tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return "", err
	}
	if _, err := io.Copy(tw, bytes.NewReader(content)); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(archive, b.Bytes(), 0o644); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}
