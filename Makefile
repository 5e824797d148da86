# tokensync — make help lists the targets.

# Pinned tool versions.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUBE_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.6.16

# The operator's version, stamped in by make image: the chart's appVersion.
VERSION ?= $(shell awk -F'"' '/^appVersion:/ {print $$2}' charts/tokensync/Chart.yaml)
# The image to build (make image) or deploy (make deploy): yours, in your
# registry (no public image is published), e.g. registry.example.com/tokensync.
# When IMG names no tag, IMAGE_TAG is its tag: the version, the commit, and
# -dirty for a tree with changes to tracked files or new files git does not
# ignore (go build takes those too). So each build has a tag of its own: a
# node holding an older image under the same tag would keep running it
# (pullPolicy IfNotPresent).
IMG ?= tokensync
GIT_COMMIT = $(shell git rev-parse --short HEAD 2>/dev/null)
GIT_DIRTY = $(shell test -z "$$(git --no-optional-locks status --porcelain 2>/dev/null)" || echo -dirty)
IMAGE_TAG ?= $(VERSION)$(if $(GIT_COMMIT),-$(GIT_COMMIT)$(GIT_DIRTY))
# IMG with its tag: a colon in its last path element is a tag (one in the
# first is the registry's port).
IMAGE = $(if $(findstring :,$(lastword $(subst /, ,$(IMG)))),$(IMG),$(IMG):$(IMAGE_TAG))
# make image's outputs: the multi-architecture OCI image layout, and the
# image of one architecture (ARCH, this machine's) as a tarball.
IMAGE_LAYOUT ?= bin/tokensync-image
IMAGE_TAR ?= bin/tokensync-image.tar
ARCH ?= $(shell go env GOARCH)
LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GO_TEST_FLAGS ?= -race -count=1 -timeout 25m -parallel 6
# The bench module's tests: the tiny bench (exact counts, never timings)
# drives a manager built without -race, so the harness runs without it too.
BENCH_TEST_FLAGS ?= -count=1 -timeout 10m
# The chart's and the image's tests (hack/chart, hack/image) likewise run a
# manager binary built without -race; the race detector would only slow
# compiling Helm and Prometheus's parser.
RELEASE_TEST_FLAGS ?= -count=1 -timeout 15m
# The image's tests build the manager for linux/amd64 and linux/arm64: with a
# cold build cache, the arm64 cross-compile alone takes about 10 minutes of
# CPU (docs/performance.md, The image build), longer beside the other tests.
IMAGE_TEST_FLAGS ?= -count=1 -timeout 30m
FUZZTIME ?= 75s
BENCH_SCALE ?= default

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate-providers
generate-providers: ## Generate from providers/builtin the API's provider enum and rules, and the list of the providers' fakes.
	go run ./hack/providergen

.PHONY: manifests
manifests: generate-providers $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests under config/, and copy them (with the alerts and dashboard) into the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases
	hack/sync-chart.sh

.PHONY: generate
generate: generate-providers $(CONTROLLER_GEN) ## Generate the deepcopy code under api/.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

# What make manifests generate writes: file names and contents are compared.
GENERATED := config/crd/bases config/rbac/role.yaml api/v1alpha1/zz_generated.deepcopy.go charts/tokensync/files api/v1alpha1/zz_generated.providers.go providers/providertest/zz_generated.fakes.go

.PHONY: verify-generated
verify-generated: ## Fail if the committed CRDs, RBAC, deepcopy code or the chart's copies of them are stale.
	@snapshot() { find $(GENERATED) -type f 2>/dev/null | LC_ALL=C sort | xargs sha256sum; }; \
	before=$$(snapshot); \
	$(MAKE) --no-print-directory manifests generate >/dev/null; \
	after=$$(snapshot); \
	if [ "$$before" != "$$after" ]; then \
	  echo "generated files were stale and have been regenerated: commit config/crd, config/rbac, api/, providers/providertest/ and charts/tokensync (make manifests generate)"; \
	  diff <(echo "$$before") <(echo "$$after") || true; exit 1; \
	fi; echo "generated files are up to date"

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $$(git ls-files '*.go')

