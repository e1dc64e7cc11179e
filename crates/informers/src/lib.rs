//! The client-go toolkit of r8s, built on kube-rs: every controller, the scheduler and the
//! simulated kubelet use it.
//!
//! - [`cache`]: shared informers. One kube-runtime [`watcher`](kube::runtime::watcher) per
//!   kind feeds an indexed in-memory cache (`Arc<K>` per object, shared by every consumer) and
//!   fans out `Added`/`Updated(old, new)`/`Deleted` events to subscribers, like client-go's
//!   `SharedIndexInformer`. kube-runtime's own shared reflector does not dispatch deletions
//!   nor old objects, which controllers need.
//! - [`workqueue`]: a de-duplicating work queue with per-item exponential back-off, like
//!   client-go's `workqueue.RateLimitingInterface`, and [`workqueue::run_workers`].
//! - [`record`]: an event recorder writing core/v1 Events (aggregated by count, like
//!   client-go's `EventRecorder`), never blocking the caller.
//! - [`labels`]: label selector matching.
//! - [`client`]: a kube-rs client over HTTP/2, one connection per process as client-go's.
//! - [`write`]: creates and status patches that decode only the name of the written object.
//! - [`leaderelection`]: leader election on a Lease, like client-go's `leaderelection`.

pub mod cache;
pub mod client;
pub mod labels;
pub mod leaderelection;
pub mod record;
pub mod stripped;
pub mod workqueue;
pub mod write;

pub use cache::{Event, Factory, Informer, Object, key_of};
pub use record::{EventType, Recorder};
pub use workqueue::WorkQueue;
