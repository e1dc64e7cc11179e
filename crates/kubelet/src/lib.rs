//! The r8s node agent (kubelet): registers its node, keeps its Lease fresh and runs the pods bound
//! to it through CRI (containerd + runc + CNI).
//!
//! [`run`] wires the parts: the supervised containerd ([`containerd`]), the node's registration,
//! status and Lease ([`node`]), the pod CIDR's CNI config ([`network`]), one worker per pod
//! ([`pods`]) woken by pod events, runtime relists ([`pleg`]) and probes ([`probe`]), volumes
//! ([`volumes`]) and the streaming server the API server proxies logs, exec and port-forward to
//! ([`server`]).

pub mod cgroups;
pub mod containerd;
pub mod cri;
pub mod network;
pub mod node;
pub mod probe;
pub mod server;
pub mod volumes;