# Every go command that does not build with -race builds as the image does
# (CGO_ENABLED=0, -trimpath): vet, the tests of the modules of our own, the
# demo, and the manager builds of check-dockerfile, the chart's, the bench's
# and the image's tests then share one build of each package in the cache.
# Mixed, a cold CI run compiled the manager's 864 packages once more (about
# 3 minutes on 2 cores). GOFLAGS carries -trimpath to the go commands the
# tests run themselves (go build, go tool crane).
STATIC_GO = CGO_ENABLED=0 GOFLAGS="-trimpath $(GOFLAGS)" go

.PHONY: vet
vet: ## Run go vet on the product and on the modules of its own (hack/bench, hack/chart, hack/gitops, hack/image, providers/oauth2/interop, cmd/kubectl-tokensync).
	$(STATIC_GO) vet ./...
	$(STATIC_GO) -C cmd/kubectl-tokensync vet ./...
	$(STATIC_GO) -C hack/bench vet ./...
	$(STATIC_GO) -C hack/chart vet ./...
	$(STATIC_GO) -C hack/gitops vet ./...
	$(STATIC_GO) -C hack/image vet ./...
	$(STATIC_GO) -C providers/oauth2/interop vet ./...

.PHONY: envtest
envtest: ## Build the envtest control plane (kube-apiserver, etcd) into bin/k8s/ if missing.
	@KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/envtest-binaries.sh >/dev/null

ENVTEST_ASSETS = $(shell KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/envtest-binaries.sh)

.PHONY: test
test: verify-generated vet check-dockerfile envtest ## Check generated files, vet, the Dockerfile; every test with -race (unit, envtest, the OAuth2 interop module); the tiny bench; the Helm chart, alerts and dashboard (hack/chart); the image (hack/image); the one-shot demo.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@# The envtest binaries are built above, once, before both halves ask
	@# for them. The race-checked tests take the CPU; the others mostly wait (token
	@# lifetimes, windows, a control plane's answers): both run at once.
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-race test-waiting

.PHONY: test-race
test-race: ## The product's tests with -race (unit, envtest, fuzz seed corpora) and the OAuth2 interop module's.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test $(GO_TEST_FLAGS) ./...
	go -C providers/oauth2/interop test $(GO_TEST_FLAGS) ./...

.PHONY: test-waiting
test-waiting: ## The tiny bench, the chart's, the image's and the kubectl plugin's tests, and the one-shot demo.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(STATIC_GO) -C hack/bench test $(BENCH_TEST_FLAGS) ./...
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(STATIC_GO) -C cmd/kubectl-tokensync test $(RELEASE_TEST_FLAGS) ./...
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(STATIC_GO) -C hack/chart test $(RELEASE_TEST_FLAGS) ./...
	$(STATIC_GO) -C hack/image test $(IMAGE_TEST_FLAGS) ./...
	@$(MAKE) --no-print-directory demo-oneshot

# The oldest Kubernetes tokensync supports (Chart.yaml's kubeVersion, the
# README's Requirements; docs/compatibility.md says why this one).
OLDEST_KUBE_VERSION ?= 1.25.1

.PHONY: test-oldest
test-oldest: ## On the oldest supported Kubernetes (OLDEST_KUBE_VERSION, its kube-apiserver built into bin/k8s/ the first time): the one-shot demo, then the chart's tests (hack/chart). Not part of make test.
	@KUBE_VERSION=$(OLDEST_KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) DEMO_ONESHOT=1 DEMO_DIR=bin/test-oldest hack/demo.sh
	KUBEBUILDER_ASSETS="$$(KUBE_VERSION=$(OLDEST_KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/envtest-binaries.sh)" go -C hack/chart test $(RELEASE_TEST_FLAGS) ./...

.PHONY: check-dockerfile
check-dockerfile: ## Build the manager from exactly what the Dockerfile copies, with its go build (no Docker needed).
	hack/check-dockerfile.sh
	@# The check must fail, for the right reason, when a folder the build needs is not copied.
	@tmp=$$(mktemp); grep -v '^COPY api/ ' Dockerfile >$$tmp; \
	  out=$$(DOCKERFILE=$$tmp hack/check-dockerfile.sh 2>&1) && status=0 || status=$$?; rm -f $$tmp; \
	  if [ $$status -eq 0 ] || ! grep -q 'api/v1alpha1' <<<"$$out"; then \
	    echo "hack/check-dockerfile.sh did not fail on the missing api/ of a Dockerfile without COPY api/ api/:"; echo "$$out"; exit 1; fi; \
	  echo "check-dockerfile: and it fails without COPY api/ api/, as it should"

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 75s; 12 targets make 15 minutes).
	hack/fuzz.sh $(FUZZTIME)

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/manager.
	CGO_ENABLED=0 go build -trimpath -o bin/manager .

