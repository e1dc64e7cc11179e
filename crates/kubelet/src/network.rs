//! Host networking for pods: the CNI configuration (bridge + host-local IPAM over the node's
//! `spec.podCIDR`) that containerd's CRI plugin loads, and the kernel settings pod traffic needs.

use std::net::Ipv4Addr;
use std::path::Path;

/// The name of the pod bridge on the host.
pub const BRIDGE: &str = "r8s0";
/// The CNI network name.
pub const NETWORK: &str = "r8s";
/// The CNI configuration file the agent writes.
pub const CONF_FILE: &str = "10-r8s.conflist";

/// Parses an IPv4 CIDR `a.b.c.d/n`.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 30).then_some((ip, len))
}

/// The CNI conflist for a pod CIDR: a bridge that is the pods' gateway (its first address),
/// hairpin mode (a pod reaching itself through a Service), host-local IPAM, and the loopback and
/// portmap plugins.
pub fn conflist(pod_cidr: &str, ipam_dir: &Path) -> Option<String> {
    let (net, len) = parse_cidr(pod_cidr)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let base = u32::from(net) & mask;
    let gateway = Ipv4Addr::from(base + 1);
    let subnet = format!("{}/{len}", Ipv4Addr::from(base));
    let v = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir.display().to_string(),
                    "ranges": [[{ "subnet": subnet, "gateway": gateway.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    serde_json::to_string_pretty(&v).ok()
}

/// Writes the conflist if its content changed (containerd reloads the directory by itself).
pub async fn write_conflist(
    conf_dir: &Path,
    pod_cidr: &str,
    ipam_dir: &Path,
) -> std::io::Result<bool> {
    let Some(content) = conflist(pod_cidr, ipam_dir) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid pod CIDR {pod_cidr:?}"),
        ));
    };
    let path = conf_dir.join(CONF_FILE);
    if tokio::fs::read_to_string(&path).await.ok().as_deref() == Some(content.as_str()) {
        return Ok(false);
    }
    tokio::fs::create_dir_all(conf_dir).await?;
    tokio::fs::create_dir_all(ipam_dir).await?;
    let tmp = conf_dir.join(format!(".{CONF_FILE}.tmp"));
    tokio::fs::write(&tmp, content).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(true)
}

/// The kernel settings pod networking depends on: forwarding, and bridged traffic through
/// netfilter (without it a pod cannot reach a Service backed by a pod on the same bridge).
pub async fn ensure_sysctls() {
    for (path, value) in [
        ("/proc/sys/net/ipv4/ip_forward", "1"),
        ("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"),
    ] {
        let current = tokio::fs::read_to_string(path).await.unwrap_or_default();
        if current.trim() == value {
            continue;
        }
        if let Err(e) = tokio::fs::write(path, value).await {
            tracing::warn!(path, error = %e, "cannot set a kernel setting pods need");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_uses_the_first_address_as_gateway() {
        let c = conflist("10.42.3.0/24", Path::new("/d/ipam")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&c).unwrap();
        let ipam = &v["plugins"][0]["ipam"];
        assert_eq!(ipam["ranges"][0][0]["subnet"], "10.42.3.0/24");
        assert_eq!(ipam["ranges"][0][0]["gateway"], "10.42.3.1");
        assert_eq!(ipam["dataDir"], "/d/ipam");
        assert_eq!(v["plugins"][0]["bridge"], BRIDGE);
        assert!(conflist("nonsense", Path::new("/x")).is_none());
        assert!(conflist("fd00::/64", Path::new("/x")).is_none());
    }
}
