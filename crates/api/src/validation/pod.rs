//! Pod, PodSpec, PodTemplateSpec and Binding validation (upstream
//! `pkg/apis/core/validation/validation.go`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Binding, Container, ContainerPort, EnvFromSource, EnvVar, Lifecycle, LifecycleHandler, Pod,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecurityContext, Toleration, Volume,
    VolumeDevice, VolumeMount,
};

use super::common::{
    core_object_meta, core_object_meta_update, is_overcommit_allowed, is_valid_ip, s,
    validate_container_resource_name, validate_dns1123_label, validate_dns1123_subdomain,
    validate_label_map, validate_name, validate_port_num_or_name, validate_qualified_name,
    validate_resource_quantity_value, validate_taint_effect,
};
use super::names::{
    inclusive_range_error, is_config_map_key, is_relaxed_env_var_name, is_valid_label_value,
    is_valid_port_name, is_valid_port_num,
};
use super::objectmeta::{
    LabelSelectorValidationOptions, NameValidator, validate_annotations, validate_label_name,
    validate_label_selector, validate_labels, validate_nonnegative_field,
};
use crate::field::{self, BadValue, ErrorList, Path};
use crate::quantity::parse_quantity;

const FILE_MODE_ERROR_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MAX_INT32: i64 = i32::MAX as i64;

