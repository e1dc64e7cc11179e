//! Defaulting, as upstream `pkg/apis/*/v1/defaults.go` plus the declarative `+default`
//! markers of `k8s.io/api` and the values the API server's registry strategies and default
//! admission plugins fill in on create, so an object reads back as `kubectl get -o yaml` shows
//! it upstream.
//!
//! Every function is idempotent: values already set are kept.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ClientIPConfig, ConfigMap, Container, EndpointSubset, Endpoints, EphemeralContainer, Event,
    LimitRange, Namespace, NamespaceSpec, NamespaceStatus, Node, Pod, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceQuota, ResourceRequirements, Secret, Service, ServiceAccount,
    SessionAffinityConfig, Toleration, Volume,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Upstream `DefaultTerminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// Upstream `TerminationMessagePathDefault`.
pub const TERMINATION_MESSAGE_PATH_DEFAULT: &str = "/dev/termination-log";
/// Upstream `DefaultSchedulerName`.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// Upstream default file mode of secret/configMap/downwardAPI/projected volumes (0644).
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;
/// Upstream `DefaultClientIPServiceAffinitySeconds` (3 hours).
pub const DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS: i32 = 10800;
/// Seconds the DefaultTolerationSeconds admission plugin tolerates not-ready/unreachable.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

static NOT_READY_TOLERATION_SECONDS: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(DEFAULT_TOLERATION_SECONDS);
static UNREACHABLE_TOLERATION_SECONDS: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(DEFAULT_TOLERATION_SECONDS);

/// Sets the tolerationSeconds the DefaultTolerationSeconds admission adds (kube-apiserver's
/// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`);
/// process-wide, like the admission plugin's configuration.
pub fn set_default_toleration_seconds(not_ready: i64, unreachable: i64) {
    NOT_READY_TOLERATION_SECONDS.store(not_ready, std::sync::atomic::Ordering::Relaxed);
    UNREACHABLE_TOLERATION_SECONDS.store(unreachable, std::sync::atomic::Ordering::Relaxed);
}

fn set<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn set_str(slot: &mut Option<String>, value: &str) {
    if slot.as_deref().is_none_or(str::is_empty) {
        *slot = Some(value.to_owned());
    }
}

/// The tag of an image reference, as upstream `parsers.ParseImageName`: `latest` when there is
/// neither tag nor digest, empty when there is only a digest.
pub fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag.to_owned(),
        None if digest.is_some() => String::new(),
        None => "latest".to_owned(),
    }
}

/// The default `imagePullPolicy` for an image: `Always` for `:latest` (or no tag), else
/// `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image_tag(image) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn default_probe(p: &mut Probe) {
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        set_str(&mut h.path, "/");
        set_str(&mut h.scheme, "HTTP");
    }
    if let Some(g) = p.grpc.as_mut() {
        set(&mut g.service, String::new());
    }
}

/// Upstream `SetDefaults_Container` plus the nested defaults (ports, probes, env, resources).
pub fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy =
            Some(default_pull_policy(c.image.as_deref().unwrap_or("")).to_owned());
    }
    set_str(
        &mut c.termination_message_path,
        TERMINATION_MESSAGE_PATH_DEFAULT,
    );
    set_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
    }
    for p in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        default_probe(p);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [l.post_start.as_mut(), l.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(hg) = h.http_get.as_mut() {
                set_str(&mut hg.path, "/");
                set_str(&mut hg.scheme, "HTTP");
            }
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(fr) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_str(&mut fr.api_version, "v1");
        }
    }
    set(&mut c.resources, ResourceRequirements::default());
}

fn default_ephemeral_container(c: &mut EphemeralContainer) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy =
            Some(default_pull_policy(c.image.as_deref().unwrap_or("")).to_owned());
    }
    set_str(
        &mut c.termination_message_path,
        TERMINATION_MESSAGE_PATH_DEFAULT,
    );
    set_str(&mut c.termination_message_policy, "File");
    set(&mut c.resources, ResourceRequirements::default());
}

