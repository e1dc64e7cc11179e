//! OpenAPI v3 documents for the served group-versions, generated from k8s-openapi schemas