/// Upstream's list of the fields a pod update may change, joined into its message.
pub const UPDATABLE_POD_SPEC_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// Validates a Pod on create (upstream `ValidatePodCreate`).
pub fn validate_pod(pod: &Pod) -> ErrorList {
    let mut errs = validate_pod_metadata_and_spec(pod);
    let spec = pod.spec.as_ref();
    if let Some(spec) = spec {
        let sp = Path::new("spec");
        // Ephemeral containers may only be added through the subresource.
        if spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        {
            errs.push(field::forbidden(
                &sp.child("ephemeralContainers"),
                "cannot be set on create",
            ));
        }
        if !s(&spec.node_name).is_empty()
            && spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty())
        {
            errs.push(field::forbidden(
                &sp.child("nodeName"),
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
    }
    errs
}

fn validate_pod_metadata_and_spec(pod: &Pod) -> ErrorList {
    let meta_path = Path::new("metadata");
    let spec_path = Path::new("spec");
    let mut errs = core_object_meta(&pod.metadata, true, NameValidator::Dns1123Subdomain);
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    errs.extend(validate_pod_specific_annotations(
        pod.metadata.annotations.as_ref(),
        spec,
        &meta_path.child("annotations"),
    ));
    errs.extend(validate_pod_spec(spec, &spec_path, true));
    if s(&spec.service_account_name).is_empty() {
        for (vi, v) in spec.volumes.iter().flatten().enumerate() {
            if let Some(p) = &v.projected {
                for (si, src) in p.sources.iter().flatten().enumerate() {
                    if src.service_account_token.is_some() {
                        errs.push(field::forbidden(
                            &spec_path
                                .child("volumes")
                                .index(vi)
                                .child("projected")
                                .child("sources")
                                .index(si)
                                .child("serviceAccountToken"),
                            "must not be specified when serviceAccountName is not set",
                        ));
                    }
                }
            }
        }
    }
    for (name, list) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            let image = s(&c.image);
            if image.len() != image.trim().len() {
                errs.push(field::invalid(
                    &spec_path.child(name).index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

fn validate_pod_specific_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    spec: &PodSpec,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(annotations) = annotations else {
        return errs;
    };
    if let Some(v) = annotations.get("kubernetes.io/config.mirror")
        && s(&spec.node_name).is_empty()
    {
        errs.push(field::invalid(
            &path.key("kubernetes.io/config.mirror"),
            v.as_str(),
            "must set spec.nodeName if mirror pod annotation is set",
        ));
    }
    if let Some(v) = annotations.get("controller.kubernetes.io/pod-deletion-cost")
        && v.parse::<i32>().is_err()
    {
        errs.push(field::invalid(
            &path.key("controller.kubernetes.io/pod-deletion-cost"),
            v.as_str(),
            "must be a 32bit integer",
        ));
    }
    errs
}

/// Validates a PodTemplateSpec as embedded in a workload (upstream `ValidatePodTemplateSpec`).
pub fn validate_pod_template_spec(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let meta = template.metadata.clone().unwrap_or_default();
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    let default_spec = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&default_spec);
    errs.extend(validate_pod_specific_annotations(
        meta.annotations.as_ref(),
        spec,
        &path.child("annotations"),
    ));
    errs.extend(validate_pod_spec(spec, &path.child("spec"), false));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|v| !v.is_empty())
    {
        errs.push(field::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// Validates a PodSpec (upstream `ValidatePodSpec`). `is_pod` is upstream's
/// `opts.ResourceIsPod` (host ports must equal container ports with hostNetwork).
pub fn validate_pod_spec(spec: &PodSpec, path: &Path, is_pod: bool) -> ErrorList {
    let mut errs = ErrorList::new();
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(field::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let grace = spec.termination_grace_period_seconds;
    let (volumes, verrs) = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &path.child("volumes"),
    );
    errs.extend(verrs);
    let restart_policy = s(&spec.restart_policy);
    errs.extend(validate_containers(
        &spec.containers,
        &volumes,
        grace,
        &path.child("containers"),
        restart_policy,
    ));
    errs.extend(validate_init_containers(
        spec.init_containers.as_deref().unwrap_or(&[]),
        &spec.containers,
        &volumes,
        grace,
        &path.child("initContainers"),
        restart_policy,
    ));
    errs.extend(validate_ephemeral_containers(spec, &volumes, path));
    errs.extend(validate_host_network_deps(spec, path, is_pod));
    errs.extend(validate_enum(
        restart_policy,
        &path.child("restartPolicy"),
        &["Always", "OnFailure", "Never"],
    ));
    errs.extend(validate_enum(
        s(&spec.dns_policy),
        &path.child("dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    ));
    errs.extend(validate_label_map(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
    ));
    errs.extend(validate_pod_security_context(spec, path));
    errs.extend(validate_affinity(spec, &path.child("affinity")));
    errs.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut seen_gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &p));
        if !seen_gates.insert(g.name.clone()) {
            errs.push(field::duplicate(&p, g.name.as_str()));
        }
    }
    errs.extend(validate_topology_spread_constraints(
        spec,
        &path.child("topologySpreadConstraints"),
    ));
    let sa = s(&spec.service_account_name);
    if !sa.is_empty() {
        errs.extend(validate_name(
            NameValidator::Dns1123Subdomain,
            sa,
            &path.child("serviceAccountName"),
        ));
    }
    let node = s(&spec.node_name);
    if !node.is_empty() {
        errs.extend(validate_name(
            NameValidator::Dns1123Subdomain,
            node,
            &path.child("nodeName"),
        ));
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=MAX_INT32).contains(&ads)
    {
        errs.push(field::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            &inclusive_range_error(1, MAX_INT32),
        ));
    }
    let hostname = s(&spec.hostname);
    if !hostname.is_empty() {
        errs.extend(validate_dns1123_label(hostname, &path.child("hostname")));
    }
    let subdomain = s(&spec.subdomain);
    if !subdomain.is_empty() {
        errs.extend(validate_dns1123_label(subdomain, &path.child("subdomain")));
    }
    if let Some(t) = spec.tolerations.as_deref()
        && !t.is_empty()
    {
        errs.extend(validate_tolerations(t, &path.child("tolerations")));
    }
    for (i, ha) in spec.host_aliases.iter().flatten().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(is_valid_ip(&p.child("ip"), &ha.ip));
        for (j, h) in ha.hostnames.iter().flatten().enumerate() {
            errs.extend(validate_dns1123_subdomain(
                h,
                &p.child("hostnames").index(j),
            ));
        }
    }
    let pcn = s(&spec.priority_class_name);
    if !pcn.is_empty() {
        errs.extend(validate_name(
            NameValidator::Dns1123Subdomain,
            pcn,
            &path.child("priorityClassName"),
        ));
    }
    if let Some(rc) = &spec.runtime_class_name {
        errs.extend(validate_name(
            NameValidator::Dns1123Subdomain,
            rc,
            &path.child("runtimeClassName"),
        ));
    }
    if let Some(pp) = &spec.preemption_policy {
        errs.extend(validate_enum(
            pp,
            &path.child("preemptionPolicy"),
            &["PreemptLowerPriority", "Never"],
        ));
    }
    if let Some(os) = &spec.os {
        if os.name.is_empty() {
            errs.push(field::required(
                &path.child("os").child("name"),
                "cannot be empty",
            ));
        } else if os.name != "linux" && os.name != "windows" {
            errs.push(field::not_supported(
                &path.child("os"),
                os.name.as_str(),
                &["linux", "windows"],
            ));
        }
    }
    errs
}

/// `Required` when empty, `NotSupported` when outside `valid` (upstream's enum switches).
fn validate_enum(value: &str, path: &Path, valid: &[&str]) -> ErrorList {
    if value.is_empty() {
        vec![field::required(path, "")]
    } else if valid.contains(&value) {
        Vec::new()
    } else {
        vec![field::not_supported(path, value, valid)]
    }
}

// ---- volumes ----

/// The volumes that validated, by name, with whether each is PVC-backed (for devices) and
/// whether it is an image volume (no subPath).
struct VolumeInfo {
    pvc: bool,
    image: bool,
}

fn validate_volumes(volumes: &[Volume], path: &Path) -> (BTreeMap<String, VolumeInfo>, ErrorList) {
    let mut errs = ErrorList::new();
    let mut names = BTreeMap::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        let mut el = validate_volume_source(v, &p);
        if v.name.is_empty() {
            el.push(field::required(&name_path, ""));
        } else {
            el.extend(validate_dns1123_label(&v.name, &name_path));
        }
        if names.contains_key(&v.name) {
            el.push(field::duplicate(&name_path, v.name.as_str()));
        }
        if el.is_empty() {
            names.insert(
                v.name.clone(),
                VolumeInfo {
                    pvc: v.persistent_volume_claim.is_some() || v.ephemeral.is_some(),
                    image: v.image.is_some(),
                },
            );
        } else {
            errs.extend(el);
        }
    }
    (names, errs)
}

fn validate_volume_source(v: &Volume, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    // Upstream's order, with its path names (including its "downwarAPI" typo).
    let sources: [(&str, bool); 30] = [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephFS", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("downwarAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storageos.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let mut num = 0;
    for (name, set) in sources {
        if !set {
            continue;
        }
        if num > 0 {
            errs.push(field::forbidden(
                &p.child(name),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        num += 1;
        errs.extend(validate_one_source(v, name, p));
    }
    if num == 0 {
        errs.push(field::required(p, "must specify a volume type"));
    }
    errs
}

fn validate_mode(mode: Option<i32>, path: &Path) -> ErrorList {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![field::invalid(path, m, FILE_MODE_ERROR_MSG)],
        _ => Vec::new(),
    }
}

fn validate_key_to_paths(
    items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, kp) in items.into_iter().flatten().enumerate() {
        let ip = path.index(i);
        if kp.key.is_empty() {
            errs.push(field::required(&ip.child("key"), ""));
        }
        if kp.path.is_empty() {
            errs.push(field::required(&ip.child("path"), ""));
        }
        errs.extend(validate_local_non_reserved_path(
            &kp.path,
            &ip.child("path"),
        ));
        errs.extend(validate_mode(kp.mode, &ip.child("mode")));
    }
    errs
}

fn validate_path_no_backsteps(target: &str, path: &Path) -> ErrorList {
    if target.split('/').any(|p| p == "..") {
        vec![field::invalid(path, target, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

fn validate_local_descending_path(target: &str, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if target.starts_with('/') {
        errs.push(field::invalid(path, target, "must be a relative path"));
    }
    errs.extend(validate_path_no_backsteps(target, path));
    errs
}

fn validate_local_non_reserved_path(target: &str, path: &Path) -> ErrorList {
    let mut errs = validate_local_descending_path(target, path);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(field::invalid(path, target, "must not start with '..'"));
    }
    errs
}

const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

fn validate_one_source(v: &Volume, name: &str, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    match name {
        "emptyDir" => {
            if let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref())
                && parse_quantity(&limit.0).is_ok_and(|q| q.nanos() < 0)
            {
                errs.push(field::forbidden(
                    &p.child("emptyDir").child("sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
        "hostPath" => {
            if let Some(hp) = &v.host_path {
                let pp = p.child("hostPath");
                if hp.path.is_empty() {
                    errs.push(field::required(&pp.child("path"), ""));
                    return errs;
                }
                errs.extend(validate_path_no_backsteps(&hp.path, &pp.child("path")));
                if let Some(t) = &hp.type_
                    && !HOST_PATH_TYPES.contains(&t.as_str())
                {
                    errs.push(field::not_supported(
                        &pp.child("type"),
                        t.as_str(),
                        HOST_PATH_TYPES,
                    ));
                }
            }
        }
        "secret" => {
            if let Some(sec) = &v.secret {
                let pp = p.child("secret");
                if s(&sec.secret_name).is_empty() {
                    errs.push(field::required(&pp.child("secretName"), ""));
                }
                errs.extend(validate_mode(sec.default_mode, &pp.child("defaultMode")));
                errs.extend(validate_key_to_paths(
                    sec.items.as_ref(),
                    &pp.child("items"),
                ));
            }
        }
        "configMap" => {
            if let Some(cm) = &v.config_map {
                let pp = p.child("configMap");
                if cm.name.is_empty() {
                    errs.push(field::required(&pp.child("name"), ""));
                }
                errs.extend(validate_mode(cm.default_mode, &pp.child("defaultMode")));
                errs.extend(validate_key_to_paths(cm.items.as_ref(), &pp.child("items")));
            }
        }
        "persistentVolumeClaim" => {
            if let Some(pvc) = &v.persistent_volume_claim
                && pvc.claim_name.is_empty()
            {
                errs.push(field::required(
                    &p.child("persistentVolumeClaim").child("claimName"),
                    "",
                ));
            }
        }
        "nfs" => {
            if let Some(nfs) = &v.nfs {
                let pp = p.child("nfs");
                if nfs.server.is_empty() {
                    errs.push(field::required(&pp.child("server"), ""));
                }
                if nfs.path.is_empty() {
                    errs.push(field::required(&pp.child("path"), ""));
                }
                if !nfs.path.starts_with('/') {
                    errs.push(field::invalid(
                        &pp.child("path"),
                        nfs.path.as_str(),
                        "must be an absolute path",
                    ));
                }
            }
        }
        "gitRepo" => {
            if let Some(g) = &v.git_repo {
                let pp = p.child("gitRepo");
                if g.repository.is_empty() {
                    errs.push(field::required(&pp.child("repository"), ""));
                }
                errs.extend(validate_local_descending_path(
                    s(&g.directory),
                    &pp.child("directory"),
                ));
            }
        }
        "downwarAPI" => {
            if let Some(d) = &v.downward_api {
                let pp = p.child("downwardAPI");
                errs.extend(validate_mode(d.default_mode, &pp.child("defaultMode")));
                for f in d.items.iter().flatten() {
                    if f.path.is_empty() {
                        errs.push(field::required(&pp.child("path"), ""));
                    }
                    errs.extend(validate_local_non_reserved_path(&f.path, &pp.child("path")));
                    match (&f.field_ref, &f.resource_field_ref) {
                        (Some(_), Some(_)) => errs.push(field::invalid(
                            &pp,
                            "resource",
                            "fieldRef and resourceFieldRef can not be specified simultaneously",
                        )),
                        (None, None) => errs.push(field::required(
                            &pp,
                            "one of fieldRef and resourceFieldRef is required",
                        )),
                        _ => {}
                    }
                    errs.extend(validate_mode(f.mode, &pp.child("mode")));
                }
            }
        }
        "projected" => {
            if let Some(pr) = &v.projected {
                let pp = p.child("projected");
                errs.extend(validate_mode(pr.default_mode, &pp.child("defaultMode")));
                for (i, src) in pr.sources.iter().flatten().enumerate() {
                    let sp = pp.child("sources").index(i);
                    let n = [
                        src.secret.is_some(),
                        src.config_map.is_some(),
                        src.downward_api.is_some(),
                        src.service_account_token.is_some(),
                        src.cluster_trust_bundle.is_some(),
                        src.pod_certificate.is_some(),
                    ]
                    .iter()
                    .filter(|b| **b)
                    .count();
                    if let Some(sat) = &src.service_account_token {
                        let exp = sat.expiration_seconds.unwrap_or(3600);
                        if exp < 600 {
                            errs.push(field::invalid(
                                &sp.child("serviceAccountToken").child("expirationSeconds"),
                                exp,
                                "may not specify a duration less than 10 minutes",
                            ));
                        }
                        if exp > 1 << 32 {
                            errs.push(field::invalid(
                                &sp.child("serviceAccountToken").child("expirationSeconds"),
                                exp,
                                "may not specify a duration larger than 2^32 seconds",
                            ));
                        }
                        if sat.path.is_empty() {
                            errs.push(field::required(&pp.child("path"), ""));
                        } else {
                            errs.extend(validate_local_non_reserved_path(
                                &sat.path,
                                &pp.child("path"),
                            ));
                        }
                    }
                    if let Some(sec) = &src.secret {
                        if s(&Some(sec.name.clone())).is_empty() {
                            errs.push(field::required(&sp.child("secret").child("name"), ""));
                        }
                        errs.extend(validate_key_to_paths(
                            sec.items.as_ref(),
                            &sp.child("secret").child("items"),
                        ));
                    }
                    if let Some(cm) = &src.config_map {
                        if cm.name.is_empty() {
                            errs.push(field::required(&sp.child("configMap").child("name"), ""));
                        }
                        errs.extend(validate_key_to_paths(
                            cm.items.as_ref(),
                            &sp.child("configMap").child("items"),
                        ));
                    }
                    if n > 1 {
                        errs.push(field::forbidden(
                            &sp,
                            "may not specify more than 1 volume type per source",
                        ));
                    }
                }
            }
        }
        "csi" => {
            if let Some(csi) = &v.csi
                && csi.driver.is_empty()
            {
                errs.push(field::required(&p.child("csi").child("driver"), ""));
            }
        }
        "ephemeral" => {
            if let Some(e) = &v.ephemeral
                && e.volume_claim_template.is_none()
            {
                errs.push(field::required(
                    &p.child("ephemeral").child("volumeClaimTemplate"),
                    "",
                ));
            }
        }
        "image" => {
            if let Some(img) = &v.image {
                let pp = p.child("image");
                if s(&img.reference).is_empty() {
                    errs.push(field::required(&pp.child("reference"), ""));
                }
                errs.extend(validate_enum(
                    s(&img.pull_policy),
                    &pp.child("pullPolicy"),
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
        }
        _ => {}
    }
    errs
}

// ---- containers ----

fn validate_container_common(
    c: &Container,
    volumes: &BTreeMap<String, VolumeInfo>,
    path: &Path,
    restart_policy: &str,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let name_path = path.child("name");
    if c.name.is_empty() {
        errs.push(field::required(&name_path, ""));
    } else {
        errs.extend(validate_dns1123_label(&c.name, &name_path));
    }
    if s(&c.image).is_empty() {
        errs.push(field::required(&path.child("image"), ""));
    }
    errs.extend(validate_enum(
        s(&c.termination_message_policy),
        &path.child("terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    ));
    errs.extend(validate_container_ports(
        c.ports.as_deref().unwrap_or(&[]),
        &path.child("ports"),
    ));
    errs.extend(validate_env(
        c.env.as_deref().unwrap_or(&[]),
        &path.child("env"),
    ));
    errs.extend(validate_env_from(
        c.env_from.as_deref().unwrap_or(&[]),
        &path.child("envFrom"),
    ));
    errs.extend(validate_volume_mounts(
        c.volume_mounts.as_deref().unwrap_or(&[]),
        c.volume_devices.as_deref().unwrap_or(&[]),
        volumes,
        c,
        &path.child("volumeMounts"),
    ));
    errs.extend(validate_volume_devices(
        c.volume_devices.as_deref().unwrap_or(&[]),
        c.volume_mounts.as_deref().unwrap_or(&[]),
        volumes,
        &path.child("volumeDevices"),
    ));
    errs.extend(validate_enum(
        s(&c.image_pull_policy),
        &path.child("imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
    ));
    let default_rr = ResourceRequirements::default();
    errs.extend(validate_resource_requirements(
        c.resources.as_ref().unwrap_or(&default_rr),
        &path.child("resources"),
    ));
    for (i, rp) in c.resize_policy.iter().flatten().enumerate() {
        let rpath = path.child("resizePolicy");
        let _ = i;
        match rp.resource_name.as_str() {
            "cpu" | "memory" => {}
            "" => errs.push(field::required(&rpath, "")),
            other => errs.push(field::not_supported(&rpath, other, &["cpu", "memory"])),
        }
        match rp.restart_policy.as_str() {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(field::required(&rpath, "")),
            other => errs.push(field::not_supported(
                &rpath,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if restart_policy == "Never" && rp.restart_policy != "NotRequired" {
            errs.push(field::invalid(
                &rpath,
                rp.restart_policy.as_str(),
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs.extend(validate_security_context(
        c.security_context.as_ref(),
        &path.child("securityContext"),
    ));
    errs
}

fn validate_containers(
    containers: &[Container],
    volumes: &BTreeMap<String, VolumeInfo>,
    grace: Option<i64>,
    path: &Path,
    restart_policy: &str,
) -> ErrorList {
    if containers.is_empty() {
        return vec![field::required(path, "")];
    }
    let mut errs = ErrorList::new();
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p, restart_policy));
        if !names.insert(c.name.clone()) {
            errs.push(field::duplicate(&p.child("name"), c.name.as_str()));
        }
        if let Some(l) = &c.lifecycle {
            errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle")));
        }
        errs.extend(validate_probe(
            c.liveness_probe.as_ref(),
            &p.child("livenessProbe"),
            ProbeKind::Liveness,
        ));
        errs.extend(validate_probe(
            c.readiness_probe.as_ref(),
            &p.child("readinessProbe"),
            ProbeKind::Readiness,
        ));
        errs.extend(validate_probe(
            c.startup_probe.as_ref(),
            &p.child("startupProbe"),
            ProbeKind::Startup,
        ));
        if c.restart_policy.is_some() {
            errs.push(field::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(check_host_port_conflicts(containers, path));
    errs
}

fn validate_init_containers(
    containers: &[Container],
    regular: &[Container],
    volumes: &BTreeMap<String, VolumeInfo>,
    grace: Option<i64>,
    path: &Path,
    restart_policy: &str,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut names: BTreeSet<String> = regular.iter().map(|c| c.name.clone()).collect();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p, restart_policy));
        let mut restart_always = false;
        if let Some(rp) = &c.restart_policy {
            if rp != "Always" {
                errs.push(field::not_supported(
                    &p.child("restartPolicy"),
                    rp.as_str(),
                    &["Always"],
                ));
            }
            restart_always = rp == "Always";
        }
        if names.contains(&c.name) {
            errs.push(field::duplicate(&p.child("name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            names.insert(c.name.clone());
        }
        errs.extend(check_host_port_conflicts(std::slice::from_ref(c), path));
        if restart_always {
            if let Some(l) = &c.lifecycle {
                errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle")));
            }
            errs.extend(validate_probe(
                c.liveness_probe.as_ref(),
                &p.child("livenessProbe"),
                ProbeKind::Liveness,
            ));
            errs.extend(validate_probe(
                c.readiness_probe.as_ref(),
                &p.child("readinessProbe"),
                ProbeKind::Readiness,
            ));
            errs.extend(validate_probe(
                c.startup_probe.as_ref(),
                &p.child("startupProbe"),
                ProbeKind::Startup,
            ));
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            if c.lifecycle.is_some() {
                errs.push(field::forbidden(&p.child("lifecycle"), msg));
            }
            if c.liveness_probe.is_some() {
                errs.push(field::forbidden(&p.child("livenessProbe"), msg));
            }
            if c.readiness_probe.is_some() {
                errs.push(field::forbidden(&p.child("readinessProbe"), msg));
            }
            if c.startup_probe.is_some() {
                errs.push(field::forbidden(&p.child("startupProbe"), msg));
            }
        }
    }
    errs
}

fn validate_ephemeral_containers(
    spec: &PodSpec,
    volumes: &BTreeMap<String, VolumeInfo>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(ecs) = spec.ephemeral_containers.as_deref() else {
        return errs;
    };
    let base = path.child("ephemeralContainers");
    let mut other: BTreeSet<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    other.extend(
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone()),
    );
    let mut all = other.clone();
    for (i, ec) in ecs.iter().enumerate() {
        let p = base.index(i);
        let c = Container {
            name: ec.name.clone(),
            image: ec.image.clone(),
            termination_message_policy: ec.termination_message_policy.clone(),
            image_pull_policy: ec.image_pull_policy.clone(),
            env: ec.env.clone(),
            env_from: ec.env_from.clone(),
            volume_mounts: ec.volume_mounts.clone(),
            volume_devices: ec.volume_devices.clone(),
            security_context: ec.security_context.clone(),
            ..Default::default()
        };
        errs.extend(validate_container_common(
            &c,
            volumes,
            &p,
            s(&spec.restart_policy),
        ));
        if !all.insert(ec.name.clone()) {
            errs.push(field::duplicate(&p.child("name"), ec.name.as_str()));
        }
        if let Some(t) = &ec.target_container_name
            && !t.is_empty()
            && !other.contains(t)
        {
            errs.push(field::not_found(
                &p.child("targetContainerName"),
                t.as_str(),
            ));
        }
        let msg = "cannot be set for an Ephemeral Container";
        let disallowed = [
            ("ports", ec.ports.is_some()),
            ("resources", ec.resources.is_some()),
            ("livenessProbe", ec.liveness_probe.is_some()),
            ("readinessProbe", ec.readiness_probe.is_some()),
            ("startupProbe", ec.startup_probe.is_some()),
            ("lifecycle", ec.lifecycle.is_some()),
        ];
        for (f, set) in disallowed {
            if set {
                errs.push(field::forbidden(&p.child(f), msg));
            }
        }
    }
    errs
}

fn validate_container_ports(ports: &[ContainerPort], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = s(&port.name);
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(field::invalid(&p.child("name"), name, &m));
                }
            } else if !names.insert(name.to_owned()) {
                errs.push(field::duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(field::required(&p.child("containerPort"), ""));
        } else {
            for m in is_valid_port_num(i64::from(port.container_port)) {
                errs.push(field::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    &m,
                ));
            }
        }
        if let Some(hp) = port.host_port
            && hp != 0
        {
            for m in is_valid_port_num(i64::from(hp)) {
                errs.push(field::invalid(&p.child("hostPort"), hp, &m));
            }
        }
        let proto = s(&port.protocol);
        if proto.is_empty() {
            errs.push(field::required(&p.child("protocol"), ""));
        } else if !SUPPORTED_PORT_PROTOCOLS.contains(&proto) {
            errs.push(field::not_supported(
                &p.child("protocol"),
                proto,
                SUPPORTED_PORT_PROTOCOLS,
            ));
        }
    }
    errs
}

fn check_host_port_conflicts(containers: &[Container], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{}", s(&port.protocol), s(&port.host_ip), hp);
            if !seen.insert(key.clone()) {
                errs.push(field::duplicate(
                    &path.index(ci).child("ports").index(pi).child("hostPort"),
                    key,
                ));
            }
        }
    }
    errs
}

const VALID_ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn validate_env(vars: &[EnvVar], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        } else {
            for m in is_relaxed_env_var_name(&ev.name) {
                errs.push(field::invalid(&p.child("name"), ev.name.as_str(), &m));
            }
        }
        let Some(vf) = &ev.value_from else {
            continue;
        };
        let vp = p.child("valueFrom");
        let mut n = 0;
        if let Some(fr) = &vf.field_ref {
            n += 1;
            let fp = vp.child("fieldRef");
            let api_version = s(&fr.api_version);
            if api_version.is_empty() {
                errs.push(field::required(&fp.child("apiVersion"), ""));
            } else if fr.field_path.is_empty() {
                errs.push(field::required(&fp.child("fieldPath"), ""));
            } else if let Some((base, sub)) = split_subscript(&fr.field_path) {
                match base {
                    "metadata.annotations" => {
                        errs.extend(validate_qualified_name(&sub.to_lowercase(), &fp))
                    }
                    "metadata.labels" => errs.extend(validate_qualified_name(sub, &fp)),
                    _ => errs.push(field::invalid(&fp, base, "does not support subscript")),
                }
            } else if !matches!(
                fr.field_path.as_str(),
                "metadata.labels" | "metadata.annotations"
            ) && !VALID_ENV_FIELD_PATHS.contains(&fr.field_path.as_str())
            {
                errs.push(field::not_supported(
                    &fp.child("fieldPath"),
                    fr.field_path.as_str(),
                    VALID_ENV_FIELD_PATHS,
                ));
            }
        }
        if let Some(rf) = &vf.resource_field_ref {
            n += 1;
            if rf.resource.is_empty() {
                errs.push(field::required(
                    &vp.child("resourceFieldRef").child("resource"),
                    "",
                ));
            }
        }
        if let Some(cm) = &vf.config_map_key_ref {
            n += 1;
            errs.extend(validate_key_selector(
                &cm.name,
                &cm.key,
                &vp.child("configMapKeyRef"),
            ));
        }
        if let Some(sk) = &vf.secret_key_ref {
            n += 1;
            errs.extend(validate_key_selector(
                &sk.name,
                &sk.key,
                &vp.child("secretKeyRef"),
            ));
        }
        if let Some(fk) = &vf.file_key_ref {
            n += 1;
            if fk.key.is_empty() {
                errs.push(field::required(&vp.child("fileKeyRef").child("key"), ""));
            }
        }
        if n == 0 {
            errs.push(field::invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !s(&ev.value).is_empty() {
            errs.push(field::invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            errs.push(field::invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let open = path.find('[')?;
    let inner = path[open + 1..].strip_suffix(']')?;
    let inner = inner.strip_prefix('\'')?.strip_suffix('\'')?;
    Some((&path[..open], inner))
}

fn validate_key_selector(name: &str, key: &str, path: &Path) -> ErrorList {
    let mut errs = validate_name(NameValidator::Dns1123Subdomain, name, &path.child("name"));
    if key.is_empty() {
        errs.push(field::required(&path.child("key"), ""));
    } else {
        for m in is_config_map_key(key) {
            errs.push(field::invalid(&path.child("key"), key, &m));
        }
    }
    errs
}

fn validate_env_from(sources: &[EnvFromSource], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, ev) in sources.iter().enumerate() {
        let p = path.index(i);
        let prefix = s(&ev.prefix);
        if !prefix.is_empty() {
            for m in is_relaxed_env_var_name(prefix) {
                errs.push(field::invalid(&p.child("prefix"), prefix, &m));
            }
        }
        let mut n = 0;
        for (set, name, child) in [
            (
                ev.config_map_ref.is_some(),
                ev.config_map_ref.as_ref().map(|r| r.name.as_str()),
                "configMapRef",
            ),
            (
                ev.secret_ref.is_some(),
                ev.secret_ref.as_ref().map(|r| r.name.as_str()),
                "secretRef",
            ),
        ] {
            if !set {
                continue;
            }
            n += 1;
            let name = name.unwrap_or("");
            let np = p.child(child).child("name");
            if name.is_empty() {
                errs.push(field::required(&np, ""));
            } else {
                for m in NameValidator::Dns1123Subdomain.validate(name, true) {
                    errs.push(field::invalid(&np, name, &m));
                }
            }
        }
        if n == 0 {
            errs.push(field::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(field::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    devices: &[VolumeDevice],
    volumes: &BTreeMap<String, VolumeInfo>,
    container: &Container,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut mountpoints = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        }
        if !volumes.contains_key(&m.name) {
            errs.push(field::not_found(&p.child("name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(field::required(&p.child("mountPath"), ""));
        }
        if !mountpoints.insert(m.mount_path.clone()) {
            errs.push(field::invalid(
                &p.child("mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
        if devices.iter().any(|d| d.name == m.name) {
            errs.push(field::invalid(
                &p.child("name"),
                m.name.as_str(),
                "must not already exist in volumeDevices",
            ));
        }
        if devices.iter().any(|d| d.device_path == m.mount_path) {
            errs.push(field::invalid(
                &p.child("mountPath"),
                m.mount_path.as_str(),
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub_path = s(&m.sub_path);
        let sub_path_expr = s(&m.sub_path_expr);
        if volumes.get(&m.name).is_some_and(|v| v.image) {
            if !sub_path.is_empty() {
                errs.push(field::invalid(
                    &p.child("subPath"),
                    sub_path,
                    "not allowed in image volume sources",
                ));
            }
            if !sub_path_expr.is_empty() {
                errs.push(field::invalid(
                    &p.child("subPathExpr"),
                    sub_path_expr,
                    "not allowed in image volume sources",
                ));
            }
        }
        if !sub_path.is_empty() {
            errs.extend(validate_local_descending_path(
                sub_path,
                &path.child("subPath"),
            ));
        }
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(field::invalid(
                    &p.child("subPathExpr"),
                    sub_path_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(
                sub_path_expr,
                &path.child("subPathExpr"),
            ));
        }
        if let Some(mp) = &m.mount_propagation {
            let pp = path.child("mountPropagation");
            const SUPPORTED: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !SUPPORTED.contains(&mp.as_str()) {
                errs.push(field::not_supported(&pp, mp.as_str(), SUPPORTED));
            }
            let privileged = container
                .security_context
                .as_ref()
                .and_then(|sc| sc.privileged)
                .unwrap_or(false);
            if mp == "Bidirectional" && !privileged {
                errs.push(field::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = &m.recursive_read_only {
            let rp = path.child("recursiveReadOnly");
            match rro.as_str() {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if !m.read_only.unwrap_or(false) {
                        errs.push(field::forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                        errs.push(field::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(field::not_supported(
                    &rp,
                    other,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
    errs
}

fn validate_volume_devices(
    devices: &[VolumeDevice],
    mounts: &[VolumeMount],
    volumes: &BTreeMap<String, VolumeInfo>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut paths = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, d) in devices.iter().enumerate() {
        let p = path.index(i);
        let info = volumes.get(&d.name);
        if d.name.is_empty() {
            errs.push(field::required(&p.child("name"), ""));
        }
        if names.contains(&d.name) {
            errs.push(field::invalid(
                &p.child("name"),
                d.name.as_str(),
                "must be unique",
            ));
        }
        if info.is_some_and(|v| !v.pvc) {
            errs.push(field::invalid(
                &p.child("name"),
                d.name.as_str(),
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            ));
        }
        if info.is_none() {
            errs.push(field::not_found(&p.child("name"), d.name.as_str()));
        }
        if d.device_path.is_empty() {
            errs.push(field::required(&p.child("devicePath"), ""));
        }
        if paths.contains(&d.device_path) {
            errs.push(field::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "must be unique",
            ));
        }
        if !d.device_path.is_empty() && d.device_path.split('/').any(|x| x == "..") {
            errs.push(field::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(d.device_path.clone());
        }
        if mounts.iter().any(|m| m.name == d.name) {
            errs.push(field::invalid(
                &p.child("name"),
                d.name.as_str(),
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.iter().any(|m| m.mount_path == d.device_path) {
            errs.push(field::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !d.name.is_empty() {
            names.insert(d.name.clone());
        }
    }
    errs
}

/// Validates container resource requirements (upstream `ValidateContainerResourceRequirements`):
/// names, non-negative quantities and requests ≤ limits.
pub fn validate_resource_requirements(rr: &ResourceRequirements, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let empty = BTreeMap::new();
    let limits = rr.limits.as_ref().unwrap_or(&empty);
    let requests = rr.requests.as_ref().unwrap_or(&empty);
    let (mut lim_cpu_mem, mut req_cpu_mem, mut lim_huge, mut req_huge) =
        (false, false, false, false);
    for (name, q) in limits {
        let p = lim_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        errs.extend(validate_resource_quantity_value(name, q, &p));
        lim_huge |= name.starts_with("hugepages-");
        lim_cpu_mem |= name == "cpu" || name == "memory";
    }
    for (name, q) in requests {
        let p = req_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        errs.extend(validate_resource_quantity_value(name, q, &p));
        if let Some(limit) = limits.get(name) {
            if let (Ok(rv), Ok(lv)) = (parse_quantity(&q.0), parse_quantity(&limit.0)) {
                if rv != lv && !is_overcommit_allowed(name) {
                    errs.push(field::invalid(
                        &req_path,
                        q.0.as_str(),
                        &format!("must be equal to {name} limit of {}", limit.0),
                    ));
                } else if rv > lv {
                    errs.push(field::invalid(
                        &req_path,
                        q.0.as_str(),
                        &format!("must be less than or equal to {name} limit of {}", limit.0),
                    ));
                }
            }
        } else if !is_overcommit_allowed(name) {
            errs.push(field::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            ));
        }
        req_huge |= name.starts_with("hugepages-");
        req_cpu_mem |= name == "cpu" || name == "memory";
    }
    if !lim_cpu_mem && !req_cpu_mem && (req_huge || lim_huge) {
        errs.push(field::forbidden(path, "HugePages require cpu or memory"));
    }
    errs
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

fn validate_probe(probe: Option<&Probe>, path: &Path, kind: ProbeKind) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(pr) = probe else {
        return errs;
    };
    errs.extend(validate_handler(
        &[
            ("exec", pr.exec.is_some()),
            ("httpGet", pr.http_get.is_some()),
            ("tcpSocket", pr.tcp_socket.is_some()),
            ("grpc", pr.grpc.is_some()),
        ],
        HandlerRef {
            exec: pr
                .exec
                .as_ref()
                .map(|e| e.command.as_deref().unwrap_or(&[]).len()),
            http_get: pr.http_get.as_ref(),
            tcp_port: pr.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: pr.grpc.as_ref().map(|g| g.port),
            sleep: None,
        },
        None,
        path,
    ));
    for (f, v) in [
        ("initialDelaySeconds", pr.initial_delay_seconds),
        ("timeoutSeconds", pr.timeout_seconds),
        ("periodSeconds", pr.period_seconds),
        ("successThreshold", pr.success_threshold),
        ("failureThreshold", pr.failure_threshold),
    ] {
        errs.extend(validate_nonnegative_field(
            i64::from(v.unwrap_or(0)),
            &path.child(f),
        ));
    }
    if let Some(t) = pr.termination_grace_period_seconds
        && t <= 0
    {
        errs.push(field::invalid(
            &path.child("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    match kind {
        ProbeKind::Liveness | ProbeKind::Startup => {
            let st = pr.success_threshold.unwrap_or(0);
            if st != 1 {
                errs.push(field::invalid(
                    &path.child("successThreshold"),
                    st,
                    "must be 1",
                ));
            }
        }
        ProbeKind::Readiness => {
            if let Some(t) = pr.termination_grace_period_seconds {
                errs.push(field::invalid(
                    &path.child("terminationGracePeriodSeconds"),
                    t,
                    "must not be set for readinessProbes",
                ));
            }
        }
    }
    errs
}

struct HandlerRef<'a> {
    exec: Option<usize>,
    http_get: Option<&'a k8s_openapi::api::core::v1::HTTPGetAction>,
    tcp_port: Option<&'a k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    grpc_port: Option<i32>,
    sleep: Option<i64>,
}

fn validate_handler(
    set: &[(&str, bool)],
    h: HandlerRef<'_>,
    grace: Option<i64>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut n = 0;
    for (name, is_set) in set {
        if !is_set {
            continue;
        }
        let p = path.child(name);
        if n > 0 {
            errs.push(field::forbidden(
                &p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        n += 1;
        match *name {
            "exec" if h.exec == Some(0) => {
                errs.push(field::required(&p.child("command"), ""));
            }
            "httpGet" => {
                if let Some(hg) = h.http_get {
                    if s(&hg.path).is_empty() {
                        errs.push(field::required(&p.child("path"), ""));
                    }
                    errs.extend(validate_port_num_or_name(&hg.port, &p.child("port")));
                    let scheme = s(&hg.scheme);
                    if scheme != "HTTP" && scheme != "HTTPS" {
                        errs.push(field::not_supported(
                            &p.child("scheme"),
                            scheme,
                            &["HTTP", "HTTPS"],
                        ));
                    }
                }
            }
            "tcpSocket" => {
                if let Some(port) = h.tcp_port {
                    errs.extend(validate_port_num_or_name(port, &p.child("port")));
                }
            }
            "grpc" => {
                if let Some(port) = h.grpc_port {
                    for m in is_valid_port_num(i64::from(port)) {
                        errs.push(field::invalid(&p.child("port"), port, &m));
                    }
                }
            }
            "sleep" => {
                if let (Some(secs), Some(g)) = (h.sleep, grace)
                    && (secs < 0 || secs > g)
                {
                    errs.push(field::invalid(
                        &p,
                        secs,
                        &format!(
                            "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        errs.push(field::required(path, "must specify a handler type"));
    }
    errs
}

fn validate_lifecycle_handler(h: &LifecycleHandler, grace: Option<i64>, path: &Path) -> ErrorList {
    validate_handler(
        &[
            ("exec", h.exec.is_some()),
            ("httpGet", h.http_get.is_some()),
            ("tcpSocket", h.tcp_socket.is_some()),
            ("sleep", h.sleep.is_some()),
        ],
        HandlerRef {
            exec: h
                .exec
                .as_ref()
                .map(|e| e.command.as_deref().unwrap_or(&[]).len()),
            http_get: h.http_get.as_ref(),
            tcp_port: h.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: None,
            sleep: h.sleep.as_ref().map(|s| s.seconds),
        },
        grace,
        path,
    )
}

fn validate_lifecycle(l: &Lifecycle, grace: Option<i64>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(h) = &l.post_start {
        errs.extend(validate_lifecycle_handler(
            h,
            grace,
            &path.child("postStart"),
        ));
    }
    if let Some(h) = &l.pre_stop {
        errs.extend(validate_lifecycle_handler(h, grace, &path.child("preStop")));
    }
    errs
}

fn validate_security_context(sc: Option<&SecurityContext>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(sc) = sc else {
        return errs;
    };
    let range = inclusive_range_error(0, MAX_INT32);
    if let Some(u) = sc.run_as_user
        && !(0..=MAX_INT32).contains(&u)
    {
        errs.push(field::invalid(&path.child("runAsUser"), u, &range));
    }
    if let Some(g) = sc.run_as_group
        && !(0..=MAX_INT32).contains(&g)
    {
        errs.push(field::invalid(&path.child("runAsGroup"), g, &range));
    }
    if let Some(pm) = &sc.proc_mount
        && pm != "Default"
        && pm != "Unmasked"
    {
        errs.push(field::not_supported(
            &path.child("procMount"),
            pm.as_str(),
            &["Default", "Unmasked"],
        ));
    }
    if sc.allow_privilege_escalation == Some(false) && sc.privileged == Some(true) {
        errs.push(field::invalid(
            path,
            BadValue::json(sc),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    errs
}

fn validate_pod_security_context(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(psc) = &spec.security_context else {
        return errs;
    };
    let sp = path.child("securityContext");
    let range = inclusive_range_error(0, MAX_INT32);
    if let Some(u) = psc.run_as_user
        && !(0..=MAX_INT32).contains(&u)
    {
        errs.push(field::invalid(&sp.child("runAsUser"), u, &range));
    }
    if let Some(g) = psc.run_as_group
        && !(0..=MAX_INT32).contains(&g)
    {
        errs.push(field::invalid(&sp.child("runAsGroup"), g, &range));
    }
    if let Some(g) = psc.fs_group
        && !(0..=MAX_INT32).contains(&g)
    {
        errs.push(field::invalid(&sp.child("fsGroup"), g, &range));
    }
    for (i, g) in psc.supplemental_groups.iter().flatten().enumerate() {
        if !(0..=MAX_INT32).contains(g) {
            errs.push(field::invalid(
                &sp.child("supplementalGroups").index(i),
                *g,
                &range,
            ));
        }
    }
    if let Some(p) = &psc.fs_group_change_policy
        && p != "OnRootMismatch"
        && p != "Always"
    {
        errs.push(field::not_supported(
            &sp.child("fsGroupChangePolicy"),
            p.as_str(),
            &["Always", "OnRootMismatch"],
        ));
    }
    errs
}

fn validate_host_network_deps(spec: &PodSpec, path: &Path, is_pod: bool) -> ErrorList {
    let mut errs = ErrorList::new();
    if !spec.host_network.unwrap_or(false) {
        return errs;
    }
    for (i, c) in spec.containers.iter().enumerate() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if (is_pod || hp != 0) && hp != port.container_port {
                errs.push(field::invalid(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
    errs
}

fn validate_affinity(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(aff) = &spec.affinity else {
        return errs;
    };
    if let Some(na) = &aff.node_affinity {
        let np = path.child("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let tp = np
                .child("requiredDuringSchedulingIgnoredDuringExecution")
                .child("nodeSelectorTerms");
            if req.node_selector_terms.is_empty() {
                errs.push(field::required(
                    &tp,
                    "must have at least one node selector term",
                ));
            }
            for (i, term) in req.node_selector_terms.iter().enumerate() {
                for (j, r) in term.match_expressions.iter().flatten().enumerate() {
                    errs.extend(validate_node_selector_requirement(
                        &r.key,
                        &r.operator,
                        r.values.as_deref().unwrap_or(&[]),
                        false,
                        &tp.index(i).child("matchExpressions").index(j),
                    ));
                }
            }
        }
        for (i, t) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let p = np
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if t.weight <= 0 || t.weight > 100 {
                errs.push(field::invalid(
                    &p.child("weight"),
                    t.weight,
                    "must be in the range 1-100",
                ));
            }
            for (j, r) in t.preference.match_expressions.iter().flatten().enumerate() {
                errs.extend(validate_node_selector_requirement(
                    &r.key,
                    &r.operator,
                    r.values.as_deref().unwrap_or(&[]),
                    true,
                    &p.child("preference").child("matchExpressions").index(j),
                ));
            }
        }
    }
    let terms = |required: Option<&Vec<k8s_openapi::api::core::v1::PodAffinityTerm>>,
                 weighted: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>,
                 p: &Path| {
        let mut errs = ErrorList::new();
        for (i, t) in required.into_iter().flatten().enumerate() {
            errs.extend(validate_pod_affinity_term(
                t,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution")
                    .index(i),
            ));
        }
        for (i, w) in weighted.into_iter().flatten().enumerate() {
            let wp = p
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if w.weight <= 0 || w.weight > 100 {
                errs.push(field::invalid(
                    &wp.child("weight"),
                    w.weight,
                    "must be in the range 1-100",
                ));
            }
            errs.extend(validate_pod_affinity_term(
                &w.pod_affinity_term,
                &wp.child("podAffinityTerm"),
            ));
        }
        errs
    };
    if let Some(pa) = &aff.pod_affinity {
        errs.extend(terms(
            pa.required_during_scheduling_ignored_during_execution
                .as_ref(),
            pa.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
            &path.child("podAffinity"),
        ));
    }
    if let Some(pa) = &aff.pod_anti_affinity {
        errs.extend(terms(
            pa.required_during_scheduling_ignored_during_execution
                .as_ref(),
            pa.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
            &path.child("podAntiAffinity"),
        ));
    }
    errs
}

fn validate_pod_affinity_term(
    t: &k8s_openapi::api::core::v1::PodAffinityTerm,
    path: &Path,
) -> ErrorList {
    let opts = LabelSelectorValidationOptions::default();
    let mut errs = validate_label_selector(
        t.label_selector.as_ref(),
        opts,
        &path.child("labelSelector"),
    );
    errs.extend(validate_label_selector(
        t.namespace_selector.as_ref(),
        opts,
        &path.child("namespaceSelector"),
    ));
    for ns in t.namespaces.iter().flatten() {
        for m in NameValidator::Dns1123Label.validate(ns, false) {
            errs.push(field::invalid(&path.child("namespace"), ns.as_str(), &m));
        }
    }
    if t.topology_key.is_empty() {
        errs.push(field::required(
            &path.child("topologyKey"),
            "can not be empty",
        ));
    }
    errs.extend(validate_label_name(
        &t.topology_key,
        &path.child("topologyKey"),
    ));
    errs
}

/// Upstream `ValidateNodeSelectorRequirement`.
fn validate_node_selector_requirement(
    key: &str,
    op: &str,
    values: &[String],
    allow_invalid_values: bool,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    match op {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(field::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(field::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                errs.push(field::required(
                    &path.child("values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        other => errs.push(field::invalid(
            &path.child("operator"),
            other,
            "not a valid selector operator",
        )),
    }
    errs.extend(validate_label_name(key, &path.child("key")));
    if !allow_invalid_values {
        for (i, v) in values.iter().enumerate() {
            for m in is_valid_label_value(v) {
                errs.push(field::invalid(
                    &path.child("values").index(i),
                    v.as_str(),
                    &m,
                ));
            }
        }
    }
    errs
}

fn validate_dns_config(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if s(&spec.dns_policy) == "None" {
        match &spec.dns_config {
            None => {
                return vec![field::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                )];
            }
            Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => {
                return vec![field::required(
                    &path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )];
            }
            _ => {}
        }
    }
    let Some(c) = &spec.dns_config else {
        return errs;
    };
    let ns = c.nameservers.as_deref().unwrap_or(&[]);
    if ns.len() > 3 {
        errs.push(field::invalid(
            &path.child("nameservers"),
            BadValue::json(ns),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        errs.extend(is_valid_ip(&path.child("nameservers").index(i), n));
    }
    let searches = c.searches.as_deref().unwrap_or(&[]);
    if searches.len() > 32 {
        errs.push(field::invalid(
            &path.child("searches"),
            BadValue::json(searches),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(field::invalid(
            &path.child("searches"),
            BadValue::json(searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, sr) in searches.iter().enumerate() {
        if sr != "." {
            let trimmed = sr.strip_suffix('.').unwrap_or(sr);
            for m in super::names::is_dns1123_subdomain_with_underscore(trimmed) {
                errs.push(field::invalid(
                    &path.child("searches").index(i),
                    trimmed,
                    &m,
                ));
            }
        }
    }
    for (i, o) in c.options.iter().flatten().enumerate() {
        if s(&o.name).is_empty() {
            errs.push(field::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

fn validate_topology_spread_constraints(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let cs = spec.topology_spread_constraints.as_deref().unwrap_or(&[]);
    for (i, c) in cs.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(field::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                super::common::IS_NOT_POSITIVE_ERROR_MSG,
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(field::required(&p.child("topologyKey"), "can not be empty"));
        }
        if c.when_unsatisfiable != "DoNotSchedule" && c.when_unsatisfiable != "ScheduleAnyway" {
            errs.push(field::not_supported(
                &p.child("whenUnsatisfiable"),
                c.when_unsatisfiable.as_str(),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if cs[i + 1..].iter().any(|o| {
            o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
        }) {
            errs.push(field::duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
        if let Some(md) = c.min_domains {
            if md <= 0 {
                errs.push(field::invalid(
                    &p.child("minDomains"),
                    md,
                    super::common::IS_NOT_POSITIVE_ERROR_MSG,
                ));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                errs.push(field::invalid(
                    &p.child("minDomains"),
                    md,
                    &format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        errs.extend(validate_label_selector(
            c.label_selector.as_ref(),
            LabelSelectorValidationOptions::default(),
            &p.child("labelSelector"),
        ));
    }
    errs
}

/// Validates tolerations (upstream `ValidateTolerations`).
pub fn validate_tolerations(tolerations: &[Toleration], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = s(&t.key);
        let op = s(&t.operator);
        let effect = s(&t.effect);
        let value = s(&t.value);
        if !key.is_empty() {
            errs.extend(validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(field::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(field::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(field::invalid(&p.child("operator"), value, &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(field::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(field::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            errs.extend(validate_taint_effect(effect, true, &p.child("effect")));
        }
    }
    errs
}

// ---- update / status / binding ----

/// Validates a Pod update (upstream `ValidatePodUpdate`): only images, activeDeadlineSeconds,
/// toleration additions, schedulingGates removals and (negative→1) terminationGracePeriodSeconds
/// may change in the spec.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> ErrorList {
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_pod_metadata_and_spec(new));
    errs.extend(validate_pod_specific_annotation_updates(new, old));
    let sp = Path::new("spec");
    let default_spec = PodSpec::default();
    let ns = new.spec.as_ref().unwrap_or(&default_spec);
    let os = old.spec.as_ref().unwrap_or(&default_spec);

    for (name, nl, ol) in [
        ("containers", &ns.containers[..], &os.containers[..]),
        (
            "initContainers",
            ns.init_containers.as_deref().unwrap_or(&[]),
            os.init_containers.as_deref().unwrap_or(&[]),
        ),
    ] {
        let (cerrs, stop) = validate_container_updates(nl, ol, &sp.child(name));
        errs.extend(cerrs);
        if stop {
            return errs;
        }
    }

    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), old_ads) => {
            if !(0..=MAX_INT32).contains(&n) {
                errs.push(field::invalid(
                    &sp.child("activeDeadlineSeconds"),
                    n,
                    &inclusive_range_error(0, MAX_INT32),
                ));
                return errs;
            }
            if let Some(o) = old_ads
                && o < n
            {
                errs.push(field::invalid(
                    &sp.child("activeDeadlineSeconds"),
                    n,
                    "must be less than or equal to previous value",
                ));
                return errs;
            }
        }
        (None, Some(_)) => errs.push(field::invalid(
            &sp.child("activeDeadlineSeconds"),
            BadValue::raw("null"),
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }

    // Only additions to tolerations.
    let new_tol = ns.tolerations.as_deref().unwrap_or(&[]);
    let old_tol = os.tolerations.as_deref().unwrap_or(&[]);
    let mut tol_ok = true;
    for o in old_tol {
        let found = new_tol.iter().any(|n| {
            let mut oc = o.clone();
            oc.toleration_seconds = n.toleration_seconds;
            &oc == n
        });
        if !found {
            errs.push(field::forbidden(
                &sp.child("tolerations"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            tol_ok = false;
            break;
        }
    }
    if tol_ok {
        errs.extend(validate_tolerations(new_tol, &sp.child("tolerations")));
    }

    // Only deletions of scheduling gates.
    let old_gates: Vec<&str> = os
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    let mut added: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, g) in ns.scheduling_gates.iter().flatten().enumerate() {
        added.insert(g.name.as_str(), i);
    }
    for g in &old_gates {
        added.remove(g);
    }
    for (g, i) in added {
        errs.push(field::forbidden(
            &sp.child("schedulingGates").index(i).child("name"),
            &format!("only deletion is allowed, but found new scheduling gate '{g}'"),
        ));
    }

    if ns == os {
        return errs;
    }
    let mut munged = ns.clone();
    for (i, c) in munged.containers.iter_mut().enumerate() {
        c.image = os.containers.get(i).and_then(|o| o.image.clone());
    }
    if let Some(ics) = munged.init_containers.as_mut() {
        for (i, c) in ics.iter_mut().enumerate() {
            c.image = os
                .init_containers
                .as_ref()
                .and_then(|o| o.get(i))
                .and_then(|o| o.image.clone());
        }
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.scheduling_gates = os.scheduling_gates.clone();
    munged.tolerations = os.tolerations.clone();
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if !os.scheduling_gates.as_ref().is_none_or(Vec::is_empty) {
        // Gated pods may add node selectors and node affinity.
        if munged.node_selector != os.node_selector {
            let old_sel = os.node_selector.clone().unwrap_or_default();
            let new_sel = munged.node_selector.clone().unwrap_or_default();
            if old_sel.iter().any(|(k, v)| new_sel.get(k) != Some(v)) {
                errs.push(field::invalid(
                    &sp.child("nodeSelector"),
                    BadValue::json(&new_sel),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                ));
            }
            munged.node_selector = os.node_selector.clone();
        }
        let old_na = os.affinity.as_ref().and_then(|a| a.node_affinity.clone());
        let new_na = munged
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.clone());
        if old_na != new_na {
            match munged.affinity.as_mut() {
                Some(a) => a.node_affinity = old_na,
                None => {
                    munged.affinity = old_na.map(|na| k8s_openapi::api::core::v1::Affinity {
                        node_affinity: Some(na),
                        ..Default::default()
                    })
                }
            }
            if munged.affinity.as_ref().is_some_and(|a| {
                a.node_affinity.is_none()
                    && a.pod_affinity.is_none()
                    && a.pod_anti_affinity.is_none()
            }) && os.affinity.is_none()
            {
                munged.affinity = None;
            }
        }
    }
    if &munged != os {
        errs.push(field::forbidden(
            &sp,
            &format!(
                "pod updates may not change fields other than {}\n{}",
                UPDATABLE_POD_SPEC_FIELDS.join(","),
                spec_diff(os, &munged)
            ),
        ));
    }
    errs
}

/// A short, go-cmp-like diff of the top-level fields that differ.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    let o = serde_json::to_value(old).unwrap_or_default();
    let n = serde_json::to_value(new).unwrap_or_default();
    let empty = serde_json::Map::new();
    let om = o.as_object().unwrap_or(&empty);
    let nm = n.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        let (a, b) = (om.get(k), nm.get(k));
        if a != b {
            if let Some(a) = a {
                out.push_str(&format!("- \t{k}: {a},\n"));
            }
            if let Some(b) = b {
                out.push_str(&format!("+ \t{k}: {b},\n"));
            }
        }
    }
    out.push_str("  }\n");
    out
}

fn validate_container_updates(
    new: &[Container],
    old: &[Container],
    path: &Path,
) -> (ErrorList, bool) {
    let mut errs = ErrorList::new();
    if new.len() != old.len() {
        errs.push(field::forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return (errs, true);
    }
    for (i, c) in new.iter().enumerate() {
        if s(&c.image).is_empty() {
            errs.push(field::required(&path.index(i).child("image"), ""));
        }
    }
    (errs, false)
}

fn validate_pod_specific_annotation_updates(new: &Pod, old: &Pod) -> ErrorList {
    let mut errs = ErrorList::new();
    let p = Path::new("metadata").child("annotations");
    let empty = BTreeMap::new();
    let na = new.metadata.annotations.as_ref().unwrap_or(&empty);
    let oa = old.metadata.annotations.as_ref().unwrap_or(&empty);
    const MIRROR: &str = "kubernetes.io/config.mirror";
    const APPARMOR: &str = "container.apparmor.security.beta.kubernetes.io/";
    for (k, ov) in oa {
        if na.get(k) == Some(ov) {
            continue;
        }
        if k.starts_with(APPARMOR) {
            errs.push(field::forbidden(
                &p.key(k),
                "may not remove or update AppArmor annotations",
            ));
        }
        if k == MIRROR {
            errs.push(field::forbidden(
                &p.key(k),
                "may not remove or update mirror pod annotation",
            ));
        }
    }
    for k in na.keys() {
        if oa.contains_key(k) {
            continue;
        }
        if k.starts_with(APPARMOR) {
            errs.push(field::forbidden(
                &p.key(k),
                "may not add AppArmor annotations",
            ));
        }
        if k == MIRROR {
            errs.push(field::forbidden(
                &p.key(k),
                "may not add mirror pod annotation",
            ));
        }
    }
    let default_spec = PodSpec::default();
    errs.extend(validate_pod_specific_annotations(
        new.metadata.annotations.as_ref(),
        new.spec.as_ref().unwrap_or(&default_spec),
        &p,
    ));
    errs
}

/// Validates a Pod status update (upstream `ValidatePodStatusUpdate`).
pub fn validate_pod_status_update(new: &Pod, old: &Pod) -> ErrorList {
    let meta = Path::new("metadata");
    let mut errs = core_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_pod_specific_annotation_updates(new, old));
    let default_status = k8s_openapi::api::core::v1::PodStatus::default();
    let ns = new.status.as_ref().unwrap_or(&default_status);
    let os = old.status.as_ref().unwrap_or(&default_status);
    const SYSTEM_CONDITIONS: &[&str] = &["PodScheduled", "Ready", "Initialized"];
    for (i, c) in ns.conditions.iter().flatten().enumerate() {
        if SYSTEM_CONDITIONS.contains(&c.type_.as_str()) {
            continue;
        }
        errs.extend(validate_qualified_name(
            &c.type_,
            &meta.child("conditions").index(i).child("Type"),
        ));
    }
    let st = Path::new("status");
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    if node(new) != node(old) {
        errs.push(field::forbidden(
            &st.child("nodeName"),
            "may not be changed directly",
        ));
    }
    let nnn = s(&ns.nominated_node_name);
    if nnn != s(&os.nominated_node_name) && !nnn.is_empty() {
        errs.extend(validate_name(
            NameValidator::Dns1123Subdomain,
            nnn,
            &st.child("nominatedNodeName"),
        ));
    }
    if ns.qos_class != os.qos_class {
        errs.push(field::invalid(
            &st.child("qosClass"),
            s(&ns.qos_class),
            super::objectmeta::FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    let old_restart = old
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_default();
    errs.extend(validate_container_state_transition(
        ns.container_statuses.as_deref().unwrap_or(&[]),
        os.container_statuses.as_deref().unwrap_or(&[]),
        &st.child("containerStatuses"),
        &old_restart,
        &[],
    ));
    let restartable_init: Vec<String> = old
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.clone())
        .collect();
    errs.extend(validate_container_state_transition(
        ns.init_container_statuses.as_deref().unwrap_or(&[]),
        os.init_container_statuses.as_deref().unwrap_or(&[]),
        &st.child("initContainerStatuses"),
        &old_restart,
        &restartable_init,
    ));
    errs.extend(validate_container_state_transition(
        ns.ephemeral_container_statuses.as_deref().unwrap_or(&[]),
        os.ephemeral_container_statuses.as_deref().unwrap_or(&[]),
        &st.child("ephemeralContainerStatuses"),
        "Never",
        &[],
    ));
    for (i, ip) in ns.pod_ips.iter().flatten().enumerate() {
        errs.extend(is_valid_ip(&st.child("podIPs").index(i), &ip.ip));
    }
    let pod_ips: Vec<&str> = ns.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
    if pod_ips.len() > 1 {
        if !is_dual_stack(&pod_ips) || pod_ips.len() > 2 {
            errs.push(field::invalid(
                &st.child("podIPs"),
                BadValue::json(&ns.pod_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, ip) in ns.pod_ips.iter().flatten().enumerate() {
            if !seen.insert(ip.ip.clone()) {
                errs.push(field::duplicate(
                    &st.child("podIPs").index(i),
                    BadValue::json(ip),
                ));
            }
        }
    }
    if let Some(hips) = ns.host_ips.as_deref()
        && !hips.is_empty()
    {
        if s(&ns.host_ip) != hips[0].ip {
            errs.push(field::invalid(
                &st.child("hostIPs").index(0).child("ip"),
                hips[0].ip.as_str(),
                "must be equal to `hostIP`",
            ));
        }
        for (i, ip) in hips.iter().enumerate() {
            errs.extend(is_valid_ip(&st.child("hostIPs").index(i), &ip.ip));
        }
    }
    errs
}

fn is_dual_stack(ips: &[&str]) -> bool {
    let v4 = ips
        .iter()
        .any(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok());
    let v6 = ips
        .iter()
        .any(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    v4 && v6
}

fn validate_container_state_transition(
    new: &[k8s_openapi::api::core::v1::ContainerStatus],
    old: &[k8s_openapi::api::core::v1::ContainerStatus],
    path: &Path,
    restart_policy: &str,
    restartable: &[String],
) -> ErrorList {
    let mut errs = ErrorList::new();
    if restart_policy == "Always" {
        return errs;
    }
    for (i, o) in old.iter().enumerate() {
        let Some(term) = o.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
            continue;
        };
        if term.exit_code != 0 && restart_policy == "OnFailure" {
            continue;
        }
        if restartable.contains(&o.name) {
            continue;
        }
        for n in new {
            if n.name == o.name
                && n.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_none()
            {
                errs.push(field::forbidden(
                    &path.index(i).child("state"),
                    "may not be transitioned to non-terminated state",
                ));
            }
        }
    }
    errs
}

/// Validates a pod Binding (upstream `ValidatePodBinding`).
pub fn validate_binding(binding: &Binding) -> ErrorList {
    let mut errs = ErrorList::new();
    let kind = s(&binding.target.kind);
    if !kind.is_empty() && kind != "Node" {
        errs.push(field::not_supported(
            &Path::new("target").child("kind"),
            kind,
            &["Node", "<empty>"],
        ));
    }
    if s(&binding.target.name).is_empty() {
        errs.push(field::required(&Path::new("target").child("name"), ""));
    }
    errs
}

/// Validates a Binding update; bindings are create-only upstream, so this only checks metadata.
pub fn validate_binding_update(new: &Binding, old: &Binding) -> ErrorList {
    core_object_meta_update(&new.metadata, &old.metadata)
}
