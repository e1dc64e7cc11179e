"""The official Python client (`kubernetes` on PyPI) against r8s.

Usage: client_test.py KUBECONFIG NAMESPACE

Creates NAMESPACE, then creates, lists, watches, patches (merge, strategic, JSON patch) and
deletes ConfigMaps and a Deployment in it, asserting each result, and finally deletes the
namespace. Prints one line per step; exits non-zero (with a traceback) on the first failure.
"""

import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def step(msg):
    print(f"ok: {msg}", flush=True)


def expect_status(status, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == status, f"expected HTTP {status}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected HTTP {status}, call succeeded")


def merge_patch_config_map(core, name, ns, body):
    return core.api_client.call_api(
        "/api/v1/namespaces/{namespace}/configmaps/{name}",
        "PATCH",
        path_params={"namespace": ns, "name": name},
        header_params={
            "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
        },
        body=body,
        response_type="V1ConfigMap",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


def main():
    kubeconfig, ns = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    apps = client.AppsV1Api()

    version = client.VersionApi().get_code()
    assert version.major == "1" and version.minor == "35", version
    step(f"server version {version.git_version}")

    created_ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    assert created_ns.metadata.name == ns
    assert created_ns.status.phase == "Active", created_ns.status
    step("create namespace")

    # create
    cm = core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="py-one", labels={"app": "py"}),
            data={"color": "blue"},
        ),
    )
    assert cm.metadata.uid and cm.metadata.resource_version, cm.metadata
    assert cm.metadata.namespace == ns
    assert cm.data == {"color": "blue"}
    core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="py-two", labels={"app": "other"}),
            data={"k": "v"},
        ),
    )
    e = expect_status(
        409,
        core.create_namespaced_config_map,
        ns,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-one")),
    )
    body = e.body.decode() if isinstance(e.body, bytes) else str(e.body)
    assert '"reason":"AlreadyExists"' in body.replace(" ", ""), body
    step("create configmaps (and 409 on a duplicate)")

    # list, with a label selector
    listed = core.list_namespaced_config_map(ns, label_selector="app=py")
    names = [i.metadata.name for i in listed.items]
    assert names == ["py-one"], names
    assert listed.metadata.resource_version, listed.metadata
    everything = core.list_namespaced_config_map(ns)
    all_names = sorted(i.metadata.name for i in everything.items if i.metadata.name != "kube-root-ca.crt")
    assert all_names == ["py-one", "py-two"], all_names
    step("list configmaps")

    # watch from the list's resourceVersion: see an ADDED and a MODIFIED event
    start_rv = everything.metadata.resource_version
    events = []

    def produce():
        time.sleep(1.0)
        core.create_namespaced_config_map(
            ns,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-watched"), data={"n": "1"}),
        )
        core.patch_namespaced_config_map("py-watched", ns, {"data": {"n": "2"}})

    producer = threading.Thread(target=produce)
    producer.start()
    w = watch.Watch()
    deadline = time.time() + 30
    for ev in w.stream(
        core.list_namespaced_config_map, ns, resource_version=start_rv, timeout_seconds=30
    ):
        obj = ev["object"]
        events.append((ev["type"], obj.metadata.name, (obj.data or {}).get("n")))
        if ("MODIFIED", "py-watched", "2") in events or time.time() > deadline:
            w.stop()
            break
    producer.join()
    assert ("ADDED", "py-watched", "1") in events, events
    assert ("MODIFIED", "py-watched", "2") in events, events
    assert all(name == "py-watched" for _, name, _ in events), events
    step("watch configmaps")

    # patch: merge (dict body), strategic and JSON patch
    # (The generated patch_* methods send a dict as a strategic merge patch and a list as a
    # JSON patch; a merge patch goes through the lower-level call_api.)
    patched = merge_patch_config_map(core, "py-one", ns, {"data": {"size": "10"}})
    assert patched.data == {"color": "blue", "size": "10"}, patched.data
    patched = core.patch_namespaced_config_map(
        "py-one", ns, {"metadata": {"labels": {"patched": "strategic"}}}
    )
    assert patched.metadata.labels == {"app": "py", "patched": "strategic"}, patched.metadata.labels
    patched = core.patch_namespaced_config_map(
        "py-one",
        ns,
        [{"op": "replace", "path": "/data/color", "value": "red"}, {"op": "remove", "path": "/data/size"}],
    )
    assert patched.data == {"color": "red"}, patched.data
    step("patch configmap (merge, strategic, json)")

    # replace with a stale resourceVersion -> 409 Conflict
    stale = core.read_namespaced_config_map("py-one", ns)
    core.patch_namespaced_config_map("py-one", ns, {"data": {"color": "green"}})
    stale.data = {"color": "stale"}
    expect_status(409, core.replace_namespaced_config_map, "py-one", ns, stale)
    assert core.read_namespaced_config_map("py-one", ns).data == {"color": "green"}
    step("replace with a stale resourceVersion is a conflict")

    # a Deployment through the apps API
    dep = apps.create_namespaced_deployment(
        ns,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="py-web", labels={"app": "py-web"}),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels={"app": "py-web"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "py-web"}),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="web", image="nginx:1.14.2")]
                    ),
                ),
            ),
        ),
    )
    assert dep.spec.replicas == 2
    assert dep.spec.strategy.type == "RollingUpdate", dep.spec.strategy
    scale = apps.patch_namespaced_deployment_scale("py-web", ns, {"spec": {"replicas": 4}})
    assert scale.spec.replicas == 4, scale
    assert apps.read_namespaced_deployment("py-web", ns).spec.replicas == 4
    step("create and scale a deployment")

    # delete
    core.delete_namespaced_config_map("py-one", ns)
    expect_status(404, core.read_namespaced_config_map, "py-one", ns)
    apps.delete_namespaced_deployment(
        "py-web", ns, body=client.V1DeleteOptions(propagation_policy="Background")
    )
    expect_status(404, apps.read_namespaced_deployment, "py-web", ns)
    remaining = sorted(
        i.metadata.name
        for i in core.list_namespaced_config_map(ns).items
        if i.metadata.name != "kube-root-ca.crt"
    )
    assert remaining == ["py-two", "py-watched"], remaining
    step("delete configmap and deployment")

    core.delete_namespace(ns)
    step("delete namespace")
    print("python client: all checks passed", flush=True)


if __name__ == "__main__":
    main()
