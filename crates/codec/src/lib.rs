//! Kubernetes wire formats: decoding protobuf request bodies (k8s\\0 envelope) into JSON
