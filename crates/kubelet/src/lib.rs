//! The r8s node agent (kubelet): registers its node, keeps its Lease fresh and runs the pods bound
//! to it through CRI (containerd + runc + CNI).

pub mod cri;
pub mod probe;
pub mod server;
pub mod volumes;
