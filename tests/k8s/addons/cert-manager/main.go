// cert-manager's controller for the test cluster's certManager checks
// (tests/k8s/addons/checks.sh): our own wiring of the controller packages of
// the published module github.com/cert-manager/cert-manager. Upstream's
// `main` (cmd/controller) is a module of its own that is never tagged, so the
// module proxy cannot serve it; this program does what it does for the
// controllers the chart needs, and nothing else:
//
//   - the Certificate controllers: trigger, key-manager, request-manager,
//     issuing, readiness;
//   - the CertificateRequest approver (without it no request is ever signed:
//     upstream runs it by default) and the signers of the CA and SelfSigned
//     issuers;
//   - the Issuer and ClusterIssuer controllers, with only the CA and
//     SelfSigned issuer types registered.
//
// No leader election (one replica, a throw-away cluster), no webhook, no
// metrics or health endpoints, no ACME, Vault or Venafi: those packages are
// not imported, so neither are their dependencies. Our module path is our
// own: nothing here needs cert-manager's internal packages (the settings
// upstream takes from its internal config types are set below, with
// upstream's defaults).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The issuer types the Issuer controllers can set up: each registers
	// itself with pkg/issuer's factory when imported.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
)

// The controllers we run, by the names they register with pkg/controller.
var controllers = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	approver.ControllerName,
	crca.CRControllerName,
	crselfsigned.CRControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
}

// Upstream's defaults (internal/apis/config/controller/v1alpha1/defaults.go
// in cert-manager v1.21), which the Certificate controllers read from the
// context; importing that package would import every controller.
const (
	defaultAPIQPS        = 20
	defaultAPIBurst      = 50
	defaultWorkers       = 5
	minimumBackoff       = time.Hour
	maximumBackoff       = 32 * time.Hour
	defaultClusterNSName = "kube-system"
)

// Annotations copied from a Certificate to its CertificateRequests: all but
// those of kubectl, Flux and Argo CD, as upstream's default.
var copiedAnnotationPrefixes = []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"}

func main() {
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the controller's user (required)")
	clusterNS := fs.String("cluster-resource-namespace", defaultClusterNSName,
		"where ClusterIssuers' Secrets are read from")
	workers := fs.Int("workers", defaultWorkers, "workers per controller (1 to 50)")
	klog.InitFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	switch {
	case *kubeconfig == "":
		fmt.Fprintln(os.Stderr, "cert-manager-controller: --kubeconfig is required")
		os.Exit(2)
	case *workers < 1 || *workers > 50:
		fmt.Fprintf(os.Stderr, "cert-manager-controller: --workers %d is outside 1 to 50\n", *workers)
		os.Exit(2)
	}
	logf.InitLogs()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log)
	if err := run(ctx, *kubeconfig, *clusterNS, *workers); err != nil {
		logf.Log.Error(err, "cert-manager-controller stopped")
		klog.Flush()
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, clusterNS string, workers int) error {
	log := logf.FromContext(ctx)
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   defaultAPIQPS,
		KubernetesAPIBurst: defaultAPIBurst,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: clusterNS},
		CertificateOptions: controllerpkg.CertificateOptions{
			CopiedAnnotationPrefixes:                 copiedAnnotationPrefixes,
			CertificateRequestMinimumBackoffDuration: minimumBackoff,
			CertificateRequestMaximumBackoffDuration: maximumBackoff,
		},
	})
	if err != nil {
		return err
	}
	// The informer factories are shared by every context the factory builds;
	// this one is only for starting them once every controller has asked for
	// its informers.
	shared, err := factory.Build()
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	known := controllerpkg.Known()
	for _, name := range controllers {
		construct, ok := known[name]
		if !ok {
			return fmt.Errorf("controller %s is not registered (its package is not imported)", name)
		}
		c, err := construct(factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		g.Go(func() error { return c.Run(workers, ctx) })
	}
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	log.Info("cert-manager controllers started", "controllers", controllers)

	err = g.Wait()
	shared.KubeSharedInformerFactory.Shutdown()
	shared.SharedInformerFactory.Shutdown()
	return err
}
