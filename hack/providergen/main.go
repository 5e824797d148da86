// Command providergen writes what follows from providers/builtin's list of
// providers (see internal/providergen): the API's spec.provider enum,
// documentation and admission rules, and the list of the providers' fakes.
// make manifests and make generate run it from the module's root:
//
//	go run ./hack/providergen
//
// It fails, naming what to add and where, when a registered provider lacks
// its fake, its Title, or (for a provider its TokenRequest configures) its
// settings block in the API.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokensync/tokensync/internal/providergen"
	"github.com/tokensync/tokensync/providers/builtin"
)

const module = "github.com/tokensync/tokensync"

func main() {
	root := flag.String("root", ".", "The module's root directory.")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*root); err != nil {
		log.Fatalf("providergen: %v", err)
	}
}

func run(root string) error {
	regs := builtin.Registrations()
	pkgs, err := providergen.RegistrationPackages(filepath.Join(root, providergen.BuiltinFile))
	if err != nil {
		return err
	}
	if len(pkgs) != len(regs) {
		return fmt.Errorf("%s: Registrations returns %d registrations, its list literal has %d entries", providergen.BuiltinFile, len(regs), len(pkgs))
	}
	var provs []providergen.Provider
	var missing []error
	for i, r := range regs {
		p := providergen.Provider{Registration: r, Package: pkgs[i]}
		provs = append(provs, p)
		dir, ok := strings.CutPrefix(p.FakePackage(), module+"/")
		if !ok {
			return fmt.Errorf("provider %q: package %s is outside %s", r.Name, p.Package, module)
		}
		if found, err := providergen.DeclaresFake(filepath.Join(root, dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		} else if !found {
			missing = append(missing, fmt.Errorf("provider %q has no fake: %s/ must declare var Fake = fake.Provider{...}, its test registration (docs/adding-a-provider.md)", r.Name, dir))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return err
	}
	blocks, err := providergen.SpecFields(filepath.Join(root, providergen.APIDir))
	if err != nil {
		return err
	}
	api, err := providergen.API(provs, blocks)
	if err != nil {
		return err
	}
	fakes, err := providergen.Fakes(provs)
	if err != nil {
		return err
	}
	for file, content := range map[string][]byte{providergen.APIFile: api, providergen.FakesFile: fakes} {
		path := filepath.Join(root, file)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			continue
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
		log.Printf("providergen: wrote %s", file)
	}
	return nil
}
