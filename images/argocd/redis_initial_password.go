// `argocd admin redis-initial-password`, which the Redis pod's init container runs as upstream's
// does (manifests/base/redis/argocd-redis-deployment.yaml): it creates the Secret argocd-redis
// with a random password under key auth unless the Secret exists, and Redis, the controller and
// the repo server read it from there. Upstream's command (cmd/argocd/commands/admin/
// redis_initial_password.go) cannot be linked alone: its package's other commands import the API
// server. This is its logic on its names, except that a Secret with an empty password is refused
// rather than accepted (an empty password is no password).
package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/cli"
)

// Upstream's: 16 characters of 63, about 95 bits.
const (
	redisPasswordLength  = 16
	redisPasswordLetters = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"
)

func randomRedisPassword() (string, error) {
	password := make([]byte, redisPasswordLength)
	for i := range password {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(redisPasswordLetters))))
		if err != nil {
			return "", err
		}
		password[i] = redisPasswordLetters[n.Int64()]
	}
	return string(password), nil
}

// newCLICommand is `argocd`, holding the one CLI command this image runs.
func newCLICommand() *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Administrative commands (only redis-initial-password here)"}
	admin.AddCommand(newRedisInitialPasswordCommand())
	root := &cobra.Command{Use: common.CommandCLI, SilenceUsage: true}
	root.AddCommand(admin)
	return root
}

func newRedisInitialPasswordCommand() *cobra.Command {
	var clientConfig clientcmd.ClientConfig
	command := &cobra.Command{
		Use:   "redis-initial-password",
		Short: "Ensure the Redis password exists, creating a new one if necessary.",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			namespace, _, err := clientConfig.Namespace()
			if err != nil {
				return err
			}
			name, key := common.RedisInitialCredentials, common.RedisInitialCredentialsKey
			fmt.Printf("Checking for initial Redis password in secret %s/%s at key %s.\n", namespace, name, key)
			config, err := clientConfig.ClientConfig()
			if err != nil {
				return err
			}
			if err := v1alpha1.SetK8SConfigDefaults(config); err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(config)
			if err != nil {
				return err
			}
			password, err := randomRedisPassword()
			if err != nil {
				return err
			}
			secrets := client.CoreV1().Secrets(namespace)
			_, err = secrets.Create(c.Context(), &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
				Data:       map[string][]byte{key: []byte(password)},
				Type:       corev1.SecretTypeOpaque,
			}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
			secret, err := secrets.Get(c.Context(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(secret.Data[key]) == 0 {
				return errors.New("secret " + namespace + "/" + name + " has no password at key " + key)
			}
			fmt.Printf("Argo CD Redis secret state confirmed: secret name %s.\n", name)
			return nil
		},
	}
	clientConfig = cli.AddKubectlFlagsToCmd(command)
	return command
}
