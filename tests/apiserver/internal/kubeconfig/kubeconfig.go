// Package kubeconfig writes the kubeconfig file that points clients
// (client-go, kube-rs, kubectl) at the test server: KUBECONFIG=FILE is all a
// client needs; every credential is embedded as data, so the file does not
// depend on the server's own directory.
package kubeconfig

import (
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Name is the cluster, user and context name in the file.
const Name = "kube-persist-test"

// Auth says how the user in the file authenticates.
type Auth struct {
	// Token is a bearer token (--token-auth-file). Used when set.
	Token string
	// ClientCert and ClientKey are PEM data of a client certificate,
	// used when Token is empty.
	ClientCert, ClientKey []byte
}

// Build returns the kubeconfig for server (https://127.0.0.1:PORT) whose
// serving certificate chains to caPEM.
func Build(server string, caPEM []byte, auth Auth) (*clientcmdapi.Config, error) {
	user := clientcmdapi.NewAuthInfo()
	switch {
	case auth.Token != "":
		user.Token = auth.Token
	case len(auth.ClientCert) > 0 && len(auth.ClientKey) > 0:
		user.ClientCertificateData = auth.ClientCert
		user.ClientKeyData = auth.ClientKey
	default:
		return nil, fmt.Errorf("kubeconfig: no credentials (token or client certificate)")
	}
	cluster := clientcmdapi.NewCluster()
	cluster.Server = server
	cluster.CertificateAuthorityData = caPEM
	ctx := clientcmdapi.NewContext()
	ctx.Cluster = Name
	ctx.AuthInfo = Name
	ctx.Namespace = "default"

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[Name] = cluster
	cfg.AuthInfos[Name] = user
	cfg.Contexts[Name] = ctx
	cfg.CurrentContext = Name
	return cfg, nil
}

// Write builds the kubeconfig and writes it to path (mode 0600: it holds a
// credential), replacing the file atomically so a reader never sees half of
// it.
func Write(path, server string, caPEM []byte, auth Auth) error {
	cfg, err := Build(server, caPEM, auth)
	if err != nil {
		return err
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
