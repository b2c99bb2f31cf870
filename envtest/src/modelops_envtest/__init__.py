"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback for tests and demos."""