/// Upstream `SetDefaults_Volume` and the per-source defaults (file modes, hostPath type, token
/// expiry, image pull policy).
pub fn default_volume(v: &mut Volume) {
    let has_source = v.aws_elastic_block_store.is_some()
        || v.azure_disk.is_some()
        || v.azure_file.is_some()
        || v.cephfs.is_some()
        || v.cinder.is_some()
        || v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.fc.is_some()
        || v.flex_volume.is_some()
        || v.flocker.is_some()
        || v.gce_persistent_disk.is_some()
        || v.git_repo.is_some()
        || v.glusterfs.is_some()
        || v.host_path.is_some()
        || v.image.is_some()
        || v.iscsi.is_some()
        || v.nfs.is_some()
        || v.persistent_volume_claim.is_some()
        || v.photon_persistent_disk.is_some()
        || v.portworx_volume.is_some()
        || v.projected.is_some()
        || v.quobyte.is_some()
        || v.rbd.is_some()
        || v.scale_io.is_some()
        || v.secret.is_some()
        || v.storageos.is_some()
        || v.vsphere_volume.is_some();
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.secret.as_mut() {
        set(&mut s.default_mode, DEFAULT_VOLUME_MODE);
    }
    if let Some(c) = v.config_map.as_mut() {
        set(&mut c.default_mode, DEFAULT_VOLUME_MODE);
    }
    if let Some(d) = v.downward_api.as_mut() {
        set(&mut d.default_mode, DEFAULT_VOLUME_MODE);
        for f in d.items.iter_mut().flatten() {
            if let Some(fr) = f.field_ref.as_mut() {
                set_str(&mut fr.api_version, "v1");
            }
        }
    }
    if let Some(p) = v.projected.as_mut() {
        set(&mut p.default_mode, DEFAULT_VOLUME_MODE);
        for src in p.sources.iter_mut().flatten() {
            if let Some(t) = src.service_account_token.as_mut() {
                set(&mut t.expiration_seconds, 3600);
            }
            if let Some(d) = src.downward_api.as_mut() {
                for f in d.items.iter_mut().flatten() {
                    if let Some(fr) = f.field_ref.as_mut() {
                        set_str(&mut fr.api_version, "v1");
                    }
                }
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        set(&mut h.type_, String::new());
    }
    if let Some(i) = v.image.as_mut()
        && i.pull_policy.as_deref().is_none_or(str::is_empty)
    {
        i.pull_policy = Some(default_pull_policy(i.reference.as_deref().unwrap_or("")).to_owned());
    }
    if let Some(spec) = v
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut())
        .map(|t| &mut t.spec)
    {
        set_str(&mut spec.volume_mode, "Filesystem");
    }
}

/// Upstream `SetDefaults_PodSpec` and the nested container/volume defaults. This is what pod
/// templates get (Deployment, ReplicaSet); pods additionally get [`default_pod`]'s extras.
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_str(&mut spec.dns_policy, "ClusterFirst");
    set_str(&mut spec.restart_policy, "Always");
    set(&mut spec.security_context, PodSecurityContext::default());
    set(
        &mut spec.termination_grace_period_seconds,
        DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS,
    );
    set_str(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    // v1 conversion keeps the deprecated serviceAccount field in sync.
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
        && let Some(sa) = spec.service_account.clone().filter(|s| !s.is_empty())
    {
        spec.service_account_name = Some(sa);
    }
    if let Some(sa) = spec.service_account_name.clone().filter(|s| !s.is_empty()) {
        spec.service_account = Some(sa);
    }
    for c in spec.containers.iter_mut() {
        default_container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// Defaults a pod template (its spec as [`default_pod_spec`]).
pub fn default_pod_template_spec(t: &mut PodTemplateSpec) {
    default_pod_spec(t.spec.get_or_insert_with(Default::default));
}

fn requests_from_limits(c: &mut Container) {
    let Some(limits) = c.resources.as_ref().and_then(|r| r.limits.clone()) else {
        return;
    };
    let r = c.resources.get_or_insert_with(Default::default);
    let req = r.requests.get_or_insert_with(BTreeMap::new);
    for (k, v) in limits {
        req.entry(k).or_insert(v);
    }
}

/// Defaults a Pod: [`default_pod_spec`] and upstream `SetDefaults_Pod` (requests from limits,
/// enableServiceLinks, hostNetwork host ports). Admission's additions are [`admit_pod`].
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    for c in spec.containers.iter_mut() {
        requests_from_limits(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        requests_from_limits(c);
    }
    set(&mut spec.enable_service_links, true);
    if spec.host_network == Some(true) {
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
    default_pod_spec(spec);
}

/// What upstream's default admission plugins add to a Pod on create, after the scheme
/// defaults and after the field manager has recorded the client's fields (so these fields are
/// owned by no manager, as upstream): `serviceAccountName: default` (ServiceAccount),
/// `priority: 0` and `preemptionPolicy: PreemptLowerPriority` (Priority), and the 300 s
/// `not-ready`/`unreachable` NoExecute tolerations (DefaultTolerationSeconds).
pub fn admit_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    set_str(&mut spec.service_account_name, "default");
    if let Some(sa) = spec.service_account_name.clone() {
        spec.service_account = Some(sa);
    }
    set(&mut spec.priority, 0);
    set_str(&mut spec.preemption_policy, "PreemptLowerPriority");
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, seconds) in [
        (
            "node.kubernetes.io/not-ready",
            NOT_READY_TOLERATION_SECONDS.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "node.kubernetes.io/unreachable",
            UNREACHABLE_TOLERATION_SECONDS.load(std::sync::atomic::Ordering::Relaxed),
        ),
    ] {
        let present = tolerations.iter().any(|t| {
            (t.key.as_deref() == Some(key) || t.key.as_deref().is_none_or(str::is_empty))
                && t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some("NoExecute".to_owned()),
                toleration_seconds: Some(seconds),
                value: None,
            });
        }
    }
}

/// Defaults a Deployment (upstream `SetDefaults_Deployment`): replicas 1, RollingUpdate
/// 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600, template defaults.
pub fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(
            &mut ru.max_unavailable,
            IntOrString::String("25%".to_owned()),
        );
        set(&mut ru.max_surge, IntOrString::String("25%".to_owned()));
    }
    set(&mut spec.revision_history_limit, 10);
    set(&mut spec.progress_deadline_seconds, 600);
    default_pod_template_spec(&mut spec.template);
}

