//! The CRI v1 client: the runtime and image services of containerd over its unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Errors talking to the container runtime.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The socket could not be connected.
    #[error("connecting to the container runtime at {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// A call returned an error status.
    #[error("{0}")]
    Status(#[from] tonic::Status),
}

/// A connected CRI client; cheap to clone (one HTTP/2 connection shared by all clones).
#[derive(Clone, Debug)]
pub struct Cri {
    /// The runtime service (sandboxes, containers, exec, stats).
    pub runtime: RuntimeServiceClient<Channel>,
    /// The image service (status, pull, list, fs info).
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the CRI socket at `path` (`unix://` prefix allowed).
    pub async fn connect(path: &Path) -> Result<Cri, CriError> {
        let socket = path
            .to_str()
            .and_then(|s| s.strip_prefix("unix://"))
            .map(PathBuf::from)
            .unwrap_or_else(|| path.to_path_buf());
        let target = socket.clone();
        let channel = Endpoint::from_static("http://cri.sock")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let target = target.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(target).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|source| CriError::Connect {
                path: socket,
                source,
            })?;
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            images: ImageServiceClient::new(channel).max_decoding_message_size(64 << 20),
        })
    }

    /// The runtime's name and version (`containerd`, `1.6.20~ds1`).
    pub async fn version(&self) -> Result<api::VersionResponse, CriError> {
        let mut rt = self.runtime.clone();
        Ok(rt
            .version(api::VersionRequest {
                version: "v1".into(),
            })
            .await?
            .into_inner())
    }
}
