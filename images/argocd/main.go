// The Argo CD this project runs in its tests and its demo: upstream's single binary trimmed to the
// application controller, the repo server, the git askpass helper and, of the CLI, only
// `argocd admin redis-initial-password` (redis_initial_password.go), dispatched on argv[0] or
// ARGOCD_BINARY_NAME as upstream's cmd/main.go does. No API server, UI or rest of the CLI:
// nothing here needs them, and leaving them out saves a third of the binary and of the build.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	gitaskpass "github.com/argoproj/argo-cd/v3/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	// Unlike upstream, no grpc.DisableSRVLookups(): it panics unless grpclb is linked, and only
	// the API server and the CLI link it, so SRV lookups are already off here.
	binaryName := filepath.Base(os.Args[0])
	if name := os.Getenv("ARGOCD_BINARY_NAME"); name != "" {
		binaryName = name
	}
	var command *cobra.Command
	switch binaryName {
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	case common.CommandGitAskPass:
		command = gitaskpass.NewCommand()
	case common.CommandCLI:
		command = newCLICommand()
	default:
		fmt.Fprintf(os.Stderr, "unsupported binary name %q: set ARGOCD_BINARY_NAME to %s, %s, %s or %s\n",
			binaryName, common.CommandApplicationController, common.CommandRepoServer, common.CommandGitAskPass,
			common.CommandCLI)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