# The kubectl plugin (cmd/kubectl-tokensync, a module of its own), stamped
# with the operator's version.
PLUGIN_LDFLAGS = -s -w -X main.version=$(VERSION)

.PHONY: plugin
plugin: ## Build the kubectl plugin for this machine into bin/kubectl-tokensync (on the PATH, kubectl tokensync runs it).
	CGO_ENABLED=0 go -C cmd/kubectl-tokensync build -trimpath -ldflags '$(PLUGIN_LDFLAGS)' -o $(LOCALBIN)/kubectl-tokensync .

.PHONY: plugin-all
plugin-all: ## Build the kubectl plugin for every platform of its krew manifest into bin/plugin/: an archive each, and the manifest filled in.
	go -C cmd/kubectl-tokensync run ./release --version $(VERSION) --out $(LOCALBIN)/plugin --ldflags '$(PLUGIN_LDFLAGS)'

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig (install the CRDs first: make install).
	go run . --metrics-bind-address=127.0.0.1:8080 --metrics-secure=false --health-probe-bind-address=127.0.0.1:8081

.PHONY: image
image: ## Build the image without Docker for linux/amd64 and linux/arm64 into bin/tokensync-image/, an OCI layout (crane push it), and this machine's alone into bin/tokensync-image.tar (docker load, kind load image-archive); tagged IMG, or IMG:<appVersion>-<commit>[-dirty]. Prints the helm --set to install it.
	go -C hack/image run . --layout $(abspath $(IMAGE_LAYOUT)) --out $(abspath $(IMAGE_TAR)) --tag $(IMAGE) --version $(VERSION) --arch $(ARCH) \
	  --revision=$$(git rev-parse HEAD 2>/dev/null) --created=$$(git log -1 --format=%cI 2>/dev/null)

.PHONY: docker-build
docker-build: ## Build the container image with the Dockerfile (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

##@ Local demo and benchmarks

.PHONY: demo
demo: ## Start a local control plane, fake providers and the operator; apply samples (DEMO_ONESHOT=1 to check and exit).
	@KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) DEMO_ONESHOT=$(DEMO_ONESHOT) hack/demo.sh

.PHONY: demo-oneshot
demo-oneshot: ## Run the demo once: check that every token is issued and refreshed, then stop (part of make test).
	@KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) DEMO_ONESHOT=1 hack/demo.sh

.PHONY: bench
bench: ## Run the benchmarks (hack/bench, its own module) against the tree and print the table (BENCH_SCALE=large for the big run; BENCH_FLAGS for its flags).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go -C hack/bench run . --scale=$(BENCH_SCALE) $(BENCH_FLAGS)

##@ Deployment

KUBECTL ?= kubectl

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs, and with them every TokenRequest, ClusterTokenRequest and the Secrets they own, after listing them (asks on a terminal).
	KUBECTL="$(KUBECTL)" hack/uninstall-crds.sh

.PHONY: deploy
deploy: manifests ## Deploy the operator with image IMG (with make image's tag when it names none) into the cluster of the current kubeconfig.
	cd config/manager && $(KUBECTL) kustomize . >/dev/null
	tmp=$$(mktemp -d); cp -r config $$tmp/; \
	  img='$(IMAGE)'; case "$${img##*/}" in *:*) name="$${img%:*}" tag="$${img##*:}";; *) name="$$img" tag=latest;; esac; \
	  sed -i "s#newName: .*#newName: $$name#; s#newTag: .*#newTag: $$tag#" $$tmp/config/manager/kustomization.yaml; \
	  $(KUBECTL) apply -k $$tmp/config/default; rm -rf $$tmp

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster; the CRDs, TokenRequests, Secrets and the namespace stay (make uninstall removes the CRDs).
	$(KUBECTL) delete --ignore-not-found -k config/undeploy

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) GOFLAGS= go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
