package localenv

import (
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeContext is the name of the context in the written kubeconfig.
const KubeContext = "flotilla-local"

// writeKubeconfig writes a self-contained admin kubeconfig (certificates
// embedded) for server.
func writeKubeconfig(path, server string, p *PKI) error {
	ca, err := os.ReadFile(p.CACert)
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	cert, err := os.ReadFile(p.AdminCert)
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	key, err := os.ReadFile(p.AdminKey)
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[KubeContext] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[KubeContext] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[KubeContext] = &clientcmdapi.Context{Cluster: KubeContext, AuthInfo: KubeContext}
	cfg.CurrentContext = KubeContext
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return os.Chmod(path, 0o600)
}