/// Defaults a ReplicaSet (upstream `SetDefaults_ReplicaSet`): replicas 1, template defaults.
pub fn default_replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    if let Some(t) = spec.template.as_mut() {
        default_pod_template_spec(t);
    }
}

/// Defaults a Service (upstream `SetDefaults_Service` plus what the service registry fills in
/// on create: `clusterIPs` from `clusterIP`, `ipFamilyPolicy` and `ipFamilies` for a
/// single-stack IPv4 cluster). ClusterIP allocation itself is the API server's.
pub fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    set_str(&mut spec.session_affinity, "None");
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let missing = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_none();
            if missing {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS),
                    }),
                });
            }
        }
        _ => {}
    }
    set_str(&mut spec.type_, "ClusterIP");
    for p in spec.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
        let unset = match &p.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    let t = spec.type_.clone().unwrap_or_default();
    let externally_accessible = t == "LoadBalancer"
        || t == "NodePort"
        || (t == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|v| !v.is_empty()));
    if externally_accessible {
        set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    if matches!(t.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set_str(&mut spec.internal_traffic_policy, "Cluster");
    }
    if t == "LoadBalancer" {
        set(&mut spec.allocate_load_balancer_node_ports, true);
    }
    if t != "ExternalName" {
        if let Some(ip) = spec.cluster_ip.clone().filter(|s| !s.is_empty())
            && spec.cluster_ips.as_ref().is_none_or(Vec::is_empty)
        {
            spec.cluster_ips = Some(vec![ip]);
        }
        let headless = spec.cluster_ip.as_deref() == Some("None");
        let selectorless = spec.selector.as_ref().is_none_or(BTreeMap::is_empty);
        if headless && selectorless {
            set_str(&mut spec.ip_family_policy, "RequireDualStack");
        } else {
            set_str(&mut spec.ip_family_policy, "SingleStack");
        }
        if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
            let fam = match spec.cluster_ip.as_deref() {
                Some(ip) if ip.contains(':') => "IPv6",
                _ => "IPv4",
            };
            spec.ip_families = Some(vec![fam.to_owned()]);
        }
    }
}

