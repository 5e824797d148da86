// Command controlplane runs a local Kubernetes control plane for make demo:
// the envtest kube-apiserver and etcd (built into bin/k8s/ by
// hack/envtest-binaries.sh) on free loopback ports. Once the API server
// answers, it writes an admin kubeconfig; on SIGINT or SIGTERM it stops both
// and deletes their temporary directories and the kubeconfig. Their output
// goes to the files --apiserver-log and --etcd-log name, so that this
// command's own log stays short.
//
// envtest rather than a hand-started kube-apiserver: it already knows the
// flags, certificates, service-account keys and free ports the API server
// needs, and the tests use the same code path.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// contextName names the cluster, user and context in the kubeconfig.
const contextName = "tokensync-demo"

func main() {
	var (
		kubeconfig   = flag.String("kubeconfig-out", "", "Where to write the admin kubeconfig (required).")
		assets       = flag.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "Directory holding kube-apiserver and etcd (default $KUBEBUILDER_ASSETS).")
		namespace    = flag.String("namespace", "", "Default namespace of the kubeconfig's context.")
		startTimeout = flag.Duration("start-timeout", 90*time.Second, "How long etcd and kube-apiserver may each take to start.")
		apiserverLog = flag.String("apiserver-log", "", "File for kube-apiserver's output (default: this command's stderr).")
		etcdLog      = flag.String("etcd-log", "", "File for etcd's output (default: this command's stderr).")
	)
	flag.Parse()
	log.SetFlags(log.Ldate | log.Ltime | log.Lmicroseconds)
	logf.SetLogger(zap.New())
	if *kubeconfig == "" || *assets == "" {
		log.Fatal("controlplane: --kubeconfig-out and --assets (or KUBEBUILDER_ASSETS) are required")
	}
	apiserverOut, err := outputFile(*apiserverLog)
	if err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	etcdOut, err := outputFile(*etcdLog)
	if err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    *assets,
		ControlPlaneStartTimeout: *startTimeout,
		ControlPlaneStopTimeout:  20 * time.Second,
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{Out: apiserverOut, Err: apiserverOut},
			Etcd:      &envtest.Etcd{Out: etcdOut, Err: etcdOut},
		},
	}
	if err := run(env, *kubeconfig, *namespace); err != nil {
		log.Fatalf("controlplane: %v", err)
	}
}

// outputFile opens path for a process's output; "" means stderr.
func outputFile(path string) (*os.File, error) {
	if path == "" {
		return os.Stderr, nil
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}

func run(env *envtest.Environment, kubeconfig, namespace string) error {
	// Caught from the start, so that a signal during start-up still stops
	// whatever has started.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		log.Printf("received %v", <-signals)
		cancel()
	}()

	log.Printf("starting etcd and kube-apiserver from %s", env.BinaryAssetsDirectory)
	if _, err := env.Start(); err != nil {
		_ = env.Stop()
		return fmt.Errorf("start: %w", err)
	}
	defer func() {
		log.Printf("stopping kube-apiserver and etcd")
		if err := env.Stop(); err != nil {
			log.Printf("stop: %v", err)
		}
		_ = os.Remove(kubeconfig)
		log.Printf("stopped")
	}()
	if ctx.Err() != nil {
		return nil
	}

	content, err := renamedKubeconfig(env.KubeConfig, namespace)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(kubeconfig, content); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	log.Printf("kube-apiserver ready at %s; kubeconfig written to %s", env.Config.Host, kubeconfig)

	<-ctx.Done()
	return nil
}

// renamedKubeconfig names envtest's cluster, user and context after the
// demo, so that the kubeconfig says what it is for when merged with others.
func renamedKubeconfig(content []byte, namespace string) ([]byte, error) {
	cfg, err := clientcmd.Load(content)
	if err != nil {
		return nil, fmt.Errorf("read envtest kubeconfig: %w", err)
	}
	kctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, fmt.Errorf("envtest kubeconfig has no context %q", cfg.CurrentContext)
	}
	cluster, user := cfg.Clusters[kctx.Cluster], cfg.AuthInfos[kctx.AuthInfo]
	if cluster == nil || user == nil {
		return nil, fmt.Errorf("envtest kubeconfig context %q lacks its cluster or user", cfg.CurrentContext)
	}
	kctx.Cluster, kctx.AuthInfo, kctx.Namespace = contextName, contextName, namespace
	cfg.Clusters = map[string]*clientcmdapi.Cluster{contextName: cluster}
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{contextName: user}
	cfg.Contexts = map[string]*clientcmdapi.Context{contextName: kctx}
	cfg.CurrentContext = contextName
	return clientcmd.Write(*cfg)
}

// writeFileAtomic writes content, readable by its owner only (it holds a
// client key), so that a reader never sees half of it.
func writeFileAtomic(path string, content []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
