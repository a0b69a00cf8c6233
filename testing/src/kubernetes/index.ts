// A real Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler) and
// a real kubelet + containerd node on this machine, built from source and cached (see
// README.md here), and Berth's processes run on the host against it.
export * from "./build.js";
export * from "./build-config.js";
export * from "./build-lock.js";
export * from "./cluster.js";
export * from "./control-plane.js";
export * from "./host-cluster.js";