/// Defaults a Secret (upstream `SetDefaults_Secret`): type Opaque.
pub fn default_secret(secret: &mut Secret) {
    set_str(&mut secret.type_, "Opaque");
}

/// Defaults a Namespace: the `kubernetes.io/metadata.name` label (upstream
/// `SetDefaults_Namespace`), the `kubernetes` finalizer (namespace strategy
/// `PrepareForCreate`) and status phase Active.
pub fn default_namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".to_owned(), name);
    }
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == "kubernetes") {
        finalizers.push("kubernetes".to_owned());
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set_str(&mut status.phase, "Active");
}

/// Defaults a ConfigMap. Upstream only turns a nil `data` into an empty map, which does not
/// show on the wire, so nothing changes here.
pub fn default_config_map(_cm: &mut ConfigMap) {}

/// Defaults a Node (upstream `SetDefaults_NodeStatus`): allocatable = capacity when unset.
pub fn default_node(node: &mut Node) {
    if let Some(st) = node.status.as_mut()
        && st.allocatable.is_none()
        && let Some(cap) = st.capacity.clone()
    {
        st.allocatable = Some(cap);
    }
}

/// Defaults a core/v1 Event. Upstream has no defaults for it.
pub fn default_event(_e: &mut Event) {}

/// Defaults a LimitRange (upstream `SetDefaults_LimitRangeItem`): for `Container` items,
/// default ← max, defaultRequest ← default, defaultRequest ← min.
pub fn default_limit_range(lr: &mut LimitRange) {
    for item in lr.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
        if item.type_ != "Container" {
            continue;
        }
        let default = item.default.get_or_insert_with(BTreeMap::new);
        for (k, v) in item.max.iter().flatten() {
            default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let default = default.clone();
        let default_request = item.default_request.get_or_insert_with(BTreeMap::new);
        for (k, v) in &default {
            default_request
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        for (k, v) in item.min.iter().flatten() {
            default_request
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
}

/// Defaults a ResourceQuota. Upstream has no defaults (status is the controller's).
pub fn default_resource_quota(_rq: &mut ResourceQuota) {}

/// Defaults Endpoints (upstream `SetDefaults_Endpoints`): port protocol TCP.
pub fn default_endpoints(ep: &mut Endpoints) {
    for ss in ep.subsets.iter_mut().flatten() {
        default_endpoint_subset(ss);
    }
}

fn default_endpoint_subset(ss: &mut EndpointSubset) {
    for p in ss.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
    }
}

/// Defaults an EndpointSlice (upstream discovery `SetDefaults_EndpointPort`): port name `""`
/// and protocol TCP.
pub fn default_endpoint_slice(es: &mut EndpointSlice) {
    for p in es.ports.iter_mut().flatten() {
        set(&mut p.name, String::new());
        set_str(&mut p.protocol, "TCP");
    }
}

/// Defaults a Lease. Upstream has no defaults.
pub fn default_lease(_l: &mut Lease) {}

/// Defaults an events.k8s.io/v1 Event. Upstream has no defaults.
pub fn default_events_event(_e: &mut k8s_openapi::api::events::v1::Event) {}

/// Defaults a ServiceAccount. Upstream has no defaults.
pub fn default_service_account(_sa: &mut ServiceAccount) {}

/// Defaults a Scale (declarative `spec.replicas` default 0 is the zero value).
pub fn default_scale(_s: &mut Scale) {}

#[cfg(test)]
mod tests;
